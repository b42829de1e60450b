// The chunkmatch page: pick a project, upload catalog and items, run an enhanced job
// with live progress, browse and download its matches.
import { ApiError, JobEndedError, JobManager, isAbortError, isTerminal, isWorkbook } from '/static/job-manager.js';
import { Dashboard } from '/static/views/dashboard.js';
import { dateTime, decimal, duration, element, integer, jobState, percent } from '/static/views/format.js';
import { CANCEL_CONFIRM, JobView } from '/static/views/job-view.js';
import { ReviewView } from '/static/views/review.js';

const TOKEN_KEY = 'chunkmatch.token';
const COLUMNS_KEY = 'chunkmatch.columns'; // + `.${projectId}.${kind}`: the match columns chosen
const MATCHES_PAGE_SIZE = 100;
const PREFERRED_MATCH_COLUMNS = ['name', 'title'];

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

function readToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null; // storage disabled (private mode, file://)
  }
}

const manager = new JobManager({ token: readToken() });
const api = manager.api;

const state = {
  /** @type {string|null} */ projectId: null,
  /** @type {import('/static/job-manager.js').Job|null} */ job: null,
  running: false,
  /** @type {string|null} */ matchesJobId: null,
  /** @type {string|null} */ matchesCursor: null,
  matchesShown: 0,
  /** @type {import('/static/job-manager.js').Job[]} */ jobs: [],
};

// -- errors ----------------------------------------------------------------------

/** @param {unknown} error */
function showError(error) {
  if (isAbortError(error)) return;
  if (error instanceof ApiError && error.status === 401) showTokenForm();
  let text;
  if (error instanceof ApiError) {
    text = error.code ? `${error.message} (${error.code}, HTTP ${error.status})` : error.message;
  } else if (error instanceof Error) {
    text = error.message;
  } else {
    text = String(error);
  }
  $('error-text').textContent = text;
  const existing = error instanceof ApiError && error.status === 409 ? error.details?.existingJobId : null;
  if (existing) {
    const link = element('a', { href: `#/jobs/${existing}`, 'data-testid': 'existing-job-link' }, ['Open the running job']);
    $('error-text').append(' ', link);
  }
  $('error-banner').hidden = false;
  console.error(error);
}

function clearError() {
  $('error-banner').hidden = true;
  $('error-text').textContent = '';
}

/**
 * Run an event handler with a disabled button and errors shown in the banner.
 * @param {HTMLButtonElement|null} button
 * @param {() => Promise<void>} action
 */
async function guarded(button, action) {
  clearError();
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    showError(error);
  } finally {
    if (button) button.disabled = false;
  }
}

// -- token -----------------------------------------------------------------------

function showTokenForm() {
  $('token-section').hidden = false;
  /** @type {HTMLInputElement} */ ($('token-input')).focus();
}

/** @param {SubmitEvent} event */
async function onTokenSubmit(event) {
  event.preventDefault();
  const input = /** @type {HTMLInputElement} */ ($('token-input'));
  const token = input.value.trim();
  if (!token) return;
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // storage disabled: the token still works for this page's life
  }
  api.token = token;
  input.value = '';
  $('token-section').hidden = true;
  await guarded(null, () => loadProjects());
  route();
}

// -- health ----------------------------------------------------------------------

async function checkHealth() {
  const badge = $('health');
  try {
    const health = await api.health();
    badge.dataset.state = 'ok';
    badge.textContent = `database ${health.database ?? 'ok'}`;
  } catch (error) {
    badge.dataset.state = 'down';
    badge.textContent = error instanceof ApiError ? `unavailable: ${error.message}` : 'server unreachable';
  }
}

// -- projects --------------------------------------------------------------------

