// Shared helpers for the JS client tests: the server under test, a fault-injecting
// proxy in front of it, and small product-like data sets.
import http from 'node:http';

import { ApiClient } from '../../static/job-manager.js';

/** URL of a real chunkmatch server, or '' when the tests should skip. */
export const SERVER_URL = (process.env.CHUNKMATCH_URL ?? '').replace(/\/+$/, '');
/** API token for the server (the pytest wrapper passes one; the API needs it). */
export const TOKEN = process.env.CHUNKMATCH_TOKEN || undefined;

export const SKIP_REASON = SERVER_URL
  ? false
  : 'CHUNKMATCH_URL is not set: start a server (`chunkmatch serve --port 8765`) and export ' +
    'CHUNKMATCH_URL=http://127.0.0.1:8765 to run the JS client tests against it';

/** How many /process answers a test lets stop at a job's preparation before calling it stuck. */
export const PREPARATION_CALLS = 50;

/**
 * The first /process answer on `jobId` past the job's preparation: one that ran a chunk (or
 * said why none was due). A job builds its catalog index and peers before its first chunk and
 * /process waits for that only briefly, so under load the first calls may answer
 * "Preparing ..." / "Prepared ..." and run no chunk (tests/e2e/helpers.py: process_chunk).
 * @param {ApiClient} api
 * @param {string} jobId
 */
export async function processChunk(api, jobId) {
  let answer;
  for (let call = 0; call < PREPARATION_CALLS; call += 1) {
    answer = await api.processJob(jobId);
    if (!answer.message.startsWith('Prepar')) return answer;
  }
  throw new Error(
    `no /process answer got past the preparation in ${PREPARATION_CALLS} calls; the last: ${answer.message}`,
  );
}

const BRANDS = ['Acme', 'Globex', 'Initech', 'Umbrella', 'Stark', 'Wayne', 'Hooli', 'Vandelay'];
const PRODUCTS = [
  'Cordless Drill',
  'Claw Hammer',
  'Screwdriver Set',
  'Adjustable Wrench',
  'Tape Measure',
  'Spirit Level',
  'Circular Saw',
  'Needle Nose Pliers',
  'Angle Grinder',
  'Utility Knife',
];
const COLOURS = ['Red', 'Blue', 'Black', 'Yellow', 'Green'];

/**
 * `count` catalog rows and `count` item rows; item i is a reworded catalog row i, so a
 * fuzzy matcher finds most of them.
 * @param {number} count
 */
export function productData(count) {
  const catalog = [];
  const items = [];
  for (let i = 0; i < count; i += 1) {
    const brand = BRANDS[i % BRANDS.length];
    const product = PRODUCTS[Math.floor(i / BRANDS.length) % PRODUCTS.length];
    const colour = COLOURS[i % COLOURS.length];
    const size = 10 + (i % 17) * 5;
    catalog.push({ id: `C${i}`, name: `${brand} ${product} ${size}mm ${colour} Model ${i}` });
    const reworded = `${brand.toUpperCase()} ${product.toLowerCase()} ${colour} ${size} mm model ${i}`;
    items.push({ id: `I${i}`, name: reworded });
  }
  return { catalog, items };
}

/**
 * A new project with `count` catalog rows and items, created through the real server.
 * @param {string} label
 * @param {number} [count]
 */
export async function createProjectWithData(label, count = 120) {
  const api = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
  const project = await api.createProject(`js-test ${label} ${Date.now()}`);
  const { catalog, items } = productData(count);
  await api.upload(project.id, 'catalog', catalog);
  await api.upload(project.id, 'items', items);
  return project;
}

/**
 * @typedef {{status: number, retryAfter?: string} | 'drop' | 'drop-after'} Fault
 *   `drop` closes the connection before the server sees the request; `drop-after`
 *   forwards it and then closes the connection instead of answering.
 * @typedef {{method?: string, path: RegExp, count: number, fault: Fault}} FaultRule
 * @typedef {{method: string, url: string, at: number, fault: Fault|null, status?: number}} ProxyLogEntry
 */

/**
 * Start an HTTP proxy on 127.0.0.1 that forwards to `target` but fails the first
 * `count` requests matching each rule.
 * @param {string} target
 * @param {FaultRule[]} rules
 */
export async function startFaultProxy(target, rules) {
  const upstream = new URL(target);
  const remaining = rules.map((rule) => rule.count);
  /** @type {ProxyLogEntry[]} */
  const log = [];

  const server = http.createServer((req, res) => {
    const index = rules.findIndex(
      (rule, i) =>
        remaining[i] > 0 && (!rule.method || rule.method === req.method) && rule.path.test(req.url ?? ''),
    );
    const fault = index >= 0 ? rules[index].fault : null;
    if (index >= 0) remaining[index] -= 1;
    /** @type {ProxyLogEntry} */
    const entry = { method: req.method ?? '', url: req.url ?? '', at: Date.now(), fault };
    log.push(entry);

    if (fault === 'drop') {
      req.socket.destroy();
      return;
    }
    if (fault && typeof fault === 'object') {
      const body = JSON.stringify({
        success: false,
        error: { code: 'injected_fault', message: `injected ${fault.status}`, details: null },
      });
      /** @type {Record<string, string>} */
      const headers = { 'Content-Type': 'application/json', Connection: 'close' };
      if (fault.retryAfter !== undefined) headers['Retry-After'] = fault.retryAfter;
      entry.status = fault.status;
      req.resume();
      req.on('end', () => {
        res.writeHead(fault.status, headers);
        res.end(body);
      });
      return;
    }

    const forward = http.request(
      {
        hostname: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (answer) => {
        entry.status = answer.statusCode;
        if (fault === 'drop-after') {
          answer.resume();
          answer.on('end', () => req.socket.destroy());
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => req.socket.destroy());
    // a client that goes away (e.g. an aborted event stream) closes its upstream request too
    res.on('close', () => forward.destroy());
    req.pipe(forward);
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${address.port}`,
    log,
    /** Requests that matched `pattern` (optionally of one method). */
    requests(pattern, method) {
      return log.filter((e) => pattern.test(e.url) && (!method || e.method === method));
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/**
 * Assert `values` never decreases.
 * @param {number[]} values
 */
export function isNonDecreasing(values) {
  return values.every((value, i) => i === 0 || value >= values[i - 1]);
}

/**
 * `count` catalog rows and items whose match is in doubt: a quarter are reworded rows
 * (certain), a quarter near misses (another size and model of the same product), a quarter
 * partial descriptions of a row, a quarter things the catalog does not have. The review
 * queue has plenty to offer on these.
 * @param {number} count
 */
export function uncertainData(count) {
  const { catalog } = productData(count);
  const items = catalog.map((row, i) => {
    const [brand, ...rest] = row.name.split(' ');
    const words = rest.join(' ');
    const kind = i % 4;
    let name;
    if (kind === 0) name = `${brand.toUpperCase()} ${words.toLowerCase()}`;
    else if (kind === 1) name = words.replace(/\d+mm/, `${(i % 17) * 5 + 12}mm`).replace(/Model \d+/, `Model ${i + 5000}`);
    else if (kind === 2) name = `${brand} ${words.split(' ').slice(0, 2).join(' ')}`;
    else name = `${brand} garden hose reel ${i} metres`;
    return { id: `U${i}`, name };
  });
  return { catalog, items };
}
