// chunkmatch JS client: one dependency-free ES module for browsers and Node 20.
//
// A job on the server advances one chunk per `POST /api/jobs/{id}/process`; the
// JobManager is the loop that keeps calling it, surviving transient failures
// (network errors, 5xx, 429/503 with Retry-After) with capped exponential backoff.
//
//   import { JobManager } from '/static/job-manager.js';
//   const manager = new JobManager();
//   const job = await manager.startJob(projectId, 'enhanced', (j) => render(j));
//   manager.cleanup(); // stop every loop and timer (e.g. when the page goes away)

/**
 * @typedef {'pending'|'processing'|'completed'|'failed'|'cancelled'} JobStatus
 *
 * @typedef {object} Job
 * @property {string} id
 * @property {string} projectId
 * @property {string} jobType
 * @property {JobStatus} status
 * @property {number} currentStage
 * @property {string|null} currentStageName
 * @property {number} totalItems
 * @property {number} processedItems
 * @property {number} progressPercentage   0..100
 * @property {number} matchesFound
 * @property {number} matchRate             0..100
 * @property {number} chunkSize
 * @property {number|null} itemsPerSecond
 * @property {number|null} etaSeconds
 * @property {string|null} estimatedCompletion  ISO timestamp
 * @property {string} createdAt
 * @property {string|null} startedAt
 * @property {string|null} completedAt
 * @property {string|null} error
 * @property {object|null} config
 *
 * @typedef {object} JobConfig
 * @property {string[]} [itemFields]
 * @property {string[]} [catalogFields]
 * @property {number} [threshold]   0..1
 * @property {number} [chunkSize]
 *
 * @typedef {object} Match
 * @property {string} itemId
 * @property {string} catalogId
 * @property {number} score   0..1
 * @property {string} method
 * @property {string|null} reason
 * @property {string} itemText
 * @property {string} catalogText
 *
 * @typedef {object} RetryPolicy
 * @property {number} [maxRetries]   retries of one request after its first attempt fails
 * @property {number} [baseDelayMs]  first backoff step
 * @property {number} [maxDelayMs]   cap of one backoff wait (Retry-After may exceed it up to maxRetryAfterMs)
 * @property {number} [maxRetryAfterMs]  longest Retry-After honoured
 *
 * @typedef {(job: Job) => (void|Promise<void>)} JobUpdateCallback
 * @typedef {(info: {attempt: number, delayMs: number, error: Error}) => void} RetryCallback
 */

export const TERMINAL_STATUSES = Object.freeze(['completed', 'failed', 'cancelled']);

export const DEFAULT_POLL_INTERVAL_MS = 2000;

/** The controls of ApiClient.controlJob, as the routes name them. */
export const JOB_ACTIONS = Object.freeze(['pause', 'resume', 'cancel', 'retry', 'retry-failed']);

/** @type {Required<RetryPolicy>} */
export const DEFAULT_RETRY_POLICY = Object.freeze({
  maxRetries: 10,
  baseDelayMs: 250,
  maxDelayMs: 10_000,
  maxRetryAfterMs: 120_000,
});

// Statuses that mean "not processed, try again later" rather than "your request is wrong".
const RETRYABLE_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504]);

/** An HTTP answer with an error status, carrying the server's `error` object. */
export class ApiError extends Error {
  /**
   * @param {string} message
   * @param {{status: number, code?: string|null, details?: unknown, retryAfterMs?: number|null}} info
   */
  constructor(message, { status, code = null, details = null, retryAfterMs = null }) {
    super(message);
    this.name = 'ApiError';
    /** @type {number} */
    this.status = status;
    /** @type {string|null} */
    this.code = code;
    this.details = details;
    /** @type {number|null} */
    this.retryAfterMs = retryAfterMs;
  }

  /** True when retrying the same request later may succeed. */
  get retryable() {
    return RETRYABLE_STATUSES.has(this.status);
  }
}

/** A job that ended `failed` or `cancelled` while a JobManager was driving it. */
export class JobEndedError extends Error {
  /** @param {Job} job */
  constructor(job) {
    const reason = job.error ? `: ${job.error}` : '';
    super(`Job ${job.id} ${job.status}${reason}`);
    this.name = 'JobEndedError';
    /** @type {Job} */
    this.job = job;
  }
}

/** @param {string} [message] */
export function abortError(message = 'The operation was aborted') {
  if (typeof DOMException === 'function') return new DOMException(message, 'AbortError');
  const error = new Error(message);
  error.name = 'AbortError';
  return error;
}

