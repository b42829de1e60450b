// Formatting and DOM helpers shared by the page's views.

export const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
export const decimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

/** @param {number|null|undefined} value */
export const percent = (value) => `${decimal.format(Number(value ?? 0))}%`;

/** @param {number} seconds */
export function duration(seconds) {
  if (seconds < 1) return 'under a second';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${decimal.format(seconds / 3600)} h`;
}

/** @param {string|null|undefined} iso */
export function dateTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/**
 * @param {string} tag
 * @param {Record<string, string>} [attributes]
 * @param {(Node|string)[]} [children]
 */
export function element(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/**
 * What a job is doing, for a person: its status, or "preparing" while the job says it is
 * building the catalog index and peers (a `preparation` object or a `preparing` flag).
 * @param {object} job
 * @returns {{state: string, label: string, progress: number|null}}
 */
export function jobState(job) {
  const prep = job.preparation ?? (job.preparing ? {} : null);
  if (prep && !['completed', 'failed', 'cancelled'].includes(job.status)) {
    const raw = prep.progress ?? prep.percentage ?? null;
    const progress = raw == null ? null : Number(raw) <= 1 ? Number(raw) * 100 : Number(raw);
    const label = prep.label ?? prep.stage ?? (progress == null ? 'Preparing' : `Preparing ${Math.round(progress)} %`);
    return { state: 'preparing', label, progress };
  }
  const labels = { cancelled: 'cancelled', pending: 'pending', processing: 'processing' };
  return { state: job.status, label: labels[job.status] ?? job.status, progress: null };
}

/**
 * A progress bar for a job (or its preparation), in place of `bar` when given.
 * @param {object} job
 * @param {HTMLElement} [bar]
 */
export function progressBar(job, bar = element('div', { class: 'progress', role: 'progressbar' })) {
  const { state, progress } = jobState(job);
  const pct = Math.max(0, Math.min(100, Number(state === 'preparing' ? progress ?? 0 : job.progressPercentage ?? 0)));
  bar.dataset.status = state;
  bar.setAttribute('aria-valuemin', '0');
  bar.setAttribute('aria-valuemax', '100');
  bar.setAttribute('aria-valuenow', String(Math.round(pct * 10) / 10));
  let fill = /** @type {HTMLElement|null} */ (bar.firstElementChild);
  if (!fill) {
    fill = element('div', { class: 'progress-fill' });
    bar.append(fill);
  }
  fill.style.width = `${pct}%`;
  return bar;
}

/** A status badge; cancel is a neutral state, not an error. @param {object} job */
export function statusBadge(job) {
  const { state, label } = jobState(job);
  return element('span', { class: 'badge', 'data-status': state, 'data-testid': 'status-badge' }, [label]);
}
