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
//
// Progress is pushed by the server as Server-Sent Events (`watch`): EventSource with a
// short-lived ticket in browsers, a streamed fetch with the bearer header in Node; polling
// when neither works. This module is the only code of chunkmatch that speaks HTTP.

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
 * @property {number} [version]  increases with every change of the job
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
 * @typedef {object} Evidence
 * @property {string} signal
 * @property {number} value
 * @property {number} contribution  how far the signal moved the score, in log-odds
 *
 * @typedef {object} ReviewPair
 * @property {string} itemId
 * @property {string|null} itemText
 * @property {string|null} catalogId  the proposed record: the match, or the best candidate
 * @property {string|null} catalogText
 * @property {number} score   0..1
 * @property {string} method
 * @property {string|null} reason
 * @property {Evidence[]} explanation
 * @property {{catalogId: string, catalogText: string|null, score: number}[]} candidates
 * @property {boolean} [matched]  the proposed record is the item's match (else its best candidate)
 * @property {number} [errorChance]  the chance that the job's decision on the item is wrong
 *
 * @typedef {object} ReviewDecision
 * @property {string} itemId
 * @property {string|null} catalogId  null with `no-match`: the item has no counterpart
 * @property {'match'|'no-match'} decision
 *
 * @typedef {object} Calibration
 * @property {number} labels  decisions the project has
 * @property {number|object|null} threshold  (or the acceptance rule's parameters)
 * @property {number|null} estimatedPrecision
 * @property {number|null} estimatedRecall
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
/** The decisions of ApiClient.decide, as the review route names them. */
export const REVIEW_DECISIONS = Object.freeze(['match', 'no-match']);
/** Event-stream connections that may fail in a row before `watch` falls back to polling. */
export const MAX_STREAM_FAILURES = 3;

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
 * The ApiError of an error answer (its JSON `error` when there is one).
 * @param {Response} response
 * @param {any} payload  the parsed body, or null
 */
function errorFromAnswer(response, payload) {
  const error = payload?.error ?? {};
  const message =
    typeof error.message === 'string' && error.message
      ? error.message
      : `HTTP ${response.status} ${response.statusText || ''}`.trim();
  return new ApiError(message, {
    status: response.status,
    code: typeof error.code === 'string' ? error.code : null,
    details: error.details ?? null,
    retryAfterMs: parseRetryAfter(response.headers.get('Retry-After')),
  });
}

/**
 * @typedef {{id: string|null, event: string, data: string}} StreamEvent
 */

/**
 * Parse Server-Sent Events from a stream of text chunks (as they arrive, split anywhere).
 * Comment lines are skipped; `id` is the frame's own `id:` field (null without one).
 * @param {AsyncIterable<string>} chunks
 * @returns {AsyncGenerator<StreamEvent>}
 */
export async function* parseEventStream(chunks) {
  let buffer = '';
  for await (const chunk of chunks) {
    buffer += chunk;
    const frames = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = frames.pop() ?? '';
    for (const frame of frames) {
      /** @type {StreamEvent} */
      const event = { id: null, event: 'message', data: '' };
      const data = [];
      for (const line of frame.split(/\r\n|\n|\r/)) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'id') event.id = value;
        else if (field === 'event') event.event = value;
      }
      if (data.length) yield { ...event, data: data.join('\n') };
    }
  }
}

/**
 * A fetch Response body as text chunks; releases the body when the consumer stops.
 * @param {ReadableStream<Uint8Array>} body
 */