/** @param {unknown} error */
export function isAbortError(error) {
  return typeof error === 'object' && error !== null && /** @type {any} */ (error).name === 'AbortError';
}

/** @param {JobStatus|string} status */
export function isTerminal(status) {
  return TERMINAL_STATUSES.includes(status);
}

/**
 * Parse a Retry-After header (delta seconds or an HTTP date) into milliseconds.
 * @param {string|null|undefined} value
 * @param {number} [now]
 * @returns {number|null}
 */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value.trim() === '') return null;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * Backoff wait before retry number `attempt` (1-based): exponential, capped, with
 * "equal jitter" (half fixed, half random) so clients spread out but never retry at once.
 * A server's Retry-After is a floor.
 * @param {number} attempt
 * @param {Required<RetryPolicy>} policy
 * @param {number|null} [retryAfterMs]
 * @param {() => number} [random]
 */
export function backoffDelay(attempt, policy, retryAfterMs = null, random = Math.random) {
  const exponential = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = exponential / 2 + (random() * exponential) / 2;
  if (retryAfterMs == null) return jittered;
  return Math.min(policy.maxRetryAfterMs, Math.max(retryAfterMs, jittered));
}

/**
 * Wait `ms`, or reject with an AbortError as soon as `signal` aborts. The timer is
 * cleared on abort, so nothing is left to keep Node alive.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 * @returns {Promise<void>}
 */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * One signal that aborts when any of `signals` does (AbortSignal.any where available).
 * @param {(AbortSignal|undefined|null)[]} signals
 * @returns {AbortSignal}
 */
function anySignal(signals) {
  const present = /** @type {AbortSignal[]} */ (signals.filter(Boolean));
  if (present.length === 1) return present[0];
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(present);
  const controller = new AbortController();
  for (const signal of present) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  }
  return controller.signal;
}

export const XLSX_TYPE = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** @param {unknown} data an upload body: is it an .xlsx workbook? */
export function isWorkbook(data) {
  if (typeof Blob === 'undefined' || !(data instanceof Blob)) return false;
  const name = /** @type {{name?: string}} */ (data).name ?? '';
  return data.type === XLSX_TYPE || /\.xlsx$/i.test(name);
}

/**
 * @param {Record<string, string|number|boolean|null|undefined>} params
 */
