// Live updates of a job, whoever drives it: the client's push (`JobManager.watch`, SSE with
// a polling fallback) when it has one, else polling through the client. Every view asks
// for updates through here, so the push plugs in without touching them.

/**
 * Call `onUpdate` with the job's state until it is terminal or `signal` aborts.
 * Resolves with the last state; an abort resolves with null.
 * @param {import('/static/job-manager.js').JobManager} manager
 * @param {string} jobId
 * @param {(job: object) => void} onUpdate
 * @param {{signal?: AbortSignal, intervalMs?: number}} [options]
 */
export async function watchJob(manager, jobId, onUpdate, { signal, intervalMs } = {}) {
  try {
    if (typeof manager.watch === 'function') return await manager.watch(jobId, onUpdate, { signal });
    return await manager.startPolling(jobId, onUpdate, intervalMs ?? manager.pollIntervalMs, { signal });
  } catch (error) {
    if (signal?.aborted || error?.name === 'AbortError') return null;
    throw error;
  }
}
