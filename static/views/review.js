// The review view (`#/jobs/{id}/review`): a job's most uncertain decisions, one pair at a
// time, with the evidence; a person answers with a key or a button, and the project's
// estimated precision and recall follow every decision.
//
// Undo is honest about what the server holds: the latest decision stays in hand on the page
// for UNDO_WINDOW_MS (or until the next decision, leaving the view or hiding the page) and
// only then is sent, so `u` within that window takes it back without a trace on the server.
// A decision already sent cannot be unsent (the API has no delete): `u` brings its pair back
// to be decided again, and the new decision replaces the stored one when it is sent.

import { ApiError, isAbortError } from '/static/job-manager.js';
import { element, integer } from './format.js';

const PAGE_SIZE = 50;
/** Fetch the next page of the queue when this few pairs are left to show. */
const PREFETCH_REMAINING = 5;
/** How long the latest decision stays in hand (undo leaves no trace) before it is sent. */
export const UNDO_WINDOW_MS = 5000;
const MAX_CANDIDATES = 9;

/** The keys, each with the button that does the same. */
export const REVIEW_KEYS = Object.freeze([
  { key: 'y', action: 'match', label: 'Match' },
  { key: 'n', action: 'no-match', label: 'No match' },
  { key: '0', action: 'none', label: 'No counterpart' },
  { key: 's', action: 'skip', label: 'Skip' },
  { key: 'u', action: 'undo', label: 'Undo' },
]);

const plain = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const signed = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2, minimumFractionDigits: 2, signDisplay: 'always' });

/** A fraction (0..1) or a percentage as "93 %"; "—" when unknown. @param {number|null|undefined} value */
function share(value) {
  if (value == null || !Number.isFinite(Number(value))) return '—';
  const pct = Number(value) <= 1 ? Number(value) * 100 : Number(value);
  return `${pct.toFixed(1)} %`;
}

/** @param {string} token */
const normal = (token) => token.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, '');

/**
 * `text` as nodes, its words that `other` lacks (compared case- and punctuation-blind)
 * marked.
 * @param {string|null} text
 * @param {string|null} other
 * @returns {(Node|string)[]}
 */
export function markDifferences(text, other) {
  const theirs = new Set((other ?? '').split(/\s+/).map(normal).filter(Boolean));
  return (text ?? '')
    .split(/(\s+)/)
    .filter((part) => part !== '')
    .map((part) => {
      const key = normal(part);
      return !key || theirs.has(key) ? part : element('mark', { class: 'diff', 'data-testid': 'diff-token' }, [part]);
    });
}

/**
 * The explanation as bars: each signal's contribution (log-odds), positive to the right,
 * negative to the left, scaled to the largest.
 * @param {{signal: string, value: number, contribution: number}[]} evidence
 */
export function evidenceChart(evidence) {
  const figure = element('figure', { class: 'evidence', 'data-testid': 'review-explanation' }, [
    element('figcaption', {}, ['What moved the score']),
  ]);
  if (!evidence?.length) {
    figure.append(element('p', { class: 'hint' }, ['No signal breakdown for this decision.']));
    return figure;
  }
  const largest = Math.max(...evidence.map((e) => Math.abs(Number(e.contribution) || 0))) || 1;
  const rows = evidence.map((e) => {
    const contribution = Number(e.contribution) || 0;
    const sign = contribution >= 0 ? 'positive' : 'negative';
    const bar = element('span', { class: 'evidence-bar' });
    bar.style.width = `${(Math.abs(contribution) / largest) * 100}%`;
    const half = (side) => element('span', { class: `evidence-half evidence-${side}` }, side === sign ? [bar] : []);
    return element('li', { class: 'evidence-row', 'data-sign': sign, 'data-signal': e.signal, 'data-testid': 'evidence-row' }, [
      element('span', { class: 'evidence-name' }, [
        e.signal,
        element('span', { class: 'muted' }, [Number.isFinite(Number(e.value)) ? ` ${plain.format(Number(e.value))}` : '']),
      ]),
      element('span', { class: 'evidence-track' }, [half('negative'), half('positive')]),
      element('span', { class: 'evidence-value' }, [signed.format(contribution)]),
    ]);
  });
  figure.append(element('ul', {}, rows));
  return figure;
}