/** @param {string|null} [selectId] */
async function loadProjects(selectId = state.projectId) {
  const projects = await api.listProjects();
  const select = /** @type {HTMLSelectElement} */ ($('project-select'));
  select.replaceChildren(element('option', { value: '' }, ['— choose a project —']));
  for (const project of projects) {
    const counts = `${integer.format(project.itemCount)} items, ${integer.format(project.catalogCount)} catalog`;
    // projects often share a name (one per `chunkmatch run`): the date tells them apart
    const label = `${project.name} · ${dateTime(project.createdAt)} · ${counts}`;
    select.append(element('option', { value: project.id }, [label]));
  }
  if (selectId && projects.some((p) => p.id === selectId)) select.value = selectId;
}

/** @param {string|null} projectId */
async function selectProject(projectId) {
  state.projectId = projectId || null;
  document.body.classList.toggle('has-project', Boolean(state.projectId));
  history.replaceState(null, '', state.projectId ? `#project=${encodeURIComponent(state.projectId)}` : '#');
  hideMatches();
  state.jobs = [];
  renderJobs();
  if (!state.projectId) {
    $('project-info').hidden = true;
    return;
  }
  await Promise.all([refreshProject(), loadJobs()]);
}

async function refreshProject() {
  if (!state.projectId) return;
  const project = await api.getProject(state.projectId);
  $('project-catalog-count').textContent = integer.format(project.catalogCount);
  $('project-item-count').textContent = integer.format(project.itemCount);
  $('project-matched').textContent = integer.format(project.matchedItems);
  $('project-unmatched').textContent = integer.format(project.unmatchedItems);
  $('project-info').hidden = false;
  // Offer the stored columns when no file has been picked in this session.
  for (const [kind, columns] of [
    ['catalog', project.catalogColumns],
    ['items', project.itemColumns],
  ]) {
    const file = /** @type {HTMLInputElement} */ ($(`${kind}-file`)).files?.[0];
    // a workbook's columns are known once it is uploaded
    if (!file || isWorkbook(file)) renderMatchColumns(kind, columns ?? []);
  }
}

// -- CSV headers -----------------------------------------------------------------

const DECODER_LABELS = { 'utf-8': 'utf-8', 'latin-1': 'iso-8859-1', cp1252: 'windows-1252' };

/**
 * Header bytes as text: in the chosen encoding, or (Detect) UTF-8 unless it is not.
 * @param {ArrayBuffer} bytes
 * @param {string} encoding
 */
function decodeHeader(bytes, encoding) {
  if (encoding) return new TextDecoder(DECODER_LABELS[encoding] ?? encoding).decode(bytes);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return new TextDecoder('windows-1252').decode(bytes); // the server detects the real one
  }
}

/**
 * Column names from the first record of a CSV file (RFC 4180 quoting), decoded with
 * the encoding the user chose. Reads only the start of the file.
 * @param {Blob} file
 * @param {string} encoding
 * @returns {Promise<string[]>}
 */
async function readCsvHeader(file, encoding) {
  const bytes = await file.slice(0, 64 * 1024).arrayBuffer();
  if (!encoding && new Uint8Array(bytes).includes(0)) throw new Error('this is not a CSV or Excel file');
  const text = decodeHeader(bytes, encoding).replace(/^\uFEFF/, '');
  const columns = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i];
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (char === '"') {
        quoted = false;
      } else {
        cell += char;
      }
    } else if (char === '"') {
      quoted = true;
    } else if (char === ',') {
      columns.push(cell.trim());
      cell = '';
    } else if (char === '\n' || char === '\r') {
      break;
    } else {
      cell += char;
    }
  }
  columns.push(cell.trim());
  return columns.filter((column, index) => column !== '' || index < columns.length - 1);
}

/**
 * @param {string} kind
 * @param {string[]} columns
 */
function renderIdColumn(kind, columns) {
  const select = /** @type {HTMLSelectElement} */ ($(`${kind}-id-field`));
  select.replaceChildren(...columns.map((column) => element('option', { value: column }, [column])));
  select.disabled = columns.length === 0;
  if (columns.length === 0) select.append(element('option', { value: '' }, ['choose a file first']));
  select.value = columns.includes('id') ? 'id' : (columns[0] ?? '');
}

