"""``chunkmatch worker``: advance runnable jobs when no browser or cron is driving them.

Bounded concurrency (``WORKER_CONCURRENCY`` slots, each advancing one chunk at a time),
woken by PostgreSQL ``LISTEN/NOTIFY`` when a job is created, resumed or retried, otherwise
polling every ``WORKER_POLL_SECONDS`` (never busy-waiting). On SIGTERM it starts no new
chunk, lets running chunks finish for ``WORKER_GRACE_SECONDS``, then cancels the rest
(their chunks are released for other drivers) and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from datetime import UTC, datetime

from service.exceptions import DatabaseUnavailable
from service.notify import Notifications
from service.runtime import Runtime, open_runtime
from service.settings import Settings
from service.store import JOBS_CHANNEL, WEBHOOKS_CHANNEL
from service.webhooks import WebhookDispatcher

logger = logging.getLogger("chunkmatch.worker")

RETENTION_EVERY_SECONDS = 3600.0
WEBHOOK_DELIVERY_RETENTION_DAYS = 30  # finished webhook deliveries are kept this long
MAX_OUTAGE_BACKOFF_SECONDS = 10.0


class Worker:
    """The slots that advance runnable jobs; ``chunkmatch worker`` runs them alone, and
    ``chunkmatch serve`` beside the web app, woken by the app's own listener
    (``notifications``) instead of a second LISTEN connection."""

    def __init__(self, runtime: Runtime, *, notifications: Notifications | None = None) -> None:
        self.runtime = runtime
        self.notifications = notifications
        self.settings = runtime.settings
        self.stopping = asyncio.Event()
        self._wakeups = [asyncio.Event() for _ in range(self.settings.worker_concurrency)]
        self.chunks_done = 0
        # the webhook outbox is delivered by whichever process runs a worker
        self.webhooks = WebhookDispatcher(runtime.store, self.settings)

    def wake(self, _job_id: str = "") -> None:
        for event in self._wakeups:
            event.set()

    async def run(self) -> None:
        if self.notifications is not None:
            self.notifications.on_runnable(self.wake)
            self.notifications.on_webhook_queued(self.webhooks.wake)
            listener = asyncio.create_task(self.stopping.wait(), name="worker-listen")
        else:
            listener = asyncio.create_task(self._listen(), name="worker-listen")
        housekeeping = asyncio.create_task(self._housekeeping(), name="worker-retention")
        slots = [
            asyncio.create_task(self._slot(n), name=f"worker-slot-{n}")
            for n in range(self.settings.worker_concurrency)
        ]
        webhooks = asyncio.create_task(self.webhooks.run(self.stopping), name="worker-webhooks")
        slots.append(webhooks)
        logger.info("worker started with %d slots", len(slots) - 1)
        await self.stopping.wait()
        logger.info("worker stopping: letting running chunks and webhook deliveries finish")
        self.wake()
        self.webhooks.wake()
        # a webhook delivery cut short is sent again once its lease runs out (at least once)
        _, pending = await asyncio.wait(slots, timeout=self.settings.worker_grace_seconds)
        for task in pending:  # past the grace period: cancel; the engine releases the chunk
            task.cancel()
        await asyncio.gather(*slots, return_exceptions=True)
        for task in (listener, housekeeping):
            task.cancel()
        await asyncio.gather(listener, housekeeping, return_exceptions=True)
        logger.info("worker stopped after %d chunks", self.chunks_done)

    async def _slot(self, n: int) -> None:
        wakeup = self._wakeups[n]
        outage_delay = 0.5
        while not self.stopping.is_set():
            wakeup.clear()
            try:
                advanced = await self._advance_one()
                outage_delay = 0.5
            except DatabaseUnavailable:
                logger.warning("database unavailable; slot %d retries in %.1fs", n, outage_delay)
                await self._pause(wakeup, outage_delay)
                outage_delay = min(outage_delay * 2, MAX_OUTAGE_BACKOFF_SECONDS)
                continue
            except Exception:
                logger.exception("worker slot %d: unexpected error", n)
                await self._pause(wakeup, 1.0)
                continue
            if not advanced:
                await self._pause(wakeup, await self._idle_seconds())

    async def _advance_one(self) -> bool:
        """One chunk of the most important runnable job that has one free; False if none."""
        store, engine = self.runtime.store, self.runtime.engine
        for job_id in await store.runnable_jobs(limit=4 * self.settings.worker_concurrency):
            if self.stopping.is_set():
                return False
            outcome = await engine.process_next_chunk(job_id)
            if outcome is not None and outcome.processed:
                self.chunks_done += 1
                return True
            if outcome is not None and outcome.preparing:  # it waited; its chunks follow
                return True
        return False

    async def _idle_seconds(self) -> float:
        """Poll interval, shortened when a job's retry backoff ends sooner."""
        wait = self.settings.worker_poll_seconds
        with contextlib.suppress(DatabaseUnavailable):
            next_retry = await self.runtime.store.next_retry_at()
            if next_retry is not None:
                wait = min(wait, max(0.05, (next_retry - datetime.now(UTC)).total_seconds()))
        return wait

    async def _pause(self, wakeup: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), timeout=seconds)

    async def _listen(self) -> None:
        """Keep a LISTEN connection open (re-opened after a database outage)."""
        store = self.runtime.store
        while True:
            try:
                conn = await store.listen(
                    {JOBS_CHANNEL: self.wake, WEBHOOKS_CHANNEL: self.webhooks.wake}
                )
            except DatabaseUnavailable:
                await asyncio.sleep(1.0)
                continue
            try:
                while not store.listener_closed(conn):
                    await asyncio.sleep(1.0)
                self.wake()  # the connection dropped: look for work we may have missed
                self.webhooks.wake()
            finally:
                await store.release_listener(conn)

    async def _housekeeping(self) -> None:
        days = self.settings.retention_days
        while True:
            try:
                await self.runtime.store.prune_budget()
                await self.runtime.store.prune_webhook_deliveries(
                    days_old=WEBHOOK_DELIVERY_RETENTION_DAYS
                )
                if not days:
                    await asyncio.sleep(RETENTION_EVERY_SECONDS)
                    continue
                deleted = await self.runtime.store.delete_finished_jobs(days_old=days)
                if deleted:
                    logger.info(
                        "retention: deleted %d finished jobs older than %d days", deleted, days
                    )
            except DatabaseUnavailable:
                pass
            await asyncio.sleep(RETENTION_EVERY_SECONDS)


async def run_worker(settings: Settings, *, metrics_host: str | None = None) -> int:
    """Run the worker until SIGTERM; with ``settings.worker_metrics_port``, serve its
    ``/metrics`` on ``metrics_host`` (default ``settings.host``) meanwhile."""
    from service.metrics_server import bind_metrics_socket, serve_metrics

    loop = asyncio.get_running_loop()
    started = time.monotonic()
    sock = None
    if settings.worker_metrics_port is not None:
        sock = bind_metrics_socket(metrics_host or settings.host, settings.worker_metrics_port)
    async with open_runtime(settings) as runtime:
        worker = Worker(runtime)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stopping.set)
        if sock is None:
            await worker.run()
        else:
            await asyncio.gather(
                worker.run(), serve_metrics(runtime, sock, stopping=worker.stopping)
            )
    logger.info("worker exited after %.1fs", time.monotonic() - started)
    return 0
