"""Upload figures through the real service: seconds per CSV upload, the server's peak memory
during it, and how long `/api/health` takes to answer while it runs.

Starts `chunkmatch serve` as a subprocess (embedded PostgreSQL in a temporary folder, or
DATABASE_URL when set), like `service_end_to_end.py`, and uploads:

- `rows`: a 100,000-row product-like CSV (three columns), `--repeat` times;
- `tiny`: 1,000,000 tiny rows (about 9 MB: the worst case for memory per byte);
- `big`: a CSV of about `--big-mib` MiB (default 256, the default body limit).

Peak memory is the service process's VmHWM, reset before each upload (`/proc/PID/clear_refs`),
minus its resident memory just before; PostgreSQL's own processes are not counted.

    .venv/bin/python benchmarks/upload_speed.py
    .venv/bin/python benchmarks/upload_speed.py --cases rows --repeat 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.synchronize
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from service_end_to_end import server  # noqa: E402

HEALTH_INTERVAL_SECONDS = 0.02


def rows_csv(n: int) -> bytes:
    lines = ["id,name,price"] + [
        f"{i},Product number {i} deluxe edition by Maker {i % 97},{i % 100}.99" for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def tiny_csv(n: int) -> bytes:
    return b"id,v\n" + b"".join(b"%d,x\n" % i for i in range(n))


def big_csv(mib: int) -> bytes:
    row = 0
    parts = [b"id,name,description\n"]
    size = len(parts[0])
    filler = b"a longer description of the product, with words and numbers 0123456789 " * 3
    while True:
        line = b'%d,Product %d,"%s"\n' % (row, row, filler)
        if size + len(line) > mib * 1024 * 1024:
            break
        parts.append(line)
        size += len(line)
        row += 1
    return b"".join(parts)


def _status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _probe(
    url: str,
    ready: multiprocessing.synchronize.Event,
    stop: multiprocessing.synchronize.Event,
    out: Connection,
) -> None:
    latencies = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/api/health")  # the connection and the client's first call, not timed
        ready.set()
        while not stop.is_set():
            started = time.perf_counter()
            client.get("/api/health")
            latencies.append(time.perf_counter() - started)
            stop.wait(HEALTH_INTERVAL_SECONDS)
    out.send(latencies)


class HealthProbe:
    """Calls /api/health back to back from another process (so that this one's upload does
    not delay it); records each answer's latency from its second call on (the first one
    opens the connection), the upload starting once that first call has answered."""

    def __init__(self, url: str) -> None:
        self.latencies: list[float] = []
        self._ready = multiprocessing.Event()
        self._stop = multiprocessing.Event()
        self._receive, send = multiprocessing.Pipe(duplex=False)
        self._process = multiprocessing.Process(
            target=_probe, args=(url, self._ready, self._stop, send)
        )

    def __enter__(self) -> HealthProbe:
        self._process.start()
        self._ready.wait(60)  # its first call answered: the upload starts after
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.latencies = self._receive.recv()
        self._process.join()


def upload_once(
    client: httpx.Client, url: str, pid: int, label: str, body: bytes, settle: float
) -> None:
    project = client.post("/api/projects", json={"name": f"upload {label}"}).json()["project"]
    before = _status(pid, "VmRSS:")
    _reset_peak(pid)
    with HealthProbe(url) as probe:
        started = time.perf_counter()
        r = client.post(
            f"/api/projects/{project['id']}/catalog",
            content=body,
            headers={"Content-Type": "text/csv"},
        )
        elapsed = time.perf_counter() - started
    peak = _status(pid, "VmHWM:")
    if r.status_code != 200:
        raise SystemExit(f"{label}: HTTP {r.status_code} {r.text[:300]}")
    lat = sorted(probe.latencies) or [0.0]
    print(
        f"{label:>10}: {len(body) / 2**20:7.1f} MiB, {r.json()['total']:>9,} rows in "
        f"{elapsed:6.2f} s | server memory +{peak - before:6.0f} MB over {before:4.0f} MB "
        f"({(peak - before) / (len(body) / 2**20):.1f}x body) | health: {len(lat)} calls, "
        f"median {statistics.median(lat) * 1000:5.1f} ms, max {lat[-1] * 1000:6.1f} ms",
        flush=True,
    )
    time.sleep(settle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["rows", "tiny", "big"])
    parser.add_argument("--repeat", type=int, default=3, help="uploads of the 100k-row CSV")
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument(
        "--settle",
        type=float,
        default=10.0,
        help="seconds to wait after each upload (its background index build)",
    )
    args = parser.parse_args()
    with (
        server() as (url, pid, token),
        httpx.Client(
            base_url=url, timeout=600, headers={"Authorization": f"Bearer {token}"}
        ) as client,
    ):
        if "rows" in args.cases:
            body = rows_csv(100_000)
            for n in range(args.repeat):
                upload_once(client, url, pid, f"100k #{n + 1}", body, args.settle)
        if "tiny" in args.cases:
            upload_once(client, url, pid, "1M tiny", tiny_csv(1_000_000), args.settle)
        if "big" in args.cases:
            upload_once(client, url, pid, f"{args.big_mib} MiB", big_csv(args.big_mib), args.settle)


if __name__ == "__main__":
    main()