function queryString(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * Thin client for the chunkmatch HTTP API. Every method retries transient failures
 * per its retry policy and throws ApiError for error answers.
 */
export class ApiClient {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl]  e.g. "http://127.0.0.1:8765"; '' means same origin
   * @param {string|null} [options.token]  sent as `Authorization: Bearer <token>`
   * @param {typeof fetch} [options.fetch]
   * @param {RetryPolicy} [options.retry]
   */
  constructor({ baseUrl = '', token = null, fetch: fetchImpl, retry = {} } = {}) {
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.token = token ?? null;
    this._fetch = fetchImpl ?? ((input, init) => globalThis.fetch(input, init));
    /** @type {Required<RetryPolicy>} */
    this.retry = { ...DEFAULT_RETRY_POLICY, ...retry };
  }

  /** @param {string} path */
  url(path) {
    return `${this.baseUrl}${path}`;
  }

  /**
   * Send one request, retrying network errors and retryable statuses.
   * @param {string} method
   * @param {string} path
   * @param {object} [options]
   * @param {unknown} [options.json]
   * @param {BodyInit} [options.body]
   * @param {string} [options.contentType]
   * @param {AbortSignal} [options.signal]
   * @param {boolean} [options.retry]  false: one attempt only
   * @param {RetryCallback} [options.onRetry]
   * @returns {Promise<any>} the parsed JSON answer
   */
  async request(method, path, { json, body, contentType, signal, retry = true, onRetry } = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (json !== undefined) {
      body = JSON.stringify(json);
      contentType = 'application/json';
    }
    if (contentType) headers['Content-Type'] = contentType;

    for (let attempt = 1; ; attempt += 1) {
      if (signal?.aborted) throw abortError();
      try {
        return await this._send(method, path, { headers, body, signal });
      } catch (error) {
        if (isAbortError(error) || signal?.aborted) throw signal?.aborted ? abortError() : error;
        const transient = error instanceof ApiError ? error.retryable : error instanceof TypeError;
        if (!retry || !transient || attempt > this.retry.maxRetries) throw error;
        const retryAfterMs = error instanceof ApiError ? error.retryAfterMs : null;
        const delayMs = backoffDelay(attempt, this.retry, retryAfterMs);
        onRetry?.({ attempt, delayMs, error });
        await sleep(delayMs, signal);
      }
    }
  }

  /**
   * @param {string} method
   * @param {string} path
   * @param {{headers: Record<string, string>, body?: BodyInit, signal?: AbortSignal}} init
   */
  async _send(method, path, { headers, body, signal }) {
    // fetch rejects with TypeError on network failures: that is what callers retry.
    const response = await this._fetch(this.url(path), { method, headers, body, signal });
    const text = await response.text();
    let payload = null;
    if (text) {
      try {
        payload = JSON.parse(text);
      } catch {
        payload = null;
      }
    }
    if (response.ok && payload !== null) return payload;
    if (response.ok) {
      throw new ApiError(`Unexpected non-JSON answer from ${method} ${path}`, {
        status: response.status,
        code: 'invalid_response',
      });
    }
    const error = payload?.error ?? {};
    const message =
      typeof error.message === 'string' && error.message
        ? error.message
        : `HTTP ${response.status} ${response.statusText || ''}`.trim();
    throw new ApiError(message, {
      status: response.status,
      code: typeof error.code === 'string' ? error.code : null,
      details: error.details ?? null,
      retryAfterMs: parseRetryAfter(response.headers.get('Retry-After')),
    });
  }

  // -- endpoints ---------------------------------------------------------------

  /** @param {{signal?: AbortSignal}} [options] */
  health(options = {}) {
    return this.request('GET', '/api/health', { ...options, retry: false });
  }

  /** @param {string} name */
  async createProject(name, { signal } = {}) {
    return (await this.request('POST', '/api/projects', { json: { name }, signal })).project;
  }

  async listProjects({ signal } = {}) {
    return (await this.request('GET', '/api/projects', { signal })).projects;
  }

  /** @param {string} projectId */
  async getProject(projectId, { signal } = {}) {
    const path = `/api/projects/${encodeURIComponent(projectId)}`;
    return (await this.request('GET', path, { signal })).project;
  }

  /**
   * Upload catalog or item rows: JSON records, CSV (string, Blob or File) or an .xlsx
   * workbook (a Blob or File named *.xlsx or of the .xlsx type; its first sheet).
   * Without an encoding the server detects the CSV's and says which in `encoding`.
   * @param {string} projectId
   * @param {'catalog'|'items'} kind
   * @param {object[]|string|Blob} data
   * @param {{idField?: string, encoding?: string, signal?: AbortSignal}} [options]
   * @returns {Promise<{inserted: number, updated: number, total: number, encoding?: string}>}
   */
  async upload(projectId, kind, data, { idField = 'id', encoding, signal } = {}) {
    if (kind !== 'catalog' && kind !== 'items') throw new TypeError(`Unknown upload kind: ${kind}`);
    const base = `/api/projects/${encodeURIComponent(projectId)}/${kind}`;
    const answer = Array.isArray(data)
      ? await this.request('POST', base, { json: { records: data, idField }, signal })
      : await this.request('POST', base + queryString({ idField, encoding }), {
          body: data,
          contentType: isWorkbook(data) ? XLSX_TYPE : 'text/csv',
          signal,
        });
    const counts = { inserted: answer.inserted, updated: answer.updated, total: answer.total };
    return answer.encoding ? { ...counts, encoding: answer.encoding } : counts;
  }

  /**
   * @param {string} projectId
   * @param {string} jobType
   * @param {{config?: JobConfig, signal?: AbortSignal}} [options]
   * @returns {Promise<Job>}
   */
  async createJob(projectId, jobType, { config, signal } = {}) {
    const json = config ? { projectId, jobType, config } : { projectId, jobType };
    let retried = false;
    try {
      const answer = await this.request('POST', '/api/jobs/create', {
        json,
        signal,
        onRetry: () => {
          retried = true;
        },
      });
      return answer.job;
    } catch (error) {
      // A create whose answer was lost and then retried finds the job it made: the server
      // allows one live job per (project, job type) and names it. Adopt it, but only then.
      const existing = error instanceof ApiError ? error.details?.existingJobId : null;
      if (retried && error.status === 409 && existing) return this.getJob(existing, { signal });
      throw error;
    }
  }

  /**
   * Advance a job by one chunk.
   * @param {string} jobId
   * @returns {Promise<{job: Job, message: string}>}
   */
  async processJob(jobId, { signal, onRetry } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/process`;
    const answer = await this.request('POST', path, { signal, onRetry });
    return { job: answer.job, message: answer.message ?? '' };
  }

  /** @param {string} jobId @returns {Promise<Job>} */
  async getJob(jobId, { signal, onRetry } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}`;
    return (await this.request('GET', path, { signal, onRetry })).job;
  }

  /**
   * Your jobs, newest first: a project's, or (projectId null) all of them.
   * @param {string|null} [projectId]
   * @param {{limit?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<Job[]>}
   */
  async listJobs(projectId, { limit, signal } = {}) {
    const path = `/api/jobs${queryString({ projectId, limit })}`;
    return (await this.request('GET', path, { signal })).jobs;
  }

  /**
   * Counts of your jobs by status, and the queue's figures.
   * @returns {Promise<{counts: Record<string, number>, oldestPendingSeconds: number|null,
   *   successRate: number|null, averageDurationSeconds: number|null}>}
   */
  async jobsStatus({ signal } = {}) {
    const { success, ...status } = await this.request('GET', '/api/jobs/status', { signal });
    return status;
  }

  /**
   * One page of a job's chunks, in order: timings, counts and the ETA given after each.
   * @param {string} jobId
   * @param {{limit?: number, cursor?: string|null, signal?: AbortSignal}} [options]
   * @returns {Promise<{chunks: object[], nextCursor: string|null}>}
   */
  async listChunks(jobId, { limit, cursor = null, signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/chunks${queryString({ limit, cursor })}`;
    const answer = await this.request('GET', path, { signal });
    return { chunks: answer.chunks, nextCursor: answer.nextCursor ?? null };
  }

  /**
   * The job's failed items with their last errors.
   * @param {string} jobId
   * @returns {Promise<{itemId: string, stage: number, error: string|null}[]>}
   */
  async failedItems(jobId, { signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/failed-items`;
    return (await this.request('GET', path, { signal })).items;
  }

  /**
   * A job control: 'pause', 'resume', 'cancel', 'retry' (a failed job) or 'retry-failed'
   * (its failed items back in the queue).
   * @param {string} jobId
   * @param {'pause'|'resume'|'cancel'|'retry'|'retry-failed'} action
   * @returns {Promise<{job: Job, message: string}>}
   */
  async controlJob(jobId, action, { signal } = {}) {
    if (!JOB_ACTIONS.includes(action)) throw new TypeError(`unknown job action ${action}`);
    const path = `/api/jobs/${encodeURIComponent(jobId)}/${action}`;
    const answer = await this.request('POST', path, { signal });
    return { job: answer.job, message: answer.message ?? '' };
  }

  /**
   * @param {string} jobId
   * @param {{status?: JobStatus, error?: string}} changes
   * @returns {Promise<Job>}
   */
  async updateJob(jobId, changes, { signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}`;
    return (await this.request('PATCH', path, { json: changes, signal })).job;
  }

  /** @param {string} jobId @returns {Promise<Job>} */
  async cancelJob(jobId, { signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/cancel`;
    return (await this.request('POST', path, { signal })).job;
  }

  /**
   * One page of a job's matches.
   * @param {string} jobId
   * @param {{limit?: number, cursor?: string|null, signal?: AbortSignal}} [options]
   * @returns {Promise<{matches: Match[], nextCursor: string|null}>}
   */
  async listMatches(jobId, { limit = 100, cursor = null, signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/matches${queryString({ limit, cursor })}`;
    const answer = await this.request('GET', path, { signal });
    return { matches: answer.matches, nextCursor: answer.nextCursor ?? null };
  }

  /** URL of a job's matches as a CSV download. @param {string} jobId */
  matchesCsvUrl(jobId) {
    return this.url(`/api/jobs/${encodeURIComponent(jobId)}/matches?format=csv`);
  }
}

/** Progress fingerprint: a process answer that changes none of these made no progress. */
function progressKey(job) {
  return [job.status, job.currentStage, job.processedItems, job.matchesFound].join('|');
}

/**
 * Drives and watches chunked jobs. One manager may run several loops at once;
 * `cleanup()` stops them all.
 */
export class JobManager {
  /**
   * @param {object} [options]
   * @param {string} [options.baseUrl]
   * @param {string|null} [options.token]
   * @param {typeof fetch} [options.fetch]  defaults to globalThis.fetch
   * @param {number} [options.pollIntervalMs]  interval for watching (startPolling) and for
   *   waiting when a process call made no progress (another client holds the chunk)
   * @param {RetryPolicy} [options.retry]
   */
  constructor({
    baseUrl = '',
    token = null,
    fetch: fetchImpl,
    pollIntervalMs = DEFAULT_POLL_INTERVAL_MS,
    retry,
  } = {}) {
    this.api = new ApiClient({ baseUrl, token, fetch: fetchImpl, retry });
    this.pollIntervalMs = pollIntervalMs;
    this._controller = new AbortController();
  }

  /**
   * Create a job and drive it to the end, one chunk after another with no pause
   * between successful chunks.
   *
   * `onUpdate` is called (and awaited, if it returns a promise) with the job after
   * creation and after every chunk; an exception from it stops the loop and rejects.
   * Resolves with the completed job; rejects with
   * JobEndedError when the job ends failed or cancelled, ApiError for a 4xx answer
   * (or a transient error that outlasted the retry policy), AbortError after cleanup()
   * or when `signal` aborts.
   *
   * @param {string} projectId
   * @param {string} jobType
   * @param {JobUpdateCallback} [onUpdate]
   * @param {{config?: JobConfig, signal?: AbortSignal, onRetry?: RetryCallback}} [options]
   * @returns {Promise<Job>}
   */
  async startJob(projectId, jobType, onUpdate, { config, signal, onRetry } = {}) {
    const combined = anySignal([this._controller.signal, signal]);
    const job = await this.api.createJob(projectId, jobType, { config, signal: combined });
    await onUpdate?.(job);
    return this.drive(job, onUpdate, { signal: combined, onRetry });
  }

  /**
   * Drive an existing job (e.g. one resumed after a page reload) to the end.
   * Same contract as startJob.
   * @param {Job|string} jobOrId
   * @param {JobUpdateCallback} [onUpdate]
   * @param {{signal?: AbortSignal, onRetry?: RetryCallback}} [options]
   * @returns {Promise<Job>}
   */
  async drive(jobOrId, onUpdate, { signal, onRetry } = {}) {
    const combined = anySignal([this._controller.signal, signal]);
    let job =
      typeof jobOrId === 'string' ? await this.api.getJob(jobOrId, { signal: combined }) : jobOrId;
    let stalled = 0;
    while (!isTerminal(job.status)) {
      const before = progressKey(job);
      ({ job } = await this.api.processJob(job.id, { signal: combined, onRetry }));
      await onUpdate?.(job);
      if (progressKey(job) === before && !isTerminal(job.status)) {
        // Someone else holds the chunk: wait a little (growing to the poll interval)
        // instead of spinning on the server.
        stalled += 1;
        await sleep(Math.min(this.pollIntervalMs, 50 * 2 ** stalled), combined);
      } else {
        stalled = 0;
      }
    }
    if (job.status !== 'completed') throw new JobEndedError(job);
    return job;
  }

  /**
   * Watch a job that someone else drives (GET only) until it reaches a terminal
   * status. Resolves with the final job whatever that status is; `onUpdate` is called
   * with every fetched state.
   * @param {string} jobId
   * @param {JobUpdateCallback} [onUpdate]
   * @param {number} [intervalMs]
   * @param {{signal?: AbortSignal}} [options]
   * @returns {Promise<Job>}
   */
  async startPolling(jobId, onUpdate, intervalMs = this.pollIntervalMs, { signal } = {}) {
    const combined = anySignal([this._controller.signal, signal]);
    for (;;) {
      const job = await this.api.getJob(jobId, { signal: combined });
      await onUpdate?.(job);
      if (isTerminal(job.status)) return job;
      await sleep(intervalMs, combined);
    }
  }

  /**
   * Cancel a job. A loop driving it ends with a JobEndedError on its next chunk.
   * @param {string} jobId
   * @returns {Promise<Job>}
   */
  cancel(jobId) {
    return this.api.cancelJob(jobId, { signal: this._controller.signal });
  }

  /**
   * Stop every loop, request and timer this manager started: their promises reject
   * with an AbortError. The manager stays usable for new calls.
   */
  cleanup() {
    this._controller.abort(abortError('JobManager cleaned up'));
    this._controller = new AbortController();
  }
}