async function* textChunks(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      yield decoder.decode(value, { stream: true });
    }
  } finally {
    reader.cancel().catch(() => {});
  }
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
   * @param {boolean} [options.keepalive]  let the request outlive the page (fetch keepalive)
   * @returns {Promise<any>} the parsed JSON answer
   */
  async request(method, path, { json, body, contentType, signal, retry = true, onRetry, keepalive = false } = {}) {
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
        return await this._send(method, path, { headers, body, signal, keepalive });
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
   * @param {{headers: Record<string, string>, body?: BodyInit, signal?: AbortSignal,
   *   keepalive?: boolean}} init
   */
  async _send(method, path, { headers, body, signal, keepalive }) {
    // fetch rejects with TypeError on network failures: that is what callers retry.
    const init = { method, headers, body, signal, ...(keepalive ? { keepalive: true } : {}) };
    const response = await this._fetch(this.url(path), init);
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
    throw errorFromAnswer(response, payload);
  }

  /**
   * Open a job's event stream with the bearer header (fetch streaming; Node 20, or a
   * browser that wants no ticket): an async iterator of its events. Throws ApiError for
   * an error answer.
   * @param {string} jobId
   * @param {{lastEventId?: string|null, signal?: AbortSignal}} [options]
   * @returns {Promise<AsyncGenerator<StreamEvent>>}
   */
  async openEvents(jobId, { lastEventId = null, signal } = {}) {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'text/event-stream' };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    if (lastEventId != null) headers['Last-Event-ID'] = String(lastEventId);
    const response = await this._fetch(this.url(`/api/jobs/${encodeURIComponent(jobId)}/events`), {
      method: 'GET',
      headers,
      signal,
    });
    const type = response.headers.get('Content-Type') ?? '';
    if (!response.ok || !type.startsWith('text/event-stream') || !response.body) {
      const text = await response.text().catch(() => '');
      let payload = null;
      try {
        payload = text ? JSON.parse(text) : null;
      } catch {
        payload = null;
      }
      if (response.ok) {
        throw new ApiError('The server sent no event stream', { status: 501, code: 'no_stream' });
      }
      throw errorFromAnswer(response, payload);
    }
    return parseEventStream(textChunks(response.body));
  }

  /**
   * A short-lived ticket (60 s to connect) opening this job's event stream only.
   * @param {string} jobId
   * @returns {Promise<{ticket: string, expiresAt: string}>}
   */
  async eventsTicket(jobId, { signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/events-ticket`;
    const answer = await this.request('POST', path, { signal });
    return { ticket: answer.ticket, expiresAt: answer.expiresAt };
  }

  /** URL of a job's event stream for an EventSource, with its ticket. */
  eventsUrl(jobId, ticket) {
    return this.url(`/api/jobs/${encodeURIComponent(jobId)}/events${queryString({ ticket })}`);
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

  /**
   * One page of a job's review queue: its most uncertain decisions first (accepted matches
   * near the acceptance boundary, unmatched items whose best candidate is near it), each
   * with its proposed record (`catalogId`), explanation and other candidates. Pairs
   * already decided in the project are not offered again. `total` is how many decisions
   * the job queued for review, `decided` how many of them are decided in the project.
   * @param {string} jobId
   * @param {{limit?: number, cursor?: string|null, signal?: AbortSignal}} [options]
   * @returns {Promise<{pairs: ReviewPair[], nextCursor: string|null, total: number, decided: number}>}
   */
  async reviewQueue(jobId, { limit = 50, cursor = null, signal } = {}) {
    const path = `/api/jobs/${encodeURIComponent(jobId)}/review${queryString({ limit, cursor })}`;
    const answer = await this.request('GET', path, { signal });
    return {
      pairs: answer.pairs,
      nextCursor: answer.nextCursor ?? null,
      total: answer.total,
      decided: answer.decided,
    };
  }

  /**
   * Store human decisions on a job's pairs (the whole request is validated first: a 422
   * names the problem and applies nothing). `match` makes `catalogId` the item's match;
   * `no-match` says that pair is wrong, or with `catalogId: null` that the item has no
   * counterpart. Answers how many were applied and the project's calibration after them.
   * @param {string} jobId
   * @param {ReviewDecision[]} decisions
   * @param {{signal?: AbortSignal, keepalive?: boolean}} [options]
   * @returns {Promise<{applied: number, calibration: Calibration|null}>}
   */
  async decide(jobId, decisions, { signal, keepalive = false } = {}) {
    for (const d of decisions) {
      if (!REVIEW_DECISIONS.includes(d?.decision)) throw new TypeError(`unknown review decision ${d?.decision}`);
    }
    const path = `/api/jobs/${encodeURIComponent(jobId)}/review`;
    const answer = await this.request('POST', path, { json: { decisions }, signal, keepalive });
    return { applied: answer.applied, calibration: answer.calibration ?? null };
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

/** Is `job` a later state than `than`? By version (every change bumps it) when known. */
function isNewer(job, than) {
  if (typeof job.version === 'number' && typeof than.version === 'number') {
    return job.version > than.version;
  }
  return progressKey(job) !== progressKey(than);
}

/**
 * `onUpdate`, called one at a time and only with states newer than the last it got
 * (answers of our own process calls and pushed events arrive interleaved).
 * @param {JobUpdateCallback} [onUpdate]
 */
function newestOnly(onUpdate) {
  let chain = Promise.resolve();
  /** @type {{(job: Job): Promise<void>, latest: Job|null}} */
  const report = Object.assign(
    (/** @type {Job} */ job) => {
      const run = chain.then(async () => {
        if (report.latest && !isNewer(job, report.latest)) return;
        report.latest = job;
        await onUpdate?.(job);
      });
      chain = run.catch(() => {});
      return run;
    },
    { latest: /** @type {Job|null} */ (null) },
  );
  return report;
}

/** An error thrown by the caller's onUpdate: rejects watch() as it is, never retried. */
class CallbackFailure extends Error {
  /** @param {unknown} cause */
  constructor(cause) {
    super('onUpdate failed');
    this.cause = cause;
  }
}

function canStreamFetch() {
  return typeof ReadableStream === 'function' && typeof TextDecoder === 'function';
}

/** Does this error mean the server has no event stream (an older server)? */
function noEventStream(error) {
  return (
    error instanceof ApiError &&
    (error.code === 'no_stream' ||
      error.status === 405 ||
      (error.status === 404 && /^no route /.test(error.message)))
  );
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
   * `onUpdate` is called (and awaited, if it returns a promise, one call at a time) with
   * the job after creation, after every chunk it advances, and with every state pushed
   * by `watch` (chunks the server's worker or another client commits), each newer than
   * the last; an exception from it stops the loop and rejects.
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
    const report = newestOnly(onUpdate);
    await report(job);
    return this._driveAndWatch(job, report, { signal: combined, onRetry });
  }

  /**
   * Drive an existing job (e.g. one resumed after a page reload) to the end.
   * Same contract as startJob (updates come from its own process calls and, through
   * `watch`, from whoever else advances the job: the server's worker, another tab).
   * @param {Job|string} jobOrId
   * @param {JobUpdateCallback} [onUpdate]
   * @param {{signal?: AbortSignal, onRetry?: RetryCallback}} [options]
   * @returns {Promise<Job>}
   */
  async drive(jobOrId, onUpdate, { signal, onRetry } = {}) {
    const combined = anySignal([this._controller.signal, signal]);
    const job =
      typeof jobOrId === 'string' ? await this.api.getJob(jobOrId, { signal: combined }) : jobOrId;
    return this._driveAndWatch(job, newestOnly(onUpdate), { signal: combined, onRetry });
  }

  /**
   * Call process until the job ends, and watch its events meanwhile; whichever sees
   * the end first stops the other.
   * @param {Job} job
   * @param {ReturnType<typeof newestOnly>} report
   * @param {{signal: AbortSignal, onRetry?: RetryCallback}} options
   */
  async _driveAndWatch(job, report, { signal, onRetry }) {
    const stop = new AbortController();
    const inner = anySignal([signal, stop.signal]);
    const advancing = this._advance(job, report, { signal: inner, onRetry });
    const watching = this.watch(job.id, report, { signal: inner }).then((final) => {
      if (final.status !== 'completed') throw new JobEndedError(final);
      return final;
    });
    try {
      const final = await Promise.race([advancing, watching]);
      return report.latest ?? final;
    } catch (error) {
      if (signal.aborted) throw abortError();
      throw error;
    } finally {
      stop.abort(abortError('the job ended'));
      advancing.catch(() => {});
      watching.catch(() => {});
    }
  }

  /**
   * @param {Job} job
   * @param {JobUpdateCallback} report
   * @param {{signal: AbortSignal, onRetry?: RetryCallback}} options
   */
  async _advance(job, report, { signal, onRetry }) {
    let stalled = 0;
    while (!isTerminal(job.status)) {
      const before = progressKey(job);
      ({ job } = await this.api.processJob(job.id, { signal, onRetry }));
      await report(job);
      if (progressKey(job) === before && !isTerminal(job.status)) {
        // Someone else holds the chunk: wait a little (growing to the poll interval)
        // instead of spinning on the server.
        stalled += 1;
        await sleep(Math.min(this.pollIntervalMs, 50 * 2 ** stalled), signal);
      } else {
        stalled = 0;
      }
    }
    if (job.status !== 'completed') throw new JobEndedError(job);
    return job;
  }

  /**
   * Watch a job until it reaches a terminal status, whoever drives it: the server pushes
   * each new state (Server-Sent Events: an EventSource opened with a short-lived ticket
   * in browsers, a streamed fetch with the bearer header in Node), and a dropped stream
   * is reopened where it left off. Falls back to polling (`startPolling`) where streams
   * are not available or keep failing. Resolves with the final job whatever its status;
   * `onUpdate` gets every new state.
   * @param {string} jobId
   * @param {JobUpdateCallback} [onUpdate]
   * @param {{signal?: AbortSignal, transport?: 'auto'|'eventsource'|'fetch'|'poll'}} [options]
   * @returns {Promise<Job>}
   */
  async watch(jobId, onUpdate, { signal, transport = 'auto' } = {}) {
    const combined = anySignal([this._controller.signal, signal]);
    let mode = transport;
    if (mode === 'auto') {
      if (typeof EventSource === 'function' && this.api.token) mode = 'eventsource';
      else mode = canStreamFetch() ? 'fetch' : 'poll';
    }
    /** @type {number|null} */
    let lastId = null;
    /** @type {Job|null} */
    let last = null;
    let failures = 0;
    while (mode !== 'poll' && failures < MAX_STREAM_FAILURES) {
      let progressed = false;
      /** @param {StreamEvent} event @returns {Promise<boolean>} the job has ended */
      const deliver = async (event) => {
        if (event.event !== 'progress') return false;
        const id = event.id == null || event.id === '' ? null : Number(event.id);
        if (id !== null && lastId !== null && id <= lastId) return false; // seen already
        const job = JSON.parse(event.data);
        if (id !== null) lastId = id;
        last = job;
        progressed = true;
        try {
          await onUpdate?.(job);
        } catch (error) {
          throw new CallbackFailure(error);
        }
        return isTerminal(job.status);
      };
      try {
        if (mode === 'eventsource') await this._watchEventSource(jobId, deliver, combined);
        else await this._watchFetch(jobId, deliver, lastId, combined);
      } catch (error) {
        if (error instanceof CallbackFailure) throw error.cause;
        if (isAbortError(error) || combined.aborted) throw combined.aborted ? abortError() : error;
        if (noEventStream(error)) break;
        // 401, 404, 422: polling would be refused the same way
        if (error instanceof ApiError && !error.retryable) throw error;
      }
      if (last && isTerminal(last.status)) return last;
      failures = progressed ? 0 : failures + 1;
      await sleep(failures ? backoffDelay(failures, this.api.retry) : 0, combined);
    }
    return this.startPolling(jobId, onUpdate, this.pollIntervalMs, { signal: combined });
  }

  /**
   * One event-stream connection by fetch; ends when the stream does (or the job has).
   * @param {string} jobId
   * @param {(event: StreamEvent) => Promise<boolean>} deliver
   * @param {number|null} lastId
   * @param {AbortSignal} signal
   */
  async _watchFetch(jobId, deliver, lastId, signal) {
    const events = await this.api.openEvents(jobId, { lastEventId: lastId, signal });
    for await (const event of events) {
      if (await deliver(event)) return;
    }
  }

  /**
   * One EventSource connection, opened with a fresh ticket; ends at the job's end, or
   * when the connection closes or fails (EventSource would retry with the same ticket,
   * which may have expired: watch reopens it with a new one instead).
   * @param {string} jobId
   * @param {(event: StreamEvent) => Promise<boolean>} deliver
   * @param {AbortSignal} signal
   * @returns {Promise<void>}
   */
  async _watchEventSource(jobId, deliver, signal) {
    const { ticket } = await this.api.eventsTicket(jobId, { signal });
    return new Promise((resolve, reject) => {
      const source = new EventSource(this.api.eventsUrl(jobId, ticket));
      let chain = Promise.resolve();
      /** @param {() => void} settle */
      const finish = (settle) => {
        source.close();
        signal.removeEventListener('abort', onAbort);
        settle();
      };
      const onAbort = () => finish(() => reject(abortError()));
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      source.addEventListener('progress', (message) => {
        const { data, lastEventId } = /** @type {MessageEvent} */ (message);
        chain = chain
          .then(() => deliver({ id: lastEventId || null, event: 'progress', data }))
          .then(
            (ended) => {
              if (ended) finish(() => resolve());
            },
            (error) => finish(() => reject(error)),
          );
      });
      source.addEventListener('error', () => {
        chain = chain.then(() => finish(() => resolve()));
      });
    });
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
