// The job view (`#/jobs/{id}`): state and controls, the config it used, its stages, charts
// of its chunks (duration, items/s, the ETA it gave), failed items and matches. Live while
// the job runs, whoever drives it.

import { isTerminal } from '/static/job-manager.js';
import { lineChart } from './chart.js';
import { dateTime, decimal, duration, element, integer, percent, progressBar, statusBadge } from './format.js';
import { watchJob } from './live.js';

const LIVE = ['pending', 'processing'];
const CHUNK_PAGE = 5000;
const MATCH_PAGE = 50;
const CHUNK_REFRESH_MS = 2000;

/** What a cancel asks first, wherever the page offers one. */
export const CANCEL_CONFIRM = 'Cancel this job? A cancelled job cannot be resumed; its committed matches stay.';

/** The controls, each shown only where the job's state allows it. */
export const JOB_CONTROLS = Object.freeze([
  { action: 'pause', label: 'Pause', when: (job) => LIVE.includes(job.status) },
  { action: 'resume', label: 'Resume', when: (job) => job.status === 'paused' },
  {
    action: 'cancel',
    label: 'Cancel',
    when: (job) => [...LIVE, 'paused'].includes(job.status),
    confirm: CANCEL_CONFIRM,
  },
  { action: 'retry', label: 'Retry', when: (job) => job.status === 'failed' },
  {
    action: 'retry-failed',
    label: 'Retry failed items',
    when: (job) => job.failedItems > 0 && !['cancelled', 'paused'].includes(job.status),
  },
]);

export class JobView {
  /**
   * @param {{root: HTMLElement, manager: import('/static/job-manager.js').JobManager,
   *   onError: (error: unknown) => void, confirm?: (text: string) => boolean}} options
   */
  constructor({ root, manager, onError, confirm = (text) => window.confirm(text) }) {
    this.root = root;
    this.manager = manager;
    this.api = manager.api;
    this.onError = onError;
    this.confirm = confirm;
    this.controller = null;
    this.job = null;
    this.chunksAt = 0;
    this.matchesCursor = null;
  }