/**
 * @param {string} kind
 * @param {string[]} columns
 */
function renderMatchColumns(kind, columns) {
  const fieldset = $(`${kind}-fields`);
  const legend = element('legend', {}, ['Match on columns']);
  if (columns.length === 0) {
    fieldset.replaceChildren(legend, element('p', { class: 'hint' }, ['Choose a file to see its columns.']));
    return;
  }
  const remembered = rememberedColumns(kind).filter((column) => columns.includes(column));
  const preferred = PREFERRED_MATCH_COLUMNS.find((column) => columns.includes(column));
  const chosen = remembered.length ? remembered : preferred ? [preferred] : [];
  const boxes = columns.map((column) => {
    const input = element('input', { type: 'checkbox', name: `${kind}-field`, value: column });
    if (chosen.includes(column)) /** @type {HTMLInputElement} */ (input).checked = true;
    return element('label', { class: 'chip' }, [input, column]);
  });
  fieldset.replaceChildren(legend, ...boxes);
}

/** The match columns last chosen for this project's `kind`. @param {string} kind */
function rememberedColumns(kind) {
  if (!state.projectId) return [];
  try {
    const saved = JSON.parse(localStorage.getItem(`${COLUMNS_KEY}.${state.projectId}.${kind}`) ?? '[]');
    return Array.isArray(saved) ? saved.filter((c) => typeof c === 'string') : [];
  } catch {
    return [];
  }
}

/** @param {string} kind */
function rememberColumns(kind) {
  if (!state.projectId) return;
  try {
    localStorage.setItem(`${COLUMNS_KEY}.${state.projectId}.${kind}`, JSON.stringify(checkedColumns(kind)));
  } catch {
    // storage disabled: the choice lasts for this page's life
  }
}

/** @param {string} kind */
function checkedColumns(kind) {
  return [...document.querySelectorAll(`input[name="${kind}-field"]:checked`)].map(
    (input) => /** @type {HTMLInputElement} */ (input).value,
  );
}

/** @param {string} kind */
async function onFileOrEncodingChange(kind) {
  clearError();
  const file = /** @type {HTMLInputElement} */ ($(`${kind}-file`)).files?.[0];
  $(`${kind}-result`).textContent = '';
  if (!file) {
    renderIdColumn(kind, []);
    renderMatchColumns(kind, []);
    return;
  }
  const encoding = /** @type {HTMLSelectElement} */ ($(`${kind}-encoding`)).value;
  if (isWorkbook(file)) {
    renderIdColumn(kind, ['id']);
    const fieldset = $(`${kind}-fields`);
    fieldset.replaceChildren(
      element('legend', {}, ['Match on columns']),
      element('p', { class: 'hint' }, ['An Excel file: its first sheet is read; its columns show here after the upload (or, if it has no id column, after a first try).']),
    );
    return;
  }
  try {
    const columns = await readCsvHeader(file, encoding);
    renderIdColumn(kind, columns);
    renderMatchColumns(kind, columns);
  } catch (error) {
    showError(new Error(`Could not read the header of ${file.name}: ${error.message}`));
  }
}

