// The client methods the dashboard and job view use, against a real chunkmatch server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ApiClient, ApiError, JOB_ACTIONS } from '../../static/job-manager.js';
import { SERVER_URL, SKIP_REASON, TOKEN, createProjectWithData, processChunk } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 60_000 };

describe('dashboard client methods', { skip: SKIP_REASON }, () => {
  test('lists jobs across projects, counts them, controls them and reads their chunks', TEST_TIMEOUT, async () => {
    const api = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
    const project = await createProjectWithData('dashboard', 40);
    const job = await api.createJob(project.id, 'enhanced', { config: { chunkSize: 10 } });

    const all = await api.listJobs(null, { limit: 500 });
    assert.ok(all.some((j) => j.id === job.id));
    const status = await api.jobsStatus();
    assert.ok(status.counts.pending >= 1);
    assert.equal('success' in status, false);

    assert.deepEqual(JOB_ACTIONS, ['pause', 'resume', 'cancel', 'retry', 'retry-failed']);
    let answer = await api.controlJob(job.id, 'pause');
    assert.equal(answer.job.status, 'paused');
    answer = await api.controlJob(job.id, 'resume');
    assert.equal(answer.job.status, 'pending');
    await processChunk(api, job.id);
    await processChunk(api, job.id);

    const { chunks, nextCursor } = await api.listChunks(job.id);
    assert.deepEqual(chunks.map((c) => c.seq), [1, 2]);
    assert.deepEqual(chunks.map((c) => c.processedItems), [10, 20]);
    assert.ok(chunks.every((c) => c.etaSeconds !== null && c.status === 'done'));
    assert.equal(nextCursor, null);
    const page = await api.listChunks(job.id, { limit: 1 });
    assert.equal(page.nextCursor, '1');

    assert.deepEqual(await api.failedItems(job.id), []);
    // retry is for failed jobs: a clear 409, not a silent no-op
    await assert.rejects(api.controlJob(job.id, 'retry'), (error) => error instanceof ApiError && error.status === 409);
    await assert.rejects(api.controlJob(job.id, 'explode'), TypeError);
    answer = await api.controlJob(job.id, 'cancel');
    assert.equal(answer.job.status, 'cancelled');
  });
});
