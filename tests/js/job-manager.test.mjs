// JobManager against a real chunkmatch server (CHUNKMATCH_URL), with faults injected
// by a node:http proxy in front of it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';

import {
  ApiClient,
  ApiError,
  JobEndedError,
  JobManager,
  MAX_STREAM_FAILURES,
} from '../../static/job-manager.js';
import {
  SERVER_URL,
  SKIP_REASON,
  TOKEN,
  createProjectWithData,
  isNonDecreasing,
  startFaultProxy,
} from './helpers.mjs';

const PROCESS = /\/api\/jobs\/[^/]+\/process$/;
const CONFIG = { chunkSize: 20, threshold: 0.5 };
// Keep fault tests quick: retries start at 20 ms.
const FAST_RETRY = { baseDelayMs: 20, maxDelayMs: 200 };
// A stuck job must fail its test, not hang the run.
const TEST_TIMEOUT = { timeout: 60_000 };

/**
 * A JobManager whose loops stop when the test ends or times out, so a failing test
 * cannot leave a loop running that keeps the test process alive.
 * @param {import('node:test').TestContext} t
 * @param {ConstructorParameters<typeof JobManager>[0]} options
 */
function managerFor(t, options) {
  const manager = new JobManager({ token: TOKEN, ...options });
  t.after(() => manager.cleanup());
  t.signal?.addEventListener('abort', () => manager.cleanup(), { once: true });
  return manager;
}