/** @param {HTMLFormElement} form */
async function onUpload(form) {
  const kind = form.dataset.kind ?? 'items';
  const result = $(`${kind}-result`);
  if (!state.projectId) throw new Error('Choose or create a project first.');
  const file = /** @type {HTMLInputElement} */ ($(`${kind}-file`)).files?.[0];
  if (!file) throw new Error('Choose a CSV or Excel file first.');
  const idField = /** @type {HTMLSelectElement} */ ($(`${kind}-id-field`)).value || 'id';
  const encoding = /** @type {HTMLSelectElement} */ ($(`${kind}-encoding`)).value;
  result.textContent = 'Uploading…';
  result.dataset.state = 'busy';
  try {
    const counts = await api.upload(state.projectId, /** @type {'catalog'|'items'} */ (kind), file, {
      idField,
      encoding,
    });
    const [inserted, updated, total] = [counts.inserted, counts.updated, counts.total].map((n) => integer.format(n));
    const readAs = counts.encoding ? ` (read as ${counts.encoding})` : '';
    result.textContent = `Inserted ${inserted}, updated ${updated} — ${total} in total${readAs}`;
  } catch (error) {
    result.textContent = 'Upload failed.';
    result.dataset.state = 'error';
    const columns = error instanceof ApiError ? /** @type {any} */ (error.details)?.columns : null;
    if (Array.isArray(columns) && columns.length) {
      // no such id column (an Excel file's columns are first known here): offer the real ones
      renderIdColumn(kind, columns);
      renderMatchColumns(kind, columns);
      result.textContent = 'Upload failed: choose the ID column, then upload again.';
    }
    throw error;
  }
  // "done" once the project's counts show the upload too
  await Promise.all([refreshProject(), loadProjects()]);
  result.dataset.state = 'done';
}

// -- job progress ----------------------------------------------------------------

/** @param {import('/static/job-manager.js').Job} job */
function renderJob(job) {
  state.job = job;
  $('job-panel').hidden = false;
  if (state.revealPanel) {
    state.revealPanel = false;
    $('job-panel').scrollIntoView({ behavior: 'smooth', block: 'center' });
  }
  const shown = jobState(job);
  const status = $('job-status');
  status.textContent = shown.label;
  status.dataset.status = shown.state;
  $('job-stage').textContent = job.currentStageName ? `Stage ${job.currentStage}: ${job.currentStageName}` : '';

  const pct = Math.max(0, Math.min(100, Number(job.progressPercentage ?? 0)));
  // while the job is being prepared the bar shows the preparation's progress
  const barPct = shown.state === 'preparing' ? Math.max(0, Math.min(100, shown.progress ?? 0)) : pct;
  const bar = $('progress-bar');
  bar.setAttribute('aria-valuenow', String(Math.round(barPct * 10) / 10));
  bar.dataset.status = shown.state;
  $('progress-fill').style.width = `${barPct}%`;
  const processed = `${integer.format(job.processedItems)} / ${integer.format(job.totalItems)}`;
  $('progress-text').textContent = `${processed} items (${percent(pct)})`;

  $('stat-processed').textContent = processed;
  $('stat-percentage').textContent = percent(pct);
  $('stat-matches').textContent = integer.format(job.matchesFound);
  $('stat-match-rate').textContent = percent(job.matchRate);
  $('stat-speed').textContent = job.itemsPerSecond != null ? decimal.format(job.itemsPerSecond) : '—';
  const [eta, etaDetail] = etaText(job);
  $('stat-eta').replaceChildren(eta, ...(etaDetail ? [element('span', { class: 'sub' }, [etaDetail])] : []));
}

/**
 * Estimated completion as [time, detail].
 * @param {import('/static/job-manager.js').Job} job
 * @returns {[string, string]}
 */
function etaText(job) {
  if (job.status === 'completed') {
    return job.completedAt ? [new Date(job.completedAt).toLocaleTimeString(), 'finished'] : ['finished', ''];
  }
  if (isTerminal(job.status)) return ['—', ''];
  if (!job.estimatedCompletion) return ['estimating…', ''];
  const at = new Date(job.estimatedCompletion).toLocaleTimeString();
  return [at, job.etaSeconds != null ? `in ${duration(job.etaSeconds)}` : ''];
}

/** @param {boolean} running */
function setRunning(running) {
  state.running = running;
  /** @type {HTMLButtonElement} */ ($('start-job')).disabled = running;
  $('cancel-job').hidden = !running;
  document.body.classList.toggle('job-running', running);
}

