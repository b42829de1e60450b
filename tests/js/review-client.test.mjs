// The client methods of the review view (reviewQueue, decide), against a real chunkmatch
// server: the queue pages by cursor, decisions change the job's matches and the project's
// calibration, a bad decision is a 422 that changes nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ApiClient, ApiError, JobManager, REVIEW_DECISIONS } from '../../static/job-manager.js';
import { SERVER_URL, SKIP_REASON, TOKEN, uncertainData } from './helpers.mjs';

const TEST_TIMEOUT = { timeout: 120_000 };

/** A completed job over data with near misses and items without a counterpart. */
async function reviewedJob(label) {
  const api = new ApiClient({ baseUrl: SERVER_URL, token: TOKEN });
  const project = await api.createProject(`js-test review ${label} ${Date.now()}`);
  const { catalog, items } = uncertainData(80);
  await api.upload(project.id, 'catalog', catalog);
  await api.upload(project.id, 'items', items);
  const manager = new JobManager({ baseUrl: SERVER_URL, token: TOKEN });
  try {
    const job = await manager.startJob(project.id, 'enhanced', () => {}, { config: { chunkSize: 40 } });
    return { api, project, job };
  } finally {
    manager.cleanup();
  }
}

/** Every pair the queue offers, page after page of `limit`. */
async function wholeQueue(api, jobId, limit) {
  const pairs = [];
  const cursors = [];
  let cursor = null;
  do {
    const page = await api.reviewQueue(jobId, { limit, cursor });
    assert.ok(page.pairs.length <= limit, `a page of ${page.pairs.length} for limit ${limit}`);
    pairs.push(...page.pairs);
    cursor = page.nextCursor;
    cursors.push(cursor);
  } while (cursor && cursors.length < 100);
  return { pairs, pages: cursors.length };
}

describe('review client methods', { skip: SKIP_REASON }, () => {
  test('reviewQueue pages the uncertain pairs by cursor, each with its evidence', TEST_TIMEOUT, async () => {
    const { api, job } = await reviewedJob('queue');
    const first = await api.reviewQueue(job.id, { limit: 50 });
    assert.ok(first.pairs.length >= 4, `only ${first.pairs.length} uncertain pairs`);
    for (const pair of first.pairs) {
      assert.equal(typeof pair.itemId, 'string');
      assert.ok(pair.score >= 0 && pair.score <= 1, `score ${pair.score}`);
      assert.ok(Array.isArray(pair.explanation) && Array.isArray(pair.candidates));
      for (const e of pair.explanation) assert.equal(typeof e.contribution, 'number');
      for (const c of pair.candidates) assert.equal(typeof c.catalogId, 'string');
    }
    // small pages give the same pairs in the same order, none twice
    const { pairs, pages } = await wholeQueue(api, job.id, 3);
    const head = pairs.slice(0, first.pairs.length).map((p) => p.itemId);
    assert.deepEqual(head, first.pairs.map((p) => p.itemId));
    assert.equal(new Set(pairs.map((p) => p.itemId)).size, pairs.length);
    assert.ok(pages >= 2, 'the queue did not page');
    // the counts the view's counter shows: the whole queue, none decided yet
    assert.equal(first.total, pairs.length);
    assert.equal(first.decided, 0);
  });

  test('decide applies match, no-match and no-counterpart decisions', TEST_TIMEOUT, async () => {
    const { api, project, job } = await reviewedJob('decide');
    const { pairs } = await api.reviewQueue(job.id, { limit: 50 });
    const proposed = pairs.filter((p) => p.catalogId);
    assert.ok(proposed.length >= 3, `only ${proposed.length} pairs with a proposed record`);
    const [a, b, c] = proposed;
    assert.deepEqual(REVIEW_DECISIONS, ['match', 'no-match']);

    const answer = await api.decide(job.id, [
      { itemId: a.itemId, catalogId: a.catalogId, decision: 'match' },
      { itemId: b.itemId, catalogId: b.catalogId, decision: 'no-match' },
      { itemId: c.itemId, catalogId: null, decision: 'no-match' },
    ]);
    assert.equal(answer.applied, 3);
    assert.equal(answer.calibration.labels, 3);

    const matches = await allMatches(api, job.id);
    const byItem = new Map(matches.map((m) => [m.itemId, m]));
    assert.equal(byItem.get(a.itemId)?.catalogId, a.catalogId);
    assert.equal(byItem.get(a.itemId)?.method, 'human');
    assert.equal(byItem.get(a.itemId)?.score, 1);
    assert.notEqual(byItem.get(b.itemId)?.catalogId, b.catalogId);
    assert.equal(byItem.has(c.itemId), false);

    // decided pairs are not offered again; the project's calibration counts them
    const again = await wholeQueue(api, job.id, 50);
    const offered = new Set(again.pairs.map((p) => p.itemId));
    for (const decided of [a, b, c]) assert.equal(offered.has(decided.itemId), false, decided.itemId);
    const calibration = (await api.getProject(project.id)).calibration;
    assert.equal(calibration.labels, 3);
    assert.ok('estimatedPrecision' in calibration && 'estimatedRecall' in calibration && 'threshold' in calibration);
  });

  test('a bad decision is a 422 naming it, and nothing of the request is applied', TEST_TIMEOUT, async () => {
    const { api, project, job } = await reviewedJob('bad');
    const { pairs } = await api.reviewQueue(job.id, { limit: 50 });
    const good = pairs.find((p) => p.catalogId);
    const before = await allMatches(api, job.id);
    await assert.rejects(
      api.decide(job.id, [
        { itemId: good.itemId, catalogId: good.catalogId, decision: 'match' },
        { itemId: 'no-such-item', catalogId: null, decision: 'no-match' },
      ]),
      (error) => error instanceof ApiError && error.status === 422 && error.message.includes('no-such-item'),
    );
    assert.deepEqual(await allMatches(api, job.id), before);
    assert.equal((await api.getProject(project.id)).calibration.labels, 0);
    const still = await api.reviewQueue(job.id, { limit: 50 });
    assert.ok(still.pairs.some((p) => p.itemId === good.itemId));
    // an unknown decision never leaves the client
    await assert.rejects(api.decide(job.id, [{ itemId: good.itemId, catalogId: null, decision: 'maybe' }]), TypeError);
  });
});

/** @param {ApiClient} api @param {string} jobId */
async function allMatches(api, jobId) {
  const matches = [];
  let cursor = null;
  do {
    const page = await api.listMatches(jobId, { limit: 500, cursor });
    matches.push(...page.matches);
    cursor = page.nextCursor;
  } while (cursor);
  return matches.map(({ itemId, catalogId, method, score }) => ({ itemId, catalogId, method, score }));
}