  /** Open a job; replaces whatever job was shown. @param {string} jobId */
  async show(jobId) {
    this.hide();
    const controller = new AbortController();
    this.controller = controller;
    this.root.hidden = false;
    this.root.replaceChildren(element('p', { class: 'hint' }, ['Loading job…']));
    let job;
    try {
      job = await this.api.getJob(jobId, { signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted) return;
      this.root.replaceChildren(
        element('p', { class: 'hint', 'data-testid': 'job-view-missing' }, [
          error?.status === 404 ? `No job with id ${jobId}.` : `Could not load job ${jobId}.`,
        ]),
      );
      if (error?.status !== 404) this.onError(error);
      return;
    }
    this.build(job);
    this.render(job);
    await Promise.all([this.loadChunks(), this.loadFailed(), this.loadMatches(true)]).catch(this.onError);
    this.follow();
  }

  hide() {
    this.controller?.abort();
    this.controller = null;
    this.root.hidden = true;
  }

  /** The view's skeleton for a job. */
  build(job) {
    const part = (id, heading) =>
      element('section', { class: 'job-part', 'data-testid': id }, [element('h3', {}, [heading])]);
    this.parts = {
      head: element('div', { class: 'job-view-head' }),
      controls: element('div', { class: 'controls', 'data-testid': 'job-controls' }),
      message: element('p', { class: 'muted', 'data-testid': 'job-view-message', 'aria-live': 'polite' }),
      bar: element('div', { class: 'progress', role: 'progressbar', 'data-testid': 'job-view-bar' }),
      stats: element('dl', { class: 'stats' }),
      timeline: part('job-timeline', 'Stages'),
      config: part('job-config', 'Config'),
      charts: part('job-charts', 'Chunks'),
      failed: part('job-failed', 'Failed items'),
      matches: part('job-matches', 'Matches'),
    };
    const p = this.parts;
    this.root.replaceChildren(
      element('div', { class: 'section-head' }, [
        element('h2', {}, ['Job ', element('code', { 'data-testid': 'job-view-id' }, [job.id])]),
        element('div', { class: 'actions' }, [
          element('a', { href: `#/jobs/${job.id}/review`, class: 'button', 'data-testid': 'open-review' }, ['Review uncertain matches']),
          element('a', { href: '#/jobs', class: 'link-button' }, ['All jobs']),
        ]),
      ]),
      p.head,
      p.bar,
      p.stats,
      p.controls,
      p.message,
      element('div', { class: 'job-parts' }, [p.timeline, p.config]),
      p.charts,
      p.failed,
      p.matches,
    );
  }

  /** Show the job's state (called for every update). */
  render(job) {
    this.job = job;
    const p = this.parts;
    p.head.replaceChildren(
      statusBadge(job),
      element('span', { class: 'muted' }, [
        `${job.jobType} · stage ${job.currentStage} of ${job.stages?.length ?? 1}: ${job.currentStageName ?? ''}`,
      ]),
      ...(job.waitingReason ? [element('span', { class: 'muted' }, [`waiting: ${job.waitingReason}`])] : []),
    );
    progressBar(job, p.bar);
    const eta =
      job.status === 'completed'
        ? `finished ${dateTime(job.completedAt)}`
        : isTerminal(job.status) || job.etaSeconds == null
          ? '—'
          : `in ${duration(job.etaSeconds)}`;
    const stat = (label, value, id) =>
      element('div', {}, [element('dt', {}, [label]), element('dd', { 'data-testid': id }, [value])]);
    p.stats.replaceChildren(
      stat('Processed', `${integer.format(job.processedItems)} / ${integer.format(job.totalItems)} (${percent(job.progressPercentage)})`, 'job-view-processed'),
      stat('Matches', `${integer.format(job.matchesFound)} (${percent(job.matchRate)})`, 'job-view-matches'),
      stat('Items / second', job.itemsPerSecond != null ? decimal.format(job.itemsPerSecond) : '—', 'job-view-speed'),
      stat('ETA', eta, 'job-view-eta'),
      stat('Failed items', integer.format(job.failedItems ?? 0), 'job-view-failed-count'),
      // matches the end of the matching stage withdrew beside their records' other matches
      ...(job.withdrawnMatches ? [stat('Withdrawn matches', integer.format(job.withdrawnMatches), 'job-view-withdrawn')] : []),
      stat('Created', dateTime(job.createdAt), 'job-view-created'),
    );
    if (job.error && job.status !== 'cancelled') p.message.textContent = job.error;
    this.renderControls(job);
    this.renderTimeline(job);
    this.renderConfig(job);
  }

  renderControls(job) {
    const buttons = JOB_CONTROLS.filter((c) => c.when(job)).map((control) => {
      const button = element(
        'button',
        { type: 'button', class: `button${control.action === 'cancel' ? ' danger' : ''}`, 'data-action': control.action },
        [control.label],
      );
      button.addEventListener('click', () => void this.act(control, button));
      return button;
    });
    this.parts.controls.replaceChildren(...buttons);
  }

  /** Run a control on the job, after a confirm where it asks for one. */
  async act(control, button) {
    if (control.confirm && !this.confirm(control.confirm)) return;
    const jobId = this.job.id;
    button.disabled = true;
    try {
      const { job, message } = await this.api.controlJob(jobId, control.action);
      if (this.job?.id !== jobId) return;
      this.parts.message.textContent = message;
      this.render(job);
      await Promise.all([this.loadFailed(), this.loadChunks()]);
      this.follow();
    } catch (error) {
      this.onError(error);
    } finally {
      button.disabled = false;
    }
  }

  /** Watch the job while it is live; paused or ended jobs change only by our controls. */
  follow() {
    const job = this.job;
    const signal = this.controller?.signal;
    if (!job || !signal || !LIVE.includes(job.status) || this.following === job.id) return;
    this.following = job.id;
    void watchJob(
      this.manager,
      job.id,
      (update) => {
        if (this.job?.id !== update.id || signal.aborted) return;
        this.render(update);
        if (Date.now() - this.chunksAt > CHUNK_REFRESH_MS || isTerminal(update.status)) {
          void this.loadChunks().catch(this.onError);
        }
        if (isTerminal(update.status)) void Promise.all([this.loadFailed(), this.loadMatches(true)]).catch(this.onError);
      },
      { signal },
    )
      .catch((error) => this.onError(error))
      .finally(() => {
        if (this.following === job.id) this.following = null;
        if (!signal.aborted && this.job && LIVE.includes(this.job.status)) this.follow();
      });
  }

  renderTimeline(job) {
    const stages = job.stages?.length ? job.stages : [job.jobType];
    const byStage = this.chunkStages ?? new Map();
    const items = stages.map((name, index) => {
      const number = index + 1;
      const state =
        job.status === 'completed' || number < job.currentStage
          ? 'done'
          : number === job.currentStage
            ? isTerminal(job.status) ? job.status : 'current'
            : 'todo';
      const chunks = byStage.get(number);
      const detail = chunks
        ? `${integer.format(chunks.count)} chunks, ${integer.format(chunks.items)} items, ${dateTime(chunks.from)} → ${chunks.to ? dateTime(chunks.to) : 'now'}`
        : 'not started';
      return element('li', { 'data-state': state, 'data-testid': 'timeline-stage' }, [
        element('strong', {}, [name]),
        element('span', { class: 'muted small' }, [` ${state} · ${detail}`]),
      ]);
    });
    this.parts.timeline.replaceChildren(this.parts.timeline.firstChild, element('ol', { class: 'timeline' }, items));
  }

  renderConfig(job) {
    const rows = Object.entries(job.config ?? {}).map(([key, value]) =>
      element('div', {}, [
        element('dt', {}, [key]),
        element('dd', {}, [typeof value === 'object' ? JSON.stringify(value) : String(value)]),
      ]),
    );
    rows.push(
      element('div', {}, [element('dt', {}, ['priority']), element('dd', {}, [String(job.priority ?? '')])]),
      element('div', {}, [element('dt', {}, ['data versions']), element('dd', {}, [`catalog ${job.catalogVersion}, items ${job.itemsVersion}`])]),
    );
    this.parts.config.replaceChildren(this.parts.config.firstChild, element('dl', { class: 'config' }, rows));
  }

  async loadChunks() {
    const job = this.job;
    const signal = this.controller?.signal;
    if (!job || !signal) return;
    this.chunksAt = Date.now();
    const chunks = [];
    let cursor = null;
    do {
      const page = await this.api.listChunks(job.id, { limit: CHUNK_PAGE, cursor, signal });
      chunks.push(...page.chunks);
      cursor = page.nextCursor;
    } while (cursor);
    if (this.job?.id !== job.id) return;
    this.renderCharts(chunks);
  }

  renderCharts(chunks) {
    const job = this.job;
    const done = chunks.filter((c) => c.status === 'done' && c.finishedAt);
    const t0 = done.length ? Math.min(...done.map((c) => Date.parse(c.startedAt))) : 0;
    const at = (c) => (Date.parse(c.finishedAt) - t0) / 1000;
    const stages = new Map();
    for (const c of chunks) {
      const s = stages.get(c.stage) ?? { count: 0, items: 0, from: c.startedAt, to: null };
      s.count += 1;
      s.items += c.items;
      if (c.startedAt < s.from) s.from = c.startedAt;
      if (c.finishedAt && (!s.to || c.finishedAt > s.to)) s.to = c.finishedAt;
      stages.set(c.stage, s);
    }
    this.chunkStages = stages;
    this.renderTimeline(job);
    const completed = job.status === 'completed' && job.completedAt ? Date.parse(job.completedAt) : null;
    const charts = [
      lineChart({
        title: 'Chunk duration (s)',
        xLabel: 's',
        testId: 'chart-duration',
        series: [{ name: 'seconds per chunk', className: 'series-a', points: done.map((c) => [at(c), (c.durationMs ?? 0) / 1000]) }],
      }),
      lineChart({
        title: 'Items per second',
        xLabel: 's',
        testId: 'chart-rate',
        series: [
          {
            name: 'items/s of each chunk',
            className: 'series-b',
            points: done.map((c) => [at(c), c.durationMs ? c.items / (c.durationMs / 1000) : NaN]),
          },
        ],
      }),
      lineChart({
        title: 'ETA given (s)',
        xLabel: 's',
        testId: 'chart-eta',
        series: [
          { name: 'ETA given after the chunk', className: 'series-c', points: done.map((c) => [at(c), c.etaSeconds ?? NaN]) },
          ...(completed
            ? [{ name: 'time that really remained', className: 'series-d', points: done.map((c) => [at(c), (completed - Date.parse(c.finishedAt)) / 1000]) }]
            : []),
        ],
      }),
    ];
    const summary = element('p', { class: 'muted small', 'data-testid': 'chunk-summary' }, [
      `${integer.format(done.length)} chunks done${chunks.length > done.length ? `, ${chunks.length - done.length} running` : ''}`,
    ]);
    this.parts.charts.replaceChildren(this.parts.charts.firstChild, summary, element('div', { class: 'charts' }, charts));
  }

  async loadFailed() {
    const job = this.job;
    if (!job) return;
    const items = await this.api.failedItems(job.id, { signal: this.controller?.signal });
    if (this.job?.id !== job.id) return;
    const body = items.length
      ? element('div', { class: 'table-wrap' }, [
          element('table', {}, [
            element('thead', {}, [element('tr', {}, ['Item', 'Stage', 'Error'].map((h) => element('th', {}, [h])))]),
            element(
              'tbody',
              {},
              items.map((i) =>
                element('tr', { 'data-testid': 'failed-row' }, [
                  element('td', {}, [i.itemId]),
                  element('td', {}, [String(i.stage)]),
                  element('td', { class: 'reason' }, [i.error ?? '']),
                ]),
              ),
            ),
          ]),
        ])
      : element('p', { class: 'hint' }, ['No failed items.']);
    this.parts.failed.replaceChildren(this.parts.failed.firstChild, body);
  }

  /** The first page of matches (`fresh`), or the next one. */
  async loadMatches(fresh = false) {
    const job = this.job;
    if (!job) return;
    if (fresh) this.matchesCursor = null;
    const page = await this.api.listMatches(job.id, { limit: MATCH_PAGE, cursor: this.matchesCursor, signal: this.controller?.signal });
    if (this.job?.id !== job.id) return;
    const part = this.parts.matches;
    let body = part.querySelector('tbody');
    if (fresh || !body) {
      body = element('tbody');
      const table = element('table', {}, [
        element('thead', {}, [element('tr', {}, ['Item', 'Catalog match', 'Score', 'Method'].map((h) => element('th', {}, [h])))]),
        body,
      ]);
      part.replaceChildren(part.firstChild, element('div', { class: 'table-wrap' }, [table]));
    }
    body.append(
      ...page.matches.map((m) =>
        element('tr', { 'data-testid': 'job-match-row' }, [
          element('td', {}, [m.itemText ?? '', element('div', { class: 'muted small' }, [String(m.itemId)])]),
          element('td', {}, [m.catalogText ?? '', element('div', { class: 'muted small' }, [String(m.catalogId)])]),
          element('td', { class: 'num' }, [Number(m.score).toFixed(2)]),
          element('td', {}, [m.method ?? '']),
        ]),
      ),
    );
    part.querySelector('[data-action="more-matches"]')?.remove();
    if (!body.children.length) part.append(element('p', { class: 'hint' }, ['No matches yet.']));
    this.matchesCursor = page.nextCursor;
    if (page.nextCursor) {
      const more = element('button', { type: 'button', class: 'button', 'data-action': 'more-matches' }, ['Load more']);
      more.addEventListener('click', () => void this.loadMatches().catch(this.onError));
      part.append(more);
    }
  }
}