describe('JobManager against a real server', { skip: SKIP_REASON }, () => {
  before(async () => {
    // Fail fast and say why, rather than let every test wait out its retries.
    const response = await fetch(`${SERVER_URL}/api/health`).catch((error) => {
      throw new Error(`chunkmatch server at ${SERVER_URL} is unreachable: ${error.message}`);
    });
    if (!response.ok) {
      throw new Error(`chunkmatch server at ${SERVER_URL} is unhealthy: ${await response.text()}`);
    }
  });

  test('startJob drives a job to completion, reporting monotonic progress', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('complete');
    const manager = managerFor(t, { baseUrl: SERVER_URL });
    const updates = [];
    const job = await manager.startJob(project.id, 'enhanced', (j) => updates.push(j), {
      config: CONFIG,
    });

    assert.equal(job.status, 'completed');
    assert.equal(job.progressPercentage, 100);
    assert.equal(job.processedItems, job.totalItems);
    assert.equal(job.totalItems, 120);
    assert.ok(job.matchesFound > 0, `expected matches, got ${job.matchesFound}`);
    // creation + at least one update per chunk (120 items / 20 per chunk)
    assert.ok(updates.length >= 1 + 6, `only ${updates.length} updates`);
    assert.equal(updates[0].status, 'pending');
    assert.deepEqual(updates.at(-1), job);
    const processed = updates.map((j) => j.processedItems);
    assert.ok(isNonDecreasing(processed), `processedItems went backwards: ${processed}`);
    assert.ok(isNonDecreasing(updates.map((j) => j.progressPercentage)));

    const { matches } = await manager.api.listMatches(job.id, { limit: 5 });
    assert.ok(matches.length > 0);
    for (const match of matches) {
      assert.ok(match.score >= 0 && match.score <= 1, `score out of range: ${match.score}`);
    }
  });

  test('backs off on 503 with Retry-After and still completes', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('retry-after');
    const proxy = await startFaultProxy(SERVER_URL, [
      { method: 'POST', path: PROCESS, count: 2, fault: { status: 503, retryAfter: '1' } },
    ]);
    try {
      const manager = managerFor(t, { baseUrl: proxy.url, retry: FAST_RETRY });
      const retries = [];
      const job = await manager.startJob(project.id, 'enhanced', () => {}, {
        config: CONFIG,
        onRetry: (info) => retries.push(info),
      });
      assert.equal(job.status, 'completed');
      assert.equal(job.progressPercentage, 100);

      const calls = proxy.requests(PROCESS, 'POST');
      assert.equal(calls[0].status, 503);
      assert.equal(calls[1].status, 503);
      assert.equal(calls[2].status, 200);
      // Retry-After: 1 beats the 20 ms backoff: each retry waited about a second.
      assert.ok(calls[1].at - calls[0].at >= 950, `retried after ${calls[1].at - calls[0].at} ms`);
      assert.ok(calls[2].at - calls[1].at >= 950, `retried after ${calls[2].at - calls[1].at} ms`);
      assert.equal(retries.length, 2);
      assert.ok(retries.every((r) => r.delayMs >= 1000 && r.error instanceof ApiError));
    } finally {
      await proxy.close();
    }
  });

  test('retries 500s, 429s and dropped connections, then completes', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('faults');
    const proxy = await startFaultProxy(SERVER_URL, [
      { method: 'POST', path: /\/api\/jobs\/create$/, count: 1, fault: { status: 500 } },
      { method: 'POST', path: PROCESS, count: 1, fault: 'drop' },
      { method: 'POST', path: PROCESS, count: 1, fault: { status: 429, retryAfter: '0' } },
      { method: 'POST', path: PROCESS, count: 1, fault: { status: 500 } },
      // The server processes this chunk but the answer is lost: the client must carry on.
      { method: 'POST', path: PROCESS, count: 1, fault: 'drop-after' },
    ]);
    try {
      const manager = managerFor(t, { baseUrl: proxy.url, retry: FAST_RETRY });
      const updates = [];
      const job = await manager.startJob(project.id, 'enhanced', (j) => updates.push(j), {
        config: CONFIG,
      });
      assert.equal(job.status, 'completed');
      assert.equal(job.processedItems, 120);
      assert.ok(isNonDecreasing(updates.map((j) => j.processedItems)));
      const faults = proxy.log.filter((e) => e.fault !== null).map((e) => e.fault);
      assert.equal(faults.length, 5, `not every fault was served: ${JSON.stringify(faults)}`);
    } finally {
      await proxy.close();
    }
  });

  test('gives up after the retry budget with the last error', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('give-up', 20);
    const proxy = await startFaultProxy(SERVER_URL, [
      { method: 'POST', path: PROCESS, count: 100, fault: { status: 503 } },
    ]);
    try {
      const manager = managerFor(t, {
        baseUrl: proxy.url,
        retry: { maxRetries: 3, baseDelayMs: 5, maxDelayMs: 20 },
      });
      await assert.rejects(manager.startJob(project.id, 'enhanced', undefined, { config: CONFIG }), (error) => {
        assert.ok(error instanceof ApiError);
        assert.equal(error.status, 503);
        return true;
      });
      assert.equal(proxy.requests(PROCESS, 'POST').length, 4);
    } finally {
      await proxy.close();
    }
  });

  test('rejects with the job error when the job is marked failed while it runs', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('failed');
    const manager = managerFor(t, { baseUrl: SERVER_URL });
    const other = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
    let marked = false;
    const run = manager.startJob(
      project.id,
      'enhanced',
      async (job) => {
        if (!marked) {
          marked = true;
          const failed = await other.updateJob(job.id, {
            status: 'failed',
            error: 'stopped by the JS test',
          });
          assert.equal(failed.status, 'failed');
        }
      },
      { config: CONFIG },
    );
    await assert.rejects(run, (error) => {
      assert.ok(error instanceof JobEndedError, `got ${error}`);
      assert.equal(error.job.status, 'failed');
      assert.match(error.message, /failed/);
      assert.match(error.message, /stopped by the JS test/);
      return true;
    });
  });

  test('rejects at once with the server message on a 4xx (unknown project)', TEST_TIMEOUT, async (t) => {
    const proxy = await startFaultProxy(SERVER_URL, []);
    try {
      const manager = managerFor(t, { baseUrl: proxy.url });
      const missing = '00000000-0000-4000-8000-000000000000';
      await assert.rejects(manager.startJob(missing, 'enhanced', () => {}), (error) => {
        assert.ok(error instanceof ApiError, `got ${error}`);
        assert.ok(error.status >= 400 && error.status < 500, `status ${error.status}`);
        assert.ok(error.code, 'error code missing');
        assert.ok(error.message && !error.message.startsWith('HTTP '), error.message);
        return true;
      });
      assert.equal(proxy.log.length, 1, 'a 4xx must not be retried');
    } finally {
      await proxy.close();
    }
  });

  test('startPolling watches a job driven by another JobManager', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('polling');
    const driver = managerFor(t, { baseUrl: SERVER_URL });
    const watcher = managerFor(t, { baseUrl: SERVER_URL });
    const seen = [];
    /** @type {Promise<any>|undefined} */
    let watching;
    const driven = await driver.startJob(
      project.id,
      'enhanced',
      (job) => {
        watching ??= watcher.startPolling(job.id, (j) => seen.push(j), 20);
      },
      { config: CONFIG },
    );
    const watched = await watching;
    assert.equal(watched.id, driven.id);
    assert.equal(watched.status, 'completed');
    assert.equal(watched.processedItems, driven.processedItems);
    assert.ok(seen.length >= 1);
    assert.ok(isNonDecreasing(seen.map((j) => j.processedItems)));
    watcher.cleanup();
  });

  test('watch follows a job another client drives, pushed as events', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('watch');
    const api = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
    const job = await api.createJob(project.id, 'enhanced', { config: CONFIG });
    const proxy = await startFaultProxy(SERVER_URL, []);
    try {
      const watcher = managerFor(t, { baseUrl: proxy.url, pollIntervalMs: 60_000 });
      const seen = [];
      const watching = watcher.watch(job.id, (j) => seen.push(j));
      // drive only once the watcher is connected, so that every chunk is something it sees
      while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      for (let state = job; state.status !== 'completed'; ) {
        ({ job: state } = await api.processJob(job.id));
      }
      const watched = await watching;
      assert.equal(watched.status, 'completed');
      assert.equal(watched.processedItems, 120);
      assert.deepEqual(seen.at(-1), watched);
      const versions = seen.map((j) => j.version);
      assert.ok(versions.every((v, i) => i === 0 || v > versions[i - 1]), `${versions}`);
      // every chunk (120 items / 20) was pushed, with no poll at all
      const processed = new Set(seen.map((j) => j.processedItems));
      for (const n of [20, 40, 60, 80, 100, 120]) assert.ok(processed.has(n), `${[...processed]}`);
      assert.equal(proxy.requests(/\/events$/, 'GET').length, 1);
      assert.equal(proxy.requests(new RegExp(`/api/jobs/${job.id}$`), 'GET').length, 0);
    } finally {
      await proxy.close();
    }
  });

  test('watch reopens a dropped stream, then falls back to polling', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('watch-fallback', 40);
    const api = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
    const job = await api.createJob(project.id, 'enhanced', { config: CONFIG });
    const proxy = await startFaultProxy(SERVER_URL, [
      { method: 'GET', path: /\/events$/, count: 1, fault: 'drop' },
      { method: 'GET', path: /\/events$/, count: 100, fault: { status: 503 } },
    ]);
    try {
      const watcher = managerFor(t, { baseUrl: proxy.url, pollIntervalMs: 20, retry: FAST_RETRY });
      const seen = [];
      const watching = watcher.watch(job.id, (j) => seen.push(j));
      await new Promise((resolve) => setTimeout(resolve, 100));
      for (let state = job; state.status !== 'completed'; ) {
        ({ job: state } = await api.processJob(job.id));
      }
      const watched = await watching;
      assert.equal(watched.status, 'completed');
      assert.ok(isNonDecreasing(seen.map((j) => j.processedItems)));
      // MAX_STREAM_FAILURES streams in a row gave nothing (one dropped, two refused): polls
      assert.equal(proxy.requests(/\/events$/, 'GET').length, MAX_STREAM_FAILURES);
      assert.ok(proxy.requests(new RegExp(`/api/jobs/${job.id}$`), 'GET').length >= 1);
    } finally {
      await proxy.close();
    }
  });

  test('watch rejects for a job that is not there', TEST_TIMEOUT, async (t) => {
    const watcher = managerFor(t, { baseUrl: SERVER_URL });
    await assert.rejects(watcher.watch('00000000-0000-0000-0000-000000000000'), (error) => {
      assert.ok(error instanceof ApiError);
      assert.equal(error.status, 404);
      return true;
    });
  });

  test('two managers can drive the same job together', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('two-drivers');
    const first = managerFor(t, { baseUrl: SERVER_URL, pollIntervalMs: 200 });
    const second = managerFor(t, { baseUrl: SERVER_URL, pollIntervalMs: 200 });
    /** @type {Promise<any>|undefined} */
    let helping;
    const seen = [];
    const driven = await first.startJob(
      project.id,
      'enhanced',
      (job) => {
        helping ??= second.drive(job.id, (j) => seen.push(j));
      },
      { config: { chunkSize: 10 } },
    );
    const helped = await helping;
    assert.equal(driven.status, 'completed');
    assert.equal(helped.status, 'completed');
    assert.equal(helped.processedItems, 120);
    assert.ok(isNonDecreasing(seen.map((j) => j.processedItems)));
  });

  test('cancel stops a running job and the driver rejects', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('cancel');
    const driver = managerFor(t, { baseUrl: SERVER_URL });
    const canceller = managerFor(t, { baseUrl: SERVER_URL });
    let cancelled;
    const run = driver.startJob(
      project.id,
      'enhanced',
      async (job) => {
        if (!cancelled && job.processedItems > 0) cancelled = await canceller.cancel(job.id);
      },
      { config: CONFIG },
    );
    await assert.rejects(run, (error) => {
      assert.ok(error instanceof JobEndedError, `got ${error}`);
      assert.equal(error.job.status, 'cancelled');
      assert.match(error.message, /cancelled/);
      return true;
    });
    assert.equal(cancelled.status, 'cancelled');
    assert.ok(cancelled.processedItems < cancelled.totalItems);
    const after = await driver.api.getJob(cancelled.id);
    assert.equal(after.status, 'cancelled');
  });

  test('cleanup aborts a running job and a watcher with AbortError', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('cleanup');
    const manager = managerFor(t, { baseUrl: SERVER_URL });
    let jobId;
    const run = manager.startJob(
      project.id,
      'enhanced',
      (job) => {
        jobId = job.id;
        if (job.processedItems > 0) manager.cleanup();
      },
      { config: CONFIG },
    );
    await assert.rejects(run, { name: 'AbortError' });

    const started = Date.now();
    const watch = manager.startPolling(jobId, () => setImmediate(() => manager.cleanup()), 60_000);
    await assert.rejects(watch, { name: 'AbortError' });
    assert.ok(Date.now() - started < 5000, 'cleanup did not interrupt the poll wait');

    // The manager is usable again after cleanup.
    const job = await manager.api.getJob(jobId);
    assert.ok(job.processedItems < job.totalItems);
  });

  test('after cleanup no timer keeps a Node process alive', TEST_TIMEOUT, async (t) => {
    const project = await createProjectWithData('exit', 40);
    const child = spawn(
      process.execPath,
      [fileURLToPath(new URL('./fixtures/cleanup-child.mjs', import.meta.url)), project.id],
      { env: { ...process.env, CHUNKMATCH_URL: SERVER_URL }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (data) => (output += data));
    child.stderr.on('data', (data) => (output += data));
    const code = await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('timeout');
      }, 15_000);
      child.on('exit', (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    assert.equal(code, 0, `child did not exit cleanly (${code}):\n${output}`);
    assert.match(output, /aborted job: AbortError/);
    assert.match(output, /aborted watcher: AbortError/);
    assert.match(output, /aborted backoff: AbortError/);
  });
});