/** @param {unknown} error */
function errorText(error) {
  if (error instanceof ApiError) return error.code ? `${error.message} (${error.code}, HTTP ${error.status})` : `${error.message} (HTTP ${error.status})`;
  return error instanceof Error ? error.message : String(error);
}

/**
 * @typedef {import('/static/job-manager.js').ReviewPair} ReviewPair
 * @typedef {import('/static/job-manager.js').ReviewDecision} ReviewDecision
 * @typedef {{pair: ReviewPair, decision: ReviewDecision, state: 'held'|'sending'|'sent', timer?: any}} Entry
 */

export class ReviewView {
  /**
   * @param {{root: HTMLElement, manager: import('/static/job-manager.js').JobManager,
   *   onError: (error: unknown) => void, undoWindowMs?: number}} options
   */
  constructor({ root, manager, onError, undoWindowMs = UNDO_WINDOW_MS }) {
    this.root = root;
    this.api = manager.api;
    this.onError = onError;
    this.undoWindowMs = undoWindowMs;
    this.controller = null;
    this.jobId = null;
    this.sending = Promise.resolve();
    this.onKey = (/** @type {KeyboardEvent} */ event) => this.key(event);
    this.onLeave = () => this.flush({ keepalive: true });
    this.onVisibility = () => {
      if (document.visibilityState === 'hidden') this.onLeave();
    };
    this.reset();
  }

  reset() {
    /** @type {ReviewPair[]} */ this.queue = [];
    /** @type {ReviewPair|null} */ this.current = null;
    /** @type {ReviewPair[]} */ this.skipped = [];
    /** @type {Entry[]} */ this.history = [];
    /** @type {{total: number, decided: number, history: number}|null} */ this.counts = null;
    /** @type {Entry|null} */ this.held = null;
    /** @type {Set<string>} */ this.seen = new Set();
    /** @type {string|null} */ this.cursor = null;
    this.more = false;
    this.loading = null;
  }

  /** Open a job's review queue. @param {string} jobId */
  async show(jobId) {
    this.hide();
    const controller = new AbortController();
    this.controller = controller;
    this.jobId = jobId;
    this.reset();
    this.root.hidden = false;
    this.root.replaceChildren(element('p', { class: 'hint' }, ['Loading the review queue…']));
    document.addEventListener('keydown', this.onKey);
    window.addEventListener('pagehide', this.onLeave);
    document.addEventListener('visibilitychange', this.onVisibility);
    let job;
    try {
      job = await this.api.getJob(jobId, { signal: controller.signal });
    } catch (error) {
      if (controller.signal.aborted || isAbortError(error)) return;
      this.root.replaceChildren(
        element('p', { class: 'hint', 'data-testid': 'review-missing' }, [
          error?.status === 404 ? `No job with id ${jobId}.` : `Could not load job ${jobId}: ${errorText(error)}`,
        ]),
      );
      if (error?.status !== 404) this.onError(error);
      return;
    }
    this.job = job;
    this.build(job);
    try {
      const [project] = await Promise.all([
        this.api.getProject(job.projectId, { signal: controller.signal }),
        this.loadPage(),
      ]);
      this.renderCalibration(project.calibration);
    } catch (error) {
      if (!controller.signal.aborted) this.showError(error);
    }
    if (!this.current) this.advance();
    else this.render();
  }

  hide() {
    this.flush();
    this.controller?.abort();
    this.controller = null;
    this.root.hidden = true;
    document.removeEventListener('keydown', this.onKey);
    window.removeEventListener('pagehide', this.onLeave);
    document.removeEventListener('visibilitychange', this.onVisibility);
  }

