// The jobs dashboard (`#/jobs`): all your jobs across projects, counts by status, filters
// (status, type, project) and search by id; live bars for running jobs, whoever drives them.

import { isTerminal } from '/static/job-manager.js';
import { dateTime, element, integer, percent, progressBar, statusBadge } from './format.js';
import { watchJob } from './live.js';

export const STATUSES = Object.freeze(['pending', 'processing', 'paused', 'completed', 'failed', 'cancelled']);
export const JOB_TYPES = Object.freeze(['enhanced', 'ai', 'web-search', 'full']);
const LIST_LIMIT = 500;
const REFRESH_MS = 10_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class Dashboard {
  /**
   * @param {{root: HTMLElement, manager: import('/static/job-manager.js').JobManager,
   *   onError: (error: unknown) => void}} options
   */
  constructor({ root, manager, onError }) {
    this.root = root;
    this.manager = manager;
    this.api = manager.api;
    this.onError = onError;
    this.jobs = [];
    this.extra = new Map(); // jobs found by id search beyond the list
    this.projects = new Map();
    this.watched = new Map(); // job id -> AbortController
    this.filters = { status: '', type: '', project: '', search: '' };
    this.built = false;
  }

  async show() {
    this.root.hidden = false;
    if (!this.built) this.build();
    await this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => void this.refresh().catch(this.onError), REFRESH_MS);
  }

  hide() {
    this.root.hidden = true;
    clearInterval(this.timer);
    for (const controller of this.watched.values()) controller.abort();
    this.watched.clear();
  }

  build() {
    this.built = true;
    const select = (name, label, options) => {
      const node = element('select', { 'data-filter': name, 'data-testid': `filter-${name}` }, [
        element('option', { value: '' }, [`all`]),
        ...options.map(([value, text]) => element('option', { value }, [text])),
      ]);
      node.addEventListener('change', () => {
        this.filters[name] = node.value;
        this.render();
      });
      return element('label', { class: 'field' }, [element('span', {}, [label]), node]);
    };
    this.counts = element('div', { class: 'status-counts', 'data-testid': 'status-counts' });
    this.projectFilter = select('project', 'Project', []);
    const search = element('input', {
      type: 'search',
      placeholder: 'job id',
      'data-testid': 'filter-search',
      'aria-label': 'Search by job id',
      spellcheck: 'false',
    });
    search.addEventListener('input', () => {
      this.filters.search = search.value.trim().toLowerCase();
      this.render();
      if (UUID.test(this.filters.search)) void this.findById(this.filters.search);
    });
    const refresh = element('button', { type: 'button', class: 'link-button' }, ['Refresh']);
    refresh.addEventListener('click', () => void this.refresh().catch(this.onError));
    this.body = element('tbody', { 'data-testid': 'dashboard-jobs' });
    this.empty = element('p', { class: 'hint', 'data-testid': 'dashboard-empty' }, ['No jobs match.']);
    this.root.replaceChildren(
      element('div', { class: 'section-head' }, [element('h2', {}, ['Jobs']), refresh]),
      this.counts,
      element('div', { class: 'row filters' }, [
        select('status', 'Status', STATUSES.map((s) => [s, s])),
        select('type', 'Type', JOB_TYPES.map((t) => [t, t])),
        this.projectFilter,
        element('label', { class: 'field grow' }, [element('span', {}, ['Search']), search]),
      ]),
      element('div', { class: 'table-wrap' }, [
        element('table', { class: 'dashboard-table' }, [
          element('thead', {}, [
            element('tr', {}, ['Created', 'Project', 'Type', 'Status', 'Progress', 'Matches', ''].map((h) => element('th', {}, [h]))),
          ]),
          this.body,
        ]),
      ]),
      this.empty,
    );
  }

  async refresh() {
    const [jobs, projects, status] = await Promise.all([
      this.api.listJobs(null, { limit: LIST_LIMIT }),
      this.api.listProjects(),
      this.api.jobsStatus(),
    ]);
    this.jobs = jobs;
    this.projects = new Map(projects.map((p) => [p.id, p]));
    this.renderProjects();
    this.renderCounts(status.counts);
    this.render();
  }

  /** A job found by its full id, though it is not among the newest listed. */
  async findById(jobId) {
    if (this.jobs.some((j) => j.id === jobId) || this.extra.has(jobId)) return;
    try {
      this.extra.set(jobId, await this.api.getJob(jobId));
      this.render();
    } catch (error) {
      if (error?.status !== 404) this.onError(error);
    }
  }

  renderProjects() {
    const select = this.projectFilter.querySelector('select');
    const options = [...this.projects.values()].map((p) => element('option', { value: p.id }, [p.name]));
    select.replaceChildren(element('option', { value: '' }, ['all']), ...options);
    select.value = this.projects.has(this.filters.project) ? this.filters.project : '';
    this.filters.project = select.value;
  }

  renderCounts(counts) {
    const chips = STATUSES.map((s) => {
      const chip = element('button', { type: 'button', class: 'count-chip', 'data-status': s, 'data-testid': `count-${s}` }, [
        element('span', { class: 'count' }, [integer.format(counts?.[s] ?? 0)]),
        ` ${s}`,
      ]);
      chip.addEventListener('click', () => {
        const select = /** @type {HTMLSelectElement} */ (this.root.querySelector('[data-filter="status"]'));
        select.value = this.filters.status === s ? '' : s;
        this.filters.status = select.value;
        this.render();
      });
      return chip;
    });
    this.counts.replaceChildren(...chips);
  }

  visible() {
    const { status, type, project, search } = this.filters;
    const all = [...this.jobs, ...[...this.extra.values()].filter((e) => !this.jobs.some((j) => j.id === e.id))];
    return all.filter(
      (j) =>
        (!status || j.status === status) &&
        (!type || j.jobType === type) &&
        (!project || j.projectId === project) &&
        (!search || j.id.toLowerCase().includes(search)),
    );
  }

  render() {
    const jobs = this.visible();
    this.body.replaceChildren(...jobs.map((job) => this.row(job)));
    this.empty.hidden = jobs.length > 0;
    const live = new Set(jobs.filter((j) => !isTerminal(j.status) && j.status !== 'paused').map((j) => j.id));
    for (const [id, controller] of this.watched) {
      if (!live.has(id)) {
        controller.abort();
        this.watched.delete(id);
      }
    }
    for (const id of live) if (!this.watched.has(id)) this.watch(id);
  }

  row(job) {
    const project = this.projects.get(job.projectId);
    const row = element('tr', { 'data-testid': 'dashboard-row', 'data-job-id': job.id, 'data-status': job.status }, [
      element('td', {}, [dateTime(job.createdAt)]),
      element('td', {}, [project?.name ?? job.projectId]),
      element('td', {}, [job.jobType]),
      element('td', { 'data-cell': 'status' }, [statusBadge(job)]),
      element('td', { class: 'progress-cell' }, [
        progressBar(job, element('div', { class: 'progress', role: 'progressbar', 'data-testid': 'row-bar' })),
        element('span', { class: 'muted small', 'data-cell': 'processed' }, [
          `${integer.format(job.processedItems)} / ${integer.format(job.totalItems)} (${percent(job.progressPercentage)})`,
        ]),
      ]),
      element('td', { class: 'num', 'data-cell': 'matches' }, [integer.format(job.matchesFound)]),
      element('td', {}, [element('a', { href: `#/jobs/${job.id}`, 'data-testid': 'open-job' }, ['Open'])]),
    ]);
    // the whole row opens the job (a phone has no room to aim at a link)
    row.addEventListener('click', (event) => {
      if (!(event.target instanceof Element && event.target.closest('a, button'))) location.hash = `#/jobs/${job.id}`;
    });
    return row;
  }

  /** Keep a live job's row up to date until it ends. */
  watch(jobId) {
    const controller = new AbortController();
    this.watched.set(jobId, controller);
    void watchJob(
      this.manager,
      jobId,
      (job) => {
        const index = this.jobs.findIndex((j) => j.id === job.id);
        if (index >= 0) this.jobs[index] = job;
        if (this.extra.has(job.id)) this.extra.set(job.id, job);
        const row = this.body.querySelector(`tr[data-job-id="${job.id}"]`);
        if (row) row.replaceWith(this.row(job));
      },
      { signal: controller.signal },
    )
      .then((last) => {
        if (this.watched.get(jobId) === controller) this.watched.delete(jobId);
        if (last && isTerminal(last.status) && !this.root.hidden) void this.refresh().catch(this.onError);
      })
      .catch(this.onError);
  }
}