function jobConfig() {
  /** @type {import('/static/job-manager.js').JobConfig} */
  const config = {};
  const itemFields = checkedColumns('items');
  const catalogFields = checkedColumns('catalog');
  if (itemFields.length) config.itemFields = itemFields;
  if (catalogFields.length) config.catalogFields = catalogFields;
  const threshold = /** @type {HTMLInputElement} */ ($('threshold')).value.trim();
  if (threshold !== '') {
    const value = Number(threshold);
    if (!(value >= 0 && value <= 1)) throw new Error('Threshold must be a number between 0 and 1.');
    config.threshold = value;
  }
  const chunkSize = /** @type {HTMLInputElement} */ ($('chunk-size')).value.trim();
  if (chunkSize !== '') {
    const value = Number(chunkSize);
    if (!(Number.isInteger(value) && value >= 1)) throw new Error('Chunk size must be a whole number of at least 1.');
    config.chunkSize = value;
  }
  return config;
}

/**
 * Drive a job (a new one, or an existing unfinished one) and show its progress.
 * @param {() => Promise<import('/static/job-manager.js').Job>} run
 */
async function runJob(run) {
  if (state.running) return;
  hideMatches();
  setRunning(true);
  state.revealPanel = true;
  $('job-message').textContent = '';
  try {
    const job = await run();
    renderJob(job);
    $('job-message').textContent = `Finished: ${integer.format(job.matchesFound)} matches.`;
    await showMatches(job.id);
  } catch (error) {
    if (error instanceof JobEndedError) renderJob(error.job);
    if (error instanceof JobEndedError && error.job.status === 'cancelled') {
      // asked for: a state, not an error
      $('job-message').textContent = `Cancelled after ${integer.format(error.job.processedItems)} items.`;
    } else {
      showError(error);
    }
  } finally {
    setRunning(false);
    await Promise.all([loadJobs(), refreshProject()]).catch(showError);
  }
}

/** @param {import('/static/job-manager.js').Job} job */
async function onJobUpdate(job) {
  renderJob(job);
  const index = state.jobs.findIndex((known) => known.id === job.id);
  if (index >= 0) {
    state.jobs[index] = job;
    renderJobs();
  } else if (job.projectId === state.projectId) {
    await loadJobs().catch(showError);
  }
}

const onRetry = ({ delayMs, error }) => {
  $('job-message').textContent = `${error.message} — retrying in ${duration(delayMs / 1000)}…`;
};

async function startJob() {
  if (!state.projectId) throw new Error('Choose or create a project first.');
  const config = jobConfig();
  const projectId = state.projectId;
  void runJob(() =>
    manager.startJob(projectId, 'enhanced', onJobUpdate, {
      config: Object.keys(config).length ? config : undefined,
      onRetry,
    }),
  );
}

/** @param {string} jobId */
function resumeJob(jobId) {
  clearError();
  void runJob(() => manager.drive(jobId, onJobUpdate, { onRetry }));
}

async function cancelJob() {
  // as the job view's Cancel: a cancelled job cannot be resumed
  if (!state.job || !window.confirm(CANCEL_CONFIRM)) return;
  const job = await manager.cancel(state.job.id);
  renderJob(job);
}

// -- matches ---------------------------------------------------------------------

function hideMatches() {
  $('matches-section').hidden = true;
  $('matches-body').replaceChildren();
  state.matchesJobId = null;
  state.matchesCursor = null;
  state.matchesShown = 0;
}