  build(job) {
    const button = (action, label, key, cls = 'button') => {
      const node = element('button', { type: 'button', class: cls, 'data-action': action, 'aria-keyshortcuts': key }, [
        label,
        ' ',
        element('kbd', {}, [key]),
      ]);
      node.addEventListener('click', () => this.act(action));
      return node;
    };
    this.parts = {
      counter: element('p', { class: 'review-counter', 'data-testid': 'review-counter', 'aria-live': 'polite' }),
      calibration: element('p', { class: 'review-calibration muted', 'data-testid': 'review-calibration' }, ['Estimated precision — · recall —']),
      error: element('div', { class: 'banner banner-error review-error', role: 'alert', 'data-testid': 'review-error', hidden: '' }),
      status: element('p', { class: 'muted review-status', 'data-testid': 'review-status', 'aria-live': 'polite' }),
      pair: element('div', { class: 'review-pair-wrap', 'data-testid': 'review-pair' }),
      evidence: element('div', { class: 'review-evidence' }),
      actions: element('div', { class: 'review-actions', 'data-testid': 'review-actions' }, [
        button('match', 'Match', 'y', 'button primary'),
        button('no-match', 'No match', 'n', 'button danger'),
        button('none', 'No counterpart', '0'),
        button('skip', 'Skip', 's'),
        button('undo', 'Undo', 'u'),
      ]),
      candidates: element('section', { class: 'review-candidates', 'data-testid': 'review-candidates' }),
      done: element('div', { class: 'review-done', 'data-testid': 'review-done', hidden: '' }),
    };
    const p = this.parts;
    const reload = element('button', { type: 'button', class: 'button', 'data-action': 'reload' }, ['Reload the queue']);
    reload.addEventListener('click', () => void this.reload());
    p.done.append(element('p', {}, ['Nothing left to review in this queue.']), reload);
    this.root.replaceChildren(
      element('div', { class: 'section-head' }, [
        element('h2', {}, ['Review ', element('code', { 'data-testid': 'review-job-id' }, [job.id])]),
        element('a', { href: `#/jobs/${job.id}`, class: 'link-button' }, ['Back to the job']),
      ]),
      element('div', { class: 'review-figures' }, [p.counter, p.calibration]),
      ...(['pending', 'processing', 'paused'].includes(job.status)
        ? [element('p', { class: 'hint' }, ['The job is still running: the queue offers what its committed chunks decided. Reload it for more.'])]
        : []),
      p.error,
      p.pair,
      p.actions,
      p.status,
      p.evidence,
      p.candidates,
      p.done,
      element('p', { class: 'hint review-keys' }, [
        'Keys: ',
        ...[
          ['y', 'match'],
          ['n', 'no match'],
          ['1–9', 'that candidate'],
          ['0', 'no counterpart'],
          ['u', 'undo'],
          ['s', 'skip'],
        ].flatMap(([k, what], i) => [i ? ' · ' : '', element('kbd', {}, [k]), ` ${what}`]),
        `. A decision is sent ${Math.round(this.undoWindowMs / 1000)} s after you make it, or at your next one; until then undo leaves no trace.`,
      ]),
    );
  }

  // -- the queue --------------------------------------------------------------------

