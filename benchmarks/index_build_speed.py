"""Build time of ``CatalogIndex`` and the job's peers, and a bit-identity check of what
they hold, so that a faster build can be shown to change nothing.

Run: ``.venv/bin/python benchmarks/index_build_speed.py --dump before.pkl`` on the old
code, then ``--compare before.pkl`` on the new one. ``--matching-root DIR`` imports the
``matching`` package from ``DIR`` instead (e.g. an exported older commit), so both runs
can use this script. For each set (the three benchmark sets and a synthetic one of
``--n`` records and items) it snapshots every record's key, codes, numbers and marks,
the index's exact and code rows, the vectorisers and matrices (their bytes), the peers,
the per-text results of ``own_codes`` / ``extract_codes`` / ``numbers_in_key`` /
``marks`` over catalog and item texts, and ``match()`` with the job's peers (ids,
scores, methods, reasons, explanations) for a sample of items; ``--compare`` reports
the first difference of each part. CPU seconds (``time.process_time``) of the build
and of the peers are printed for each set.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MATCH_SAMPLE = 3000
"""Items of each set whose ``match()`` results are compared (evenly spread)."""


def _plain(value: Any) -> Any:
    """A picklable, comparable form of the index's parts (arrays as dtype, shape and bytes)."""
    import numpy as np
    import scipy.sparse as sp

    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.shape, value.tobytes())
    if sp.issparse(value):
        csr = value.tocsr()
        return ("csr", csr.shape, *(_plain(a) for a in (csr.data, csr.indices, csr.indptr)))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        names = [f.name for f in dataclasses.fields(value)]
        return (type(value).__name__, {n: _plain(getattr(value, n)) for n in names})
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return value


def _sets(n: int) -> list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]:
    from benchmarks.datasets import ABT_BUY, AMAZON_GOOGLE, DBLP_ACM, load
    from benchmarks.synthetic import make_synthetic

    out = []
    for spec in (ABT_BUY, AMAZON_GOOGLE, DBLP_ACM):
        items, catalog, _ = load(spec)
        out.append((spec.name, catalog, items))
    catalog, items, _ = make_synthetic(n, n, 0)
    out.append(
        (
            f"synthetic {n}",
            [(r["id"], r["name"]) for r in catalog],
            [(r["id"], r["name"]) for r in items],
        )
    )
    return out


def snapshot(
    catalog: list[tuple[str, str]], items: list[tuple[str, str]]
) -> tuple[dict[str, Any], float, float]:
    """The comparable parts of one set's index, peers and matches, with the CPU seconds
    of the build and of the peers."""
    from matching import CatalogIndex
    from matching.codes import extract_codes, numbers_in_key, own_codes
    from matching.normalise import normalise_text
    from matching.variants import marks

    started = time.process_time()
    index = CatalogIndex.build(catalog)
    build = time.process_time() - started
    started = time.process_time()
    peers = index.peers(items)
    peers_cpu = time.process_time() - started
    step = max(1, len(items) // MATCH_SAMPLE)
    sample = items[::step]
    results = index.match(sample, peers=peers)
    scorer = index._scorer
    assert scorer is not None
    texts = [text for _, text in catalog] + [text for _, text in items]
    keys = [normalise_text(t) for t in texts]
    parts: dict[str, Any] = {
        "ids": index._ids,
        "exact_rows": index._exact_rows,
        "code_rows": index._code_rows,
        **{f"scorer.{f.name}": _plain(getattr(scorer, f.name)) for f in dataclasses.fields(scorer)},
        "peers": _plain(peers),
        "match": _plain(results),
        "own_codes": [own_codes(t) for t in texts],
        "extract_codes": [extract_codes(t) for t in texts],
        "normalise_text": keys,
        "numbers_in_key": [numbers_in_key(k) for k in keys],
        "marks": [marks(k) for k in keys],
    }
    return parts, build, peers_cpu


def _first_difference(before: Any, after: Any) -> str | None:
    if before == after:
        return None
    if isinstance(before, list | tuple) and isinstance(after, list | tuple):
        if len(before) != len(after):
            return f"length {len(before)} != {len(after)}"
        for position, (b, a) in enumerate(zip(before, after, strict=True)):
            if b != a:
                return f"at {position}: {str(b)[:200]} != {str(a)[:200]}"
    return f"{str(before)[:200]} != {str(after)[:200]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100_000, help="synthetic records and items")
    parser.add_argument("--dump", type=Path, help="write the snapshot here")
    parser.add_argument("--compare", type=Path, help="compare with a snapshot written here")
    parser.add_argument("--matching-root", type=Path, help="import matching from DIR")
    args = parser.parse_args()
    if args.matching_root:
        sys.path.insert(0, str(args.matching_root.resolve()))
    import matching

    print(f"matching from {Path(matching.__file__).parent}")
    expected = pickle.loads(args.compare.read_bytes()) if args.compare else None
    dumped = {}
    differences = 0
    for name, catalog, items in _sets(args.n):
        parts, build, peers_cpu = snapshot(catalog, items)
        print(
            f"{name}: {len(catalog):,} records, {len(items):,} items; "
            f"build {build:.2f} CPU-s, peers {peers_cpu:.2f} CPU-s, "
            f"{len(parts['match'])} matches in the sample"
        )
        dumped[name] = parts
        if expected is not None:
            for part, value in parts.items():
                difference = _first_difference(expected[name][part], value)
                if difference is not None:
                    differences += 1
                    print(f"  DIFFERENT {part}: {difference}")
    if args.dump:
        args.dump.write_bytes(pickle.dumps(dumped, protocol=pickle.HIGHEST_PROTOCOL))
    if expected is not None:
        print("identical" if differences == 0 else f"{differences} parts differ")
        sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