/** @param {string} jobId */
async function showMatches(jobId) {
  hideMatches();
  state.matchesJobId = jobId;
  const link = /** @type {HTMLAnchorElement} */ ($('download-csv'));
  link.href = api.matchesCsvUrl(jobId);
  link.setAttribute('download', `matches-${jobId}.csv`);
  $('matches-section').hidden = false;
  await loadMoreMatches();
  $('matches-section').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

async function loadMoreMatches() {
  const jobId = state.matchesJobId;
  if (!jobId) return;
  const page = await api.listMatches(jobId, { limit: MATCHES_PAGE_SIZE, cursor: state.matchesCursor });
  if (state.matchesJobId !== jobId) return; // another job was opened meanwhile
  const rows = page.matches.map((match) =>
    element('tr', { 'data-testid': 'match-row' }, [
      element('td', {}, [
        element('div', {}, [match.itemText ?? '']),
        element('div', { class: 'muted small' }, [String(match.itemId)]),
      ]),
      element('td', {}, [
        element('div', {}, [match.catalogText ?? '']),
        element('div', { class: 'muted small' }, [String(match.catalogId)]),
      ]),
      element('td', { class: 'num' }, [scoreBadge(match.score)]),
      element('td', {}, [element('span', { class: 'tag' }, [match.method ?? ''])]),
      element('td', { class: 'reason' }, [match.reason ?? '']),
    ]),
  );
  $('matches-body').append(...rows);
  state.matchesShown += page.matches.length;
  state.matchesCursor = page.nextCursor;
  $('load-more').hidden = !page.nextCursor;
  $('matches-empty').hidden = state.matchesShown > 0;
  $('matches-count').textContent = `showing ${integer.format(state.matchesShown)}${page.nextCursor ? '+' : ''}`;
}

/** @param {number} score 0..1 */
function scoreBadge(score) {
  const value = Number(score);
  const level = value >= 0.9 ? 'high' : value >= 0.75 ? 'mid' : 'low';
  return element('span', { class: `score score-${level}` }, [value.toFixed(2)]);
}

/** @param {MouseEvent} event */
async function onDownload(event) {
  // A plain link cannot carry the Authorization header: fetch the CSV ourselves then.
  if (!api.token || !state.matchesJobId) return;
  event.preventDefault();
  const response = await fetch(api.matchesCsvUrl(state.matchesJobId), {
    headers: { Authorization: `Bearer ${api.token}` },
  });
  if (!response.ok) throw new Error(`Download failed: HTTP ${response.status}`);
  const url = URL.createObjectURL(await response.blob());
  const link = element('a', { href: url, download: `matches-${state.matchesJobId}.csv` });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// -- previous jobs ---------------------------------------------------------------

async function loadJobs() {
  if (!state.projectId) return;
  const projectId = state.projectId;
  const jobs = await api.listJobs(projectId);
  if (state.projectId !== projectId) return;
  state.jobs = jobs;
  renderJobs();
}

function renderJobs() {
  const rows = state.jobs.map((job) => {
    const actions = element('td', { class: 'actions-cell' });
    if (job.matchesFound > 0 || job.status === 'completed') {
      const view = element('button', { type: 'button', class: 'link-button', 'data-action': 'matches' }, ['Matches']);
      view.addEventListener('click', () => guarded(null, () => showMatches(job.id)));
      actions.append(view);
    }
    actions.append(element('a', { href: `#/jobs/${job.id}`, class: 'link-button', 'data-action': 'details' }, ['Details']));
    if (job.processedItems > 0) {
      actions.append(element('a', { href: `#/jobs/${job.id}/review`, class: 'link-button', 'data-action': 'review' }, ['Review']));
    }
    const drivenHere = state.running && state.job?.id === job.id;
    if (!isTerminal(job.status) && !drivenHere) {
      const resume = element('button', { type: 'button', class: 'link-button', 'data-action': 'resume' }, ['Resume']);
      resume.addEventListener('click', () => resumeJob(job.id));
      actions.append(resume);
    }
    return element('tr', { 'data-testid': 'job-row', 'data-job-id': job.id }, [
      element('td', {}, [dateTime(job.createdAt)]),
      element('td', {}, [job.jobType]),
      element('td', {}, [
        element('span', { class: 'badge', 'data-status': job.status }, [job.status]),
        ...(job.error ? [element('div', { class: 'muted small' }, [job.error])] : []),
      ]),
      element('td', { class: 'num' }, [
        `${integer.format(job.processedItems)} / ${integer.format(job.totalItems)} (${percent(job.progressPercentage)})`,
      ]),
      element('td', { class: 'num' }, [integer.format(job.matchesFound)]),
      element('td', { class: 'num' }, [percent(job.matchRate)]),
      actions,
    ]);
  });
  $('jobs-body').replaceChildren(...rows);
  $('jobs-empty').hidden = rows.length > 0;
}

// -- views ------------------------------------------------------------------------

const dashboard = new Dashboard({ root: $('dashboard-view'), manager, onError: showError });
const jobView = new JobView({ root: $('job-view'), manager, onError: showError });
const reviewView = new ReviewView({ root: $('review-view'), manager, onError: showError });

/**
 * Show the view the address names: `#/jobs/{id}/review`, `#/jobs/{id}`, `#/jobs`, else the
 * matching steps.
 */
function route() {
  const hash = location.hash;
  const review = /^#\/jobs\/([^/?#]+)\/review\/?$/.exec(hash);
  const job = !review && /^#\/jobs\/([^/?#]+)/.exec(hash);
  const jobs = !review && !job && /^#\/jobs\/?$/.test(hash);
  document.body.dataset.view = review ? 'review' : job ? 'job' : jobs ? 'jobs' : 'workflow';
  $('workflow-view').hidden = Boolean(review || job || jobs);
  if (!readToken() && !api.token) return;
  if (!review) reviewView.hide();
  if (!job) jobView.hide();
  if (!jobs) dashboard.hide();
  if (review) void reviewView.show(decodeURIComponent(review[1]));
  else if (job) void jobView.show(decodeURIComponent(job[1]));
  else if (jobs) void dashboard.show().catch(showError);
}

// -- wiring ----------------------------------------------------------------------

function wire() {
  $('error-dismiss').addEventListener('click', clearError);
  $('project-select').addEventListener('change', (event) =>
    guarded(null, () => selectProject(/** @type {HTMLSelectElement} */ (event.target).value)),
  );
  $('create-project-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = /** @type {HTMLInputElement} */ ($('project-name'));
    guarded(/** @type {HTMLButtonElement} */ ($('create-project')), async () => {
      const name = input.value.trim();
      if (!name) throw new Error('Give the project a name.');
      const project = await api.createProject(name);
      input.value = '';
      await loadProjects(project.id);
      await selectProject(project.id);
    });
  });
  for (const kind of ['catalog', 'items']) {
    $(`${kind}-file`).addEventListener('change', () => onFileOrEncodingChange(kind));
    $(`${kind}-encoding`).addEventListener('change', () => onFileOrEncodingChange(kind));
    $(`${kind}-fields`).addEventListener('change', () => rememberColumns(kind));
    const form = /** @type {HTMLFormElement} */ ($(`${kind}-form`));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      guarded(/** @type {HTMLButtonElement} */ ($(`${kind}-upload`)), () => onUpload(form));
    });
  }
  $('job-form').addEventListener('submit', (event) => {
    event.preventDefault();
    guarded(null, startJob);
  });
  $('cancel-job').addEventListener('click', () =>
    guarded(/** @type {HTMLButtonElement} */ ($('cancel-job')), cancelJob),
  );
  $('load-more').addEventListener('click', () =>
    guarded(/** @type {HTMLButtonElement} */ ($('load-more')), loadMoreMatches),
  );
  $('download-csv').addEventListener('click', (event) => guarded(null, () => onDownload(event)));
  $('refresh-jobs').addEventListener('click', () => guarded(null, loadJobs));
  window.addEventListener('pagehide', () => manager.cleanup());
  $('token-form').addEventListener('submit', (event) => void onTokenSubmit(event));
  window.addEventListener('hashchange', route);
}

async function main() {
  wire();
  route();
  void checkHealth();
  if (!readToken()) {
    // nothing can be listed without a token: ask for it first (see onTokenSubmit)
    showTokenForm();
    document.body.dataset.ready = 'true';
    return;
  }
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('project');
  await guarded(null, async () => {
    await loadProjects(fromHash);
    const select = /** @type {HTMLSelectElement} */ ($('project-select'));
    if (fromHash && select.value === fromHash) await selectProject(fromHash);
  });
  document.body.dataset.ready = 'true';
}

void main();