  /** The next page of the queue (one request at a time). */
  loadPage() {
    if (this.loading) return this.loading;
    const jobId = this.jobId;
    const signal = this.controller?.signal;
    const historyAtRequest = this.history.filter((entry) => entry.state !== 'held').length;
    this.loading = (async () => {
      try {
        const page = await this.api.reviewQueue(jobId, { limit: PAGE_SIZE, cursor: this.cursor, signal });
        if (this.jobId !== jobId || signal?.aborted) return;
        for (const pair of page.pairs) {
          if (this.seen.has(pair.itemId)) continue;
          this.seen.add(pair.itemId);
          this.queue.push(pair);
        }
        this.cursor = page.nextCursor;
        this.more = Boolean(page.nextCursor);
        // the server's count, from which this page's own decisions since are counted on
        this.counts = { total: page.total, decided: page.decided, history: historyAtRequest };
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  /** Load more when the end is near; errors show in the view. */
  prefetch() {
    if (!this.more || this.loading || this.queue.length > PREFETCH_REMAINING) return;
    const jobId = this.jobId;
    void this.loadPage()
      .then(() => {
        if (this.jobId !== jobId) return;
        if (!this.current) this.advance();
        else this.renderCounter();
      })
      .catch((error) => {
        if (!isAbortError(error)) this.showError(error);
      });
  }

  /** The next pair from the queue. */
  advance() {
    this.current = this.queue.shift() ?? null;
    this.render();
    this.prefetch();
  }

  /** Start again from the top of the queue (skipped pairs come back; decided ones do not). */
  async reload() {
    this.clearError();
    this.flush();
    await this.sending;
    const jobId = this.jobId;
    this.queue = [];
    this.skipped = [];
    this.current = null;
    this.seen = new Set();
    this.cursor = null;
    this.more = false;
    try {
      await this.loadPage();
    } catch (error) {
      if (!isAbortError(error)) this.showError(error);
    }
    if (this.jobId === jobId) this.advance();
  }

  // -- decisions --------------------------------------------------------------------

  /** @param {KeyboardEvent} event */
  key(event) {
    if (this.root.hidden || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = /** @type {HTMLElement|null} */ (event.target instanceof HTMLElement ? event.target : null);
    if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName))) return;
    const key = event.key.toLowerCase();
    const known = REVIEW_KEYS.find((k) => k.key === key);
    if (known) {
      event.preventDefault();
      this.act(known.action);
    } else if (/^[1-9]$/.test(key)) {
      event.preventDefault();
      this.act('candidate', Number(key));
    }
  }

  /**
   * @param {string} action
   * @param {number} [number]  the candidate's number (1-based) for `candidate`
   */
  act(action, number = 0) {
    if (!this.parts) return;
    this.clearError();
    const pair = this.current;
    if (action === 'undo') return this.undo();
    if (!pair) return;
    if (action === 'skip') {
      this.skipped.push(pair);
      this.say(`Skipped item ${pair.itemId}.`);
      this.advance();
      return;
    }
    if (action === 'match') {
      if (!pair.catalogId) return this.say('This item has no proposed record: choose a candidate or 0.');
      return this.decide({ itemId: pair.itemId, catalogId: pair.catalogId, decision: 'match' });
    }
    if (action === 'no-match') {
      return this.decide({ itemId: pair.itemId, catalogId: pair.catalogId ?? null, decision: 'no-match' });
    }
    if (action === 'none') return this.decide({ itemId: pair.itemId, catalogId: null, decision: 'no-match' });
    if (action === 'candidate') {
      const candidate = this.others(pair)[number - 1];
      if (!candidate) return this.say(`There is no candidate ${number}.`);
      return this.decide({ itemId: pair.itemId, catalogId: candidate.catalogId, decision: 'match' });
    }
  }

  /** The pair's candidates other than the proposed record, numbered from 1. @param {ReviewPair} pair */
  others(pair) {
    return (pair.candidates ?? []).filter((c) => c.catalogId !== pair.catalogId).slice(0, MAX_CANDIDATES);
  }

  /** @param {ReviewDecision} decision */
  decide(decision) {
    const pair = /** @type {ReviewPair} */ (this.current);
    this.flush();
    /** @type {Entry} */
    const entry = { pair, decision, state: 'held' };
    entry.timer = setTimeout(() => {
      if (this.held === entry) this.flush();
    }, this.undoWindowMs);
    this.held = entry;
    this.history.push(entry);
    this.say(`${describe(decision)} for item ${pair.itemId} — u undoes it.`);
    this.advance();
  }

  /** Send the decision in hand, if any (in order after those already on their way). */
  flush({ keepalive = false } = {}) {
    const entry = this.held;
    if (!entry) return;
    this.held = null;
    clearTimeout(entry.timer);
    entry.state = 'sending';
    const jobId = this.jobId;
    this.sending = this.sending.then(() => this.send(jobId, entry, keepalive));
    this.renderCounter();
  }

  /**
   * @param {string|null} jobId
   * @param {Entry} entry
   * @param {boolean} keepalive
   */
  async send(jobId, entry, keepalive) {
    try {
      const answer = await this.api.decide(/** @type {string} */ (jobId), [entry.decision], { keepalive });
      entry.state = 'sent';
      if (this.jobId !== jobId) return;
      this.renderCalibration(answer.calibration);
      this.renderCounter();
    } catch (error) {
      if (this.jobId !== jobId) {
        this.onError(error);
        return;
      }
      // not stored: the pair comes back with the reason, to be decided again
      this.history = this.history.filter((e) => e !== entry);
      if (entry.pair.previous === entry.decision) delete entry.pair.previous;
      if (this.current && this.current !== entry.pair) this.queue.unshift(this.current);
      this.current = entry.pair;
      this.render();
      this.showError(error, `Your decision on item ${entry.pair.itemId} was not saved: `);
    }
  }

  undo() {
    const entry = this.history.pop();
    if (!entry) return this.say('Nothing to undo.');
    if (this.current && this.current !== entry.pair) this.queue.unshift(this.current);
    this.current = entry.pair;
    if (entry.state === 'held') {
      clearTimeout(entry.timer);
      this.held = null;
      this.say(`Undone: ${describe(entry.decision).toLowerCase()} for item ${entry.pair.itemId} was never sent.`);
    } else {
      entry.pair.previous = entry.decision;
      this.say(`Already saved: ${describe(entry.decision).toLowerCase()} for item ${entry.pair.itemId}. Decide again to replace it.`);
    }
    this.render();
  }

  // -- rendering --------------------------------------------------------------------

  render() {
    const p = this.parts;
    if (!p) return;
    const pair = this.current;
    this.renderCounter();
    p.done.hidden = Boolean(pair) || Boolean(this.loading);
    p.pair.hidden = !pair;
    p.evidence.hidden = !pair;
    p.candidates.hidden = !pair;
    for (const button of p.actions.querySelectorAll('button')) {
      const action = button.getAttribute('data-action');
      /** @type {HTMLButtonElement} */ (button).disabled =
        action === 'undo' ? this.history.length === 0 : !pair || (action === 'match' && !pair.catalogId);
    }
    if (!pair) {
      p.pair.replaceChildren();
      p.evidence.replaceChildren();
      p.candidates.replaceChildren();
      return;
    }
    const side = (testId, heading, text, other, id, extra = []) =>
      element('section', { class: 'review-side', 'data-testid': testId }, [
        element('h3', {}, [heading]),
        element('p', { class: 'review-text' }, text == null ? [element('span', { class: 'muted' }, ['(none)'])] : markDifferences(text, other)),
        element('p', { class: 'muted small' }, [id == null ? '' : String(id), ...extra]),
      ]);
    const score = Number(pair.score);
    p.pair.dataset.itemId = pair.itemId;
    p.pair.replaceChildren(
      ...(pair.previous
        ? [element('p', { class: 'review-previous', 'data-testid': 'review-previous' }, [`Saved earlier: ${describe(pair.previous).toLowerCase()}. A new decision replaces it.`])]
        : []),
      element('div', { class: 'review-pair' }, [
        side('review-item', 'Item', pair.itemText, pair.catalogText, pair.itemId),
        side('review-record', recordHeading(pair), pair.catalogId ? pair.catalogText : null, pair.itemText, pair.catalogId, [
          ' · ',
          element('span', { class: 'tag' }, [pair.method ?? '']),
          ' ',
          element('span', { class: 'score', 'data-testid': 'review-score' }, [Number.isFinite(score) ? score.toFixed(2) : '—']),
        ]),
      ]),
    );
    p.evidence.replaceChildren(
      ...(pair.reason ? [element('p', { class: 'review-reason muted' }, [pair.reason])] : []),
      evidenceChart(pair.explanation),
    );
    const others = this.others(pair);
    p.candidates.replaceChildren(
      element('h3', {}, ['Other candidates']),
      others.length
        ? element(
            'ol',
            { class: 'candidate-list' },
            others.map((c, index) => {
              const button = element('button', { type: 'button', class: 'candidate', 'data-action': 'candidate', 'data-index': String(index + 1), 'data-catalog-id': c.catalogId, 'aria-keyshortcuts': String(index + 1) }, [
                element('kbd', {}, [String(index + 1)]),
                element('span', { class: 'candidate-text' }, markDifferences(c.catalogText, pair.itemText)),
                element('span', { class: 'muted small' }, [`${c.catalogId} · ${Number(c.score).toFixed(2)}`]),
              ]);
              button.addEventListener('click', () => this.act('candidate', index + 1));
              return element('li', {}, [button]);
            }),
          )
        : element('p', { class: 'hint' }, ['No other candidates.']),
    );
  }

  renderCounter() {
    if (!this.parts) return;
    // The job's whole queue as the server counts it (other reviewers' decisions included),
    // plus this page's decisions since that count; a running job's queue still grows.
    const counts = this.counts;
    const total = counts ? counts.total : this.history.length + this.queue.length + (this.current ? 1 : 0);
    const reviewed = counts
      ? Math.min(total, counts.decided + Math.max(0, this.history.length - counts.history))
      : this.history.length;
    const counter = this.parts.counter;
    counter.dataset.reviewed = String(reviewed);
    counter.dataset.total = String(total);
    counter.textContent = `${integer.format(reviewed)} of ${integer.format(total)} uncertain reviewed`;
    if (this.skipped.length) counter.textContent += ` · ${integer.format(this.skipped.length)} skipped`;
  }

  /** @param {import('/static/job-manager.js').Calibration|null|undefined} calibration */
  renderCalibration(calibration) {
    if (!this.parts || !calibration) return;
    const node = this.parts.calibration;
    node.dataset.labels = String(calibration.labels ?? 0);
    node.dataset.precision = String(calibration.estimatedPrecision ?? '');
    node.dataset.recall = String(calibration.estimatedRecall ?? '');
    const threshold = typeof calibration.threshold === 'number' ? ` · threshold ${calibration.threshold.toFixed(2)}` : '';
    node.textContent =
      `Estimated precision ${share(calibration.estimatedPrecision)} · recall ${share(calibration.estimatedRecall)}` +
      ` · ${integer.format(calibration.labels ?? 0)} ${calibration.labels === 1 ? 'label' : 'labels'} in the project${threshold}`;
  }

  /** @param {string} text */
  say(text) {
    if (this.parts) this.parts.status.textContent = text;
  }

  /** @param {unknown} error @param {string} [prefix] */
  showError(error, prefix = '') {
    if (isAbortError(error) || !this.parts) return;
    if (error instanceof ApiError && error.status === 401) this.onError(error); // the page asks for a token
    this.parts.error.textContent = prefix + errorText(error);
    this.parts.error.hidden = false;
    console.warn(error);
  }

  clearError() {
    if (!this.parts) return;
    this.parts.error.hidden = true;
    this.parts.error.textContent = '';
  }
}

/**
 * What the proposed record is to the job: its match, or an unmatched item's best candidate
 * (with the chance that the job decided wrong, where the server gives them).
 * @param {ReviewPair} pair
 */
function recordHeading(pair) {
  const what = pair.matched === true ? 'Matched record' : pair.matched === false ? 'Best candidate (not matched)' : 'Proposed record';
  const chance = Number(pair.errorChance);
  return Number.isFinite(chance) && pair.errorChance != null ? `${what} · ${Math.round(chance * 100)} % likely wrong` : what;
}

/** @param {ReviewDecision} decision */
function describe(decision) {
  if (decision.decision === 'match') return `Match with ${decision.catalogId}`;
  return decision.catalogId == null ? 'No counterpart' : `No match with ${decision.catalogId}`;
}
