// Pure client behaviour, no server: Retry-After parsing, backoff bounds, and which
// answers are retried (with an injected fetch).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  ApiClient,
  ApiError,
  DEFAULT_RETRY_POLICY,
  backoffDelay,
  parseEventStream,
  parseRetryAfter,
} from '../../static/job-manager.js';

test('parseRetryAfter reads delta seconds and HTTP dates', () => {
  assert.equal(parseRetryAfter('3'), 3000);
  assert.equal(parseRetryAfter('0'), 0);
  assert.equal(parseRetryAfter(null), null);
  assert.equal(parseRetryAfter('soon'), null);
  const now = Date.parse('2026-11-01T10:00:00Z');
  assert.equal(parseRetryAfter('Sun, 01 Nov 2026 10:00:05 GMT', now), 5000);
  assert.equal(parseRetryAfter('Sun, 01 Nov 2026 09:00:00 GMT', now), 0);
});

test('backoffDelay grows exponentially, is capped and honours Retry-After', () => {
  const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };
  for (let attempt = 1; attempt <= 12; attempt += 1) {
    const ceiling = Math.min(1000, 100 * 2 ** (attempt - 1));
    for (const random of [0, 0.5, 0.999]) {
      const delay = backoffDelay(attempt, policy, null, () => random);
      assert.ok(delay >= ceiling / 2 && delay <= ceiling, `attempt ${attempt}: ${delay}`);
    }
  }
  assert.equal(backoffDelay(1, policy, 5000, () => 0), 5000);
  assert.equal(backoffDelay(1, { ...policy, maxRetryAfterMs: 2000 }, 5000, () => 0), 2000);
});

/** A fetch that answers from a script of responses (or throws TypeError for 'network'). */
function scriptedFetch(script) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init });
    const next = script.shift();
    if (next === 'network') throw new TypeError('fetch failed');
    const { status, body, headers = {} } = next;
    return new Response(JSON.stringify(body), { status, headers });
  };
  return { fetch, calls };
}

const fast = { baseDelayMs: 1, maxDelayMs: 2 };
const failure = (status, code, message) => ({
  status,
  body: { success: false, error: { code, message, details: null } },
});

test('transient failures are retried, then the answer is returned', async () => {
  const { fetch, calls } = scriptedFetch([
    'network',
    failure(502, 'bad_gateway', 'upstream'),
    { ...failure(503, 'database_unavailable', 'db down'), headers: { 'Retry-After': '0' } },
    { status: 200, body: { success: true, job: { id: 'j1' } } },
  ]);
  const api = new ApiClient({ baseUrl: 'http://server.test/', token: 'secret', fetch, retry: fast });
  const job = await api.getJob('j1');
  assert.equal(job.id, 'j1');
  assert.equal(calls.length, 4);
  assert.equal(calls[0].url, 'http://server.test/api/jobs/j1');
  assert.equal(calls[0].init.headers.Authorization, 'Bearer secret');
});

test('a 4xx is not retried and carries the server error', async () => {
  const { fetch, calls } = scriptedFetch([failure(422, 'validation_error', 'threshold must be 0..1')]);
  const api = new ApiClient({ fetch, retry: fast });
  await assert.rejects(api.createJob('p1', 'enhanced', { config: { threshold: 2 } }), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.status, 422);
    assert.equal(error.code, 'validation_error');
    assert.equal(error.message, 'threshold must be 0..1');
    return true;
  });
  assert.equal(calls.length, 1);
  assert.deepEqual(JSON.parse(calls[0].init.body), {
    projectId: 'p1',
    jobType: 'enhanced',
    config: { threshold: 2 },
  });
});

test('CSV uploads send the raw body with idField and encoding', async () => {
  const { fetch, calls } = scriptedFetch([
    { status: 200, body: { success: true, inserted: 2, updated: 0, total: 2 } },
  ]);
  const api = new ApiClient({ fetch });
  const result = await api.upload('p 1', 'items', 'sku,name\n1,a\n2,b\n', {
    idField: 'sku',
    encoding: 'cp1252',
  });
  assert.deepEqual(result, { inserted: 2, updated: 0, total: 2 });
  assert.equal(calls[0].url, '/api/projects/p%201/items?idField=sku&encoding=cp1252');
  assert.equal(calls[0].init.headers['Content-Type'], 'text/csv');
  assert.equal(calls[0].init.body, 'sku,name\n1,a\n2,b\n');
});

test('a retried create whose first answer was lost adopts the job it made', async () => {
  const conflict = failure(409, 'conflict', 'the project already has a live job');
  conflict.body.error.details = { existingJobId: 'j7' };
  const { fetch, calls } = scriptedFetch([
    'network',
    conflict,
    { status: 200, body: { success: true, job: { id: 'j7', status: 'pending' } } },
  ]);
  const api = new ApiClient({ fetch, retry: fast });
  const job = await api.createJob('p1', 'enhanced');
  assert.equal(job.id, 'j7');
  assert.deepEqual(
    calls.map((c) => c.init.method),
    ['POST', 'POST', 'GET'],
  );
});

test('a first-time 409 on create is not adopted: someone else runs that job', async () => {
  const conflict = failure(409, 'conflict', 'the project already has a live job');
  conflict.body.error.details = { existingJobId: 'j8' };
  const { fetch } = scriptedFetch([conflict]);
  const api = new ApiClient({ fetch, retry: fast });
  await assert.rejects(api.createJob('p1', 'enhanced'), (error) => error.status === 409);
});

test('parseEventStream reads frames split anywhere, skipping comments', async () => {
  const text =
    ': keep-alive\n\nid: 3\nevent: progress\ndata: {"a":\ndata: 1}\n\n' +
    'id: 4\r\nevent: progress\r\ndata: {"b":2}\r\n\r\n: bye\n\n';
  async function* pieces() {
    for (let i = 0; i < text.length; i += 5) yield text.slice(i, i + 5);
  }
  const events = [];
  for await (const event of parseEventStream(pieces())) events.push(event);
  assert.deepEqual(events, [
    { id: '3', event: 'progress', data: '{"a":\n1}' },
    { id: '4', event: 'progress', data: '{"b":2}' },
  ]);
});

test('decide sends the decisions as asked, keepalive only when asked; an unknown one never leaves', async () => {
  const answer = { status: 200, body: { success: true, applied: 1, calibration: { labels: 1 } } };
  const { fetch, calls } = scriptedFetch([answer, answer]);
  const api = new ApiClient({ fetch });
  const decision = { itemId: 'i 1', catalogId: null, decision: 'no-match' };
  assert.deepEqual(await api.decide('j/1', [decision]), { applied: 1, calibration: { labels: 1 } });
  assert.equal(calls[0].url, '/api/jobs/j%2F1/review');
  assert.equal(calls[0].init.method, 'POST');
  assert.deepEqual(JSON.parse(calls[0].init.body), { decisions: [decision] });
  assert.equal('keepalive' in calls[0].init, false);
  await api.decide('j1', [decision], { keepalive: true });
  assert.equal(calls[1].init.keepalive, true);
  await assert.rejects(api.decide('j1', [{ ...decision, decision: 'maybe' }]), TypeError);
  assert.equal(calls.length, 2);
});
