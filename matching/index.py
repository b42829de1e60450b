"""The catalog index: built once per catalog version, then matched against many chunks.

A :class:`CatalogIndex` is immutable after :meth:`CatalogIndex.build`; ``match``
and ``candidates`` only read it, so one index may serve several threads at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from matching.acceptance import job_shift
from matching.claims import withdraw_contested
from matching.codes import own_codes
from matching.exceptions import (
    DuplicateCatalogIdError,
    InvalidArgumentError,
    InvalidThresholdError,
)
from matching.normalise import normalise_text
from matching.peers import PeerDraft, PeerSet
from matching.progress import Progress, map_reporting, no_progress, scaled
from matching.ranking import RERANK_CANDIDATES, CandidateScorer, ScoredPairs
from matching.results import METHOD_CODE, METHOD_EXACT, METHOD_FUZZY, Evidence, MatchResult
from matching.review import REVIEW_CANDIDATES, ReviewPair, error_chance
from matching.scoring import describe, explain_rows
from matching.vectors import CharNgramVectoriser

DEFAULT_THRESHOLD = 0.26
"""Score (0..1) at or above which ``match`` accepts a code or fuzzy pair.

Scores are calibrated probabilities that the pair is right (see
:mod:`matching.acceptance`); the threshold is the one with the best mean F1 over the
benchmark sets and their open-world variants (``benchmarks/fit_scoring.py``)."""

PRIOR_SAMPLE = 2000
"""Items of a job whose best candidates estimate the job's prior (see :meth:`CatalogIndex.peers`)."""

DEFAULT_CANDIDATES = 10
"""Default number of candidates returned by :meth:`CatalogIndex.candidates`."""

CODE_CONFIRM_MIN_SIMILARITY = 0.4
"""Text similarity (0..1) a unique model-code hit needs to be reported as a ``code`` match."""

EXACT_EXPLANATION = (Evidence("normalised_text_identical", 1.0, 0.0),)
"""The explanation of an ``exact`` match: nothing else was weighed."""

# Items scored per vectorised pass; bounds the peak memory of one call.
_BATCH_ROWS = 1024


class CatalogIndex:
    """An immutable, thread-safe index over ``(catalog_id, text)`` records.

    >>> index = CatalogIndex.build([("b1", "Sony Cyber-shot DSC-W120 Black"),
    ...                             ("b2", "Canon PowerShot SD1100 IS")])
    >>> [(r.item_id, r.catalog_id, r.method) for r in index.match([("a1", "sony dsc-w120 cyber-shot")])]
    [('a1', 'b1', 'code')]
    """

    __slots__ = ("_ids", "_exact_rows", "_code_rows", "_scorer")

    def __init__(
        self,
        *,
        ids: list[str],
        exact_rows: dict[str, int],
        code_rows: dict[str, int],
        scorer: CandidateScorer | None,
    ) -> None:
        self._ids = ids
        self._exact_rows = exact_rows
        self._code_rows = code_rows
        self._scorer = scorer

    @classmethod
    def build(
        cls,
        records: Sequence[tuple[str, str]],
        *,
        progress: Progress | None = None,
        on_vocabulary: Callable[[CharNgramVectoriser], None] | None = None,
    ) -> CatalogIndex:
        """Index ``(catalog_id, text)`` records.

        ``progress``, when given, is called from time to time with the share of the build
        done (0..1, never decreasing; 1.0 last); an exception it raises stops the build.
        ``on_vocabulary``, when given, is called with the records' n-gram vectoriser as
        soon as it is fitted (about halfway through the build), so that a job's peers can be
        drafted with it meanwhile (:meth:`draft_peers`).
        Raises :class:`~matching.exceptions.DuplicateCatalogIdError` if an id repeats.

        >>> seen = []
        >>> _ = CatalogIndex.build([("b1", "Sony DSC-W120")], progress=seen.append)
        >>> seen[-1]
        1.0
        """
        with _batch_allocations():
            return cls._build(records, progress or no_progress, on_vocabulary)

    @classmethod
    def _build(
        cls,
        records: Sequence[tuple[str, str]],
        report: Progress,
        on_vocabulary: Callable[[CharNgramVectoriser], None] | None,
    ) -> CatalogIndex:
        ids = [str(record_id) for record_id, _ in records]
        if len(set(ids)) != len(ids):
            duplicate = next(i for i, n in Counter(ids).items() if n > 1)
            raise DuplicateCatalogIdError(f"catalog id {duplicate!r} occurs more than once")
        texts = [_as_text(text) for _, text in records]
        keys = map_reporting(normalise_text, texts, scaled(report, 0.0, 0.07))
        exact_rows: dict[str, int] = {}
        for row, key in enumerate(keys):
            if key:
                exact_rows.setdefault(key, row)
        fitted = None
        if records:
            fitted = CharNgramVectoriser.fit(keys)
            report(0.2)
            if on_vocabulary is not None:
                on_vocabulary(fitted[0])
        codes = map_reporting(own_codes, texts, scaled(report, 0.2, 0.4))
        frequency = Counter(code for cs in codes for code in cs)
        code_rows = {c: row for row, cs in enumerate(codes) for c in cs if frequency[c] == 1}
        scorer = None
        if fitted is not None:
            scorer = CandidateScorer.build(
                keys, codes, progress=scaled(report, 0.4, 1.0), fitted=fitted
            )
        report(1.0)
        return cls(ids=ids, exact_rows=exact_rows, code_rows=code_rows, scorer=scorer)

    def __len__(self) -> int:
        return len(self._ids)

    def __repr__(self) -> str:
        return f"<CatalogIndex records={len(self)} nbytes={self.nbytes}>"

    @property
    def nbytes(self) -> int:
        """Approximate memory held by the index, in bytes."""
        total = sys.getsizeof(self._ids) + sum(sys.getsizeof(s) for s in self._ids)
        # A dict entry with its (unshared) key costs roughly 100 bytes.
        total += 100 * (len(self._exact_rows) + len(self._code_rows))
        if self._scorer is not None:
            total += self._scorer.nbytes
        return int(total)

    def peers(
        self,
        items: Sequence[tuple[str, str]],
        *,
        progress: Progress | None = None,
        draft: PeerDraft | None = None,
    ) -> PeerSet:
        """The ``(item_id, text)`` items of a job as rivals for catalog records (see
        :mod:`matching.peers`); pass it to :meth:`match` when a job is matched in chunks,
        so every chunk sees the same rivals. ``progress`` as in :meth:`build`.

        ``draft``, from :meth:`draft_peers` for this index's records and the same items,
        saves most of the work; a draft made with another vocabulary is ignored.

        >>> records = [("b1", "Sony DSC-W120 camera"), ("b2", "Sony DSC-W130 camera")]
        >>> items = [("a1", "sony dsc w120"), ("a2", "sony dsc w130")]
        >>> index = CatalogIndex.build(records)
        >>> drafted = index.peers(items, draft=CatalogIndex.draft_peers(records, items))
        >>> drafted.rivals.tolist() == index.peers(items).rivals.tolist()
        True
        """
        if self._scorer is None:
            raise InvalidArgumentError("an empty catalog has no vocabulary for peers")
        with _batch_allocations():
            return self._peers(items, progress or no_progress, draft)

    def fits(self, draft: PeerDraft) -> bool:
        """Whether ``draft`` was made with this index's n-gram vocabulary (from its records)."""
        return self._scorer is not None and draft.vocabulary == self._scorer.char.fingerprint

    @staticmethod
    def draft_peers(
        vocabulary: Sequence[tuple[str, str]] | CharNgramVectoriser,
        items: Sequence[tuple[str, str]],
    ) -> PeerDraft:
        """The peers :meth:`peers` makes of ``items`` for the index of some records, but
        for the job's prior shift, without that index: only its n-gram ``vocabulary``
        (given by :meth:`build`'s ``on_vocabulary``, or fitted here from the records).
        Another process can make it while the index is built."""
        with _batch_allocations():
            char = vocabulary
            if not isinstance(char, CharNgramVectoriser):
                char, _ = CharNgramVectoriser.fit([normalise_text(_as_text(t)) for _, t in char])
            keys = [normalise_text(_as_text(t)) for _, t in items]
            peers = PeerSet.build([str(i) for i, _ in items], keys, char)
            return PeerDraft(peers, keys, char.fingerprint)

    def _peers(
        self, items: Sequence[tuple[str, str]], report: Progress, draft: PeerDraft | None
    ) -> PeerSet:
        assert self._scorer is not None
        texts = [_as_text(t) for _, t in items]
        if draft is not None and len(draft.keys) == len(items) and self.fits(draft):
            keys, peers = draft.keys, draft.peers
        else:
            keys = map_reporting(normalise_text, texts, scaled(report, 0.0, 0.1))
            peers = PeerSet.build(
                [str(i) for i, _ in items],
                keys,
                self._scorer.char,
                progress=scaled(report, 0.1, 0.85),
            )
        peers = self._with_prior(peers, texts, keys, progress=scaled(report, 0.85, 1.0))
        report(1.0)
        return peers

    def _with_prior(
        self,
        peers: PeerSet,
        texts: list[str],
        keys: list[str],
        *,
        progress: Progress = no_progress,
    ) -> PeerSet:
        """``peers`` with the job's prior shift, estimated from the best candidates of up
        to :data:`PRIOR_SAMPLE` of its items that the exact stage leaves (evenly spread
        over the items, so the estimate is the same whichever chunk asks)."""
        pending = [p for p, key in enumerate(keys) if not (key and key in self._exact_rows)]
        if len(pending) > PRIOR_SAMPLE:
            step = len(pending) / PRIOR_SAMPLE
            pending = [pending[int(k * step)] for k in range(PRIOR_SAMPLE)]
        logits = []
        for start in range(0, len(pending), _BATCH_ROWS):
            batch = pending[start : start + _BATCH_ROWS]
            # item p of the job is row p of its peers
            best = self._best_logits(
                [texts[p] for p in batch], [keys[p] for p in batch], peers, batch
            )
            logits.append(best)
            progress(min(1.0, (start + _BATCH_ROWS) / len(pending)))
        values = np.concatenate(logits) if logits else np.zeros(0)
        return dataclasses.replace(
            peers, prior_shift=job_shift(values, threshold=DEFAULT_THRESHOLD)
        )

    def _best_logits(
        self, texts: list[str], keys: list[str], peers: PeerSet, peer_rows: list[int]
    ) -> np.ndarray:
        """The raw logit of each text's best-ranked candidate (texts without one left out)."""
        _, _, pairs = self.score_texts(texts, keys, RERANK_CANDIDATES, peers, peer_rows)
        first = [positions[0] for positions in pairs.by_item(len(texts)) if positions]
        return pairs.logits[np.array(first, dtype=np.int64)]

    def match(
        self,
        items: Sequence[tuple[str, str]],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        peers: PeerSet | None = None,
        contest: bool | None = None,
    ) -> list[MatchResult]:
        """Return the best catalog record for each item scoring at least ``threshold``.

        Stages run in order, each on the items the earlier ones left: ``exact``
        (normalised text equal, score 1.0), ``code`` (a model code of the item
        occurs in exactly one catalog record and the texts are similar enough),
        ``fuzzy`` (n-gram retrieval re-ranked by several signals). Unmatched items
        are omitted; results keep input order.

        A record counts for less when another item of the job fits it as well:
        ``peers`` (from :meth:`peers`) are the job's items; by default they are
        ``items`` themselves, so matching a job in chunks should pass the job's peers.

        Matches that claim the same record are judged beside each other, and those then
        too unlikely right are withdrawn (:func:`matching.claims.withdraw_contested`):
        ``contest`` does it over ``items``; by default it is done when ``items`` are the
        whole job (no ``peers`` given). A job matched in chunks does it over all of its
        chunks' matches at the end, as the service does.

        >>> index = CatalogIndex.build([
        ...     ("b1", "Seagate Barracuda 500GB SATA hard drive ST3500418AS"),
        ...     ("b2", "Seagate Barracuda 750GB SATA hard drive ST3750528AS"),
        ... ])
        >>> [(r.catalog_id, r.method) for r in index.match([("a1", "Seagate ST3750528AS 750 GB")])]
        [('b2', 'code')]

        Near-identical siblings without a telling code are left unmatched rather than
        guessed (the margin over the runner-up counts):

        >>> index.match([("a2", "seagate 750 gb barracuda")])
        []
        """
        return self.match_for_review(items, threshold=threshold, peers=peers, contest=contest)[0]

    def match_for_review(
        self,
        items: Sequence[tuple[str, str]],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        peers: PeerSet | None = None,
        review_from: float | None = None,
        contest: bool | None = None,
    ) -> tuple[list[MatchResult], list[ReviewPair]]:
        """:meth:`match`, and (``review_from`` given) the decisions worth a reviewer's
        look: each match or unmatched item whose :func:`~matching.review.error_chance` is
        at least ``review_from``, with its best candidates (an unmatched item's best one
        scoring at least ``review_from``, and explained). The matches are those of
        :meth:`match`, whatever ``review_from``; a match withdrawn beside its rivals
        (``contest``, as in :meth:`match`) is reviewed as an unmatched item whose best
        candidate is as likely right as its rivals leave it.

        >>> index = CatalogIndex.build([("b1", "Sony DSC-W120"), ("b2", "Sony DSC-W130")])
        >>> found, review = index.match_for_review([("a1", "Sony DSC W12")], review_from=0.02)
        >>> found, [(r.proposed.catalog_id, r.matched, [c for c, _ in r.candidates]) for r in review]
        ([], [('b1', False, ['b1', 'b2'])])
        """
        if not 0.0 <= threshold <= 1.0:
            raise InvalidThresholdError(f"threshold must be within [0, 1], got {threshold!r}")
        if review_from is not None and not 0.0 < review_from <= 1.0:
            raise InvalidArgumentError(f"review_from must be within (0, 1], got {review_from!r}")
        if self._scorer is None or not items:
            return [], []
        with _batch_allocations():
            results, review = self._match(items, threshold, peers, review_from)
        if contest or (contest is None and peers is None):
            results, withdrawn = withdraw_contested(results, threshold)
            review = [
                _unmatched(p, withdrawn[p.item_id]) if p.item_id in withdrawn and p.matched else p
                for p in review
            ]
        return results, review

    def _match(
        self,
        items: Sequence[tuple[str, str]],
        threshold: float,
        peers: PeerSet | None,
        review_from: float | None,
    ) -> tuple[list[MatchResult], list[ReviewPair]]:
        assert self._scorer is not None
        results: list[MatchResult | None] = [None] * len(items)
        review: list[ReviewPair | None] = [None] * len(items)
        described_from = threshold if review_from is None else min(threshold, review_from)
        item_texts, keys, peers, peer_rows = self._prepare(items, peers)
        pending: list[int] = []
        for position, key in enumerate(keys):
            row = self._exact_rows.get(key) if key else None
            if row is None:
                pending.append(position)
            else:
                item_id = str(items[position][0])
                reason = "normalised text identical"
                results[position] = MatchResult(
                    item_id, self._ids[row], 1.0, METHOD_EXACT, reason, EXACT_EXPLANATION
                )
        for start in range(0, len(pending), _BATCH_ROWS):
            batch = pending[start : start + _BATCH_ROWS]
            texts = [item_texts[p] for p in batch]
            runners_up: list[tuple[np.ndarray, np.ndarray, list[int]]] = []
            ranked_batch = self._rank(
                texts,
                [keys[p] for p in batch],
                1,
                peers,
                [peer_rows[p] for p in batch],
                described_from=described_from,
                runners_up=runners_up if review_from is not None else None,
            )
            for n, (position, ranked) in enumerate(zip(batch, ranked_batch, strict=True)):
                if not ranked:
                    continue
                row, score, method, reason, explanation = ranked[0]
                matched = score >= threshold
                item_id = str(items[position][0])
                best = MatchResult(item_id, self._ids[row], score, method, reason, explanation)
                if matched:
                    results[position] = best
                # an unmatched item's chance of a missed match is at least its best score
                if review_from is None or (1.0 - score if matched else score) < review_from:
                    continue
                rows, scores, bounds = runners_up[0]
                others = range(bounds[n], bounds[n + 1])
                candidates = ((best.catalog_id, score),) + tuple(
                    (self._ids[rows[k]], round(float(scores[k]), 9)) for k in others
                )[: REVIEW_CANDIDATES - 1]
                chance = error_chance(
                    score, matched=matched, candidate_scores=[c[1] for c in candidates]
                )
                review[position] = ReviewPair(best, matched, candidates, chance)
        return [r for r in results if r is not None], [r for r in review if r is not None]

    def candidates(self, text: str, *, k: int = DEFAULT_CANDIDATES) -> list[tuple[str, float]]:
        """The ``k`` best catalog records for ``text`` as ``(catalog_id, score)``, best first.

        Meant for a later stage (such as an LLM) that picks among near misses; see
        :meth:`candidates_many` for many texts at once, with explanations.

        >>> index = CatalogIndex.build([("b1", "Sony DSC-W120"), ("b2", "Sony DSC-W130")])
        >>> [cid for cid, _ in index.candidates("Sony DSC W120", k=2)]
        ['b1', 'b2']
        """
        [found] = self.candidates_many([("", text)], k=k, rivals=False)
        return [(c.catalog_id, c.score) for c in found]

    def candidates_many(
        self,
        items: Sequence[tuple[str, str]],
        *,
        k: int = DEFAULT_CANDIDATES,
        peers: PeerSet | None = None,
        rivals: bool = True,
    ) -> list[list[MatchResult]]:
        """The ``k`` best catalog records of each ``(item_id, text)``, best first, scored
        as :meth:`match` scores them (with the job's ``peers``, when given; without, the
        items are their own peers as in :meth:`match`): ``match`` accepts the first of an
        item's list when its score reaches the threshold. ``rivals=False`` scores each
        text on its own, with no peers and the default prior (what :meth:`candidates`
        does), so that an item's candidates do not depend on the texts beside it.

        >>> index = CatalogIndex.build([("b1", "Sony DSC-W120"), ("b2", "Sony DSC-W130")])
        >>> [[c.catalog_id for c in cs] for cs in index.candidates_many([("a1", "Sony DSC W130")], k=2)]
        [['b2', 'b1']]
        """
        if k < 1:
            raise InvalidArgumentError(f"k must be at least 1, got {k!r}")
        if self._scorer is None or not items:
            return [[] for _ in items]
        with _batch_allocations():
            return self._candidates_many(items, k, peers, rivals)

    def _candidates_many(
        self, items: Sequence[tuple[str, str]], k: int, peers: PeerSet | None, rivals: bool
    ) -> list[list[MatchResult]]:
        assert self._scorer is not None
        if rivals:
            texts, keys, peers, peer_rows = self._prepare(items, peers)
        else:
            texts = [_as_text(text) for _, text in items]
            keys = [normalise_text(text) for text in texts]
            peers, peer_rows = None, None
        out: list[list[MatchResult]] = []
        keep = max(k, DEFAULT_CANDIDATES)
        for start in range(0, len(items), _BATCH_ROWS):
            stop = start + _BATCH_ROWS
            ranked_batch = self._rank(
                texts[start:stop],
                keys[start:stop],
                keep,
                peers,
                None if peer_rows is None else peer_rows[start:stop],
            )
            for offset, ranked in enumerate(ranked_batch):
                position = start + offset
                item_id = str(items[position][0])
                exact = self._exact_rows.get(keys[position]) if keys[position] else None
                found = []
                if exact is not None:
                    found.append(
                        MatchResult(
                            item_id,
                            self._ids[exact],
                            1.0,
                            METHOD_EXACT,
                            "normalised text identical",
                            EXACT_EXPLANATION,
                        )
                    )
                found.extend(
                    MatchResult(item_id, self._ids[row], score, method, reason, explanation)
                    for row, score, method, reason, explanation in ranked
                    if row != exact
                )
                out.append(found[:k])
        return out

    def _prepare(
        self, items: Sequence[tuple[str, str]], peers: PeerSet | None
    ) -> tuple[list[str], list[str], PeerSet, list[int]]:
        """The items' texts and keys, their peers (the items themselves unless given), and
        each item's row in the peers (-1: not among them)."""
        assert self._scorer is not None
        texts = [_as_text(text) for _, text in items]
        keys = [normalise_text(text) for text in texts]
        if peers is None:
            peers = PeerSet.build([str(i) for i, _ in items], keys, self._scorer.char)
            return texts, keys, self._with_prior(peers, texts, keys), list(range(len(items)))
        return texts, keys, peers, [peers.rows.get(str(item_id), -1) for item_id, _ in items]

    def score_texts(
        self,
        texts: list[str],
        keys: list[str],
        shortlist: int,
        peers: PeerSet | None,
        peer_rows: Sequence[int] | None,
    ) -> tuple[list[frozenset[str]], list[int | None], ScoredPairs]:
        """Every signal and score of the ``shortlist`` best candidates of each text (``keys``:
        the texts normalised), with the texts' own model codes and the row holding the only
        catalog copy of one of them (always among its candidates). For fitting and
        diagnostics; :meth:`match` and :meth:`candidates_many` are the matcher."""
        assert self._scorer is not None
        codes = [own_codes(t) for t in texts]
        code_rows = [self._unique_code_row(c) for c in codes]
        pairs = self._scorer.score(
            keys, codes, code_rows, shortlist=shortlist, peers=peers, peer_rows=peer_rows
        )
        return codes, code_rows, pairs

    def _unique_code_row(self, codes: frozenset[str]) -> int | None:
        rows = {self._code_rows[c] for c in codes if c in self._code_rows}
        return rows.pop() if len(rows) == 1 else None

    def _rank(
        self,
        texts: list[str],
        keys: list[str],
        keep: int,
        peers: PeerSet | None = None,
        peer_rows: list[int] | None = None,
        *,
        described_from: float = 0.0,
        runners_up: list[tuple[np.ndarray, np.ndarray, list[int]]] | None = None,
    ) -> list[list[tuple[int, float, str, str, tuple[Evidence, ...]]]]:
        """The ``keep`` best ``(row, score, method, reason, explanation)`` per text, best first.

        Pairs scoring under ``described_from`` get no reason or explanation (``match``
        drops them anyway). ``runners_up``, when given, gets ``(rows, scores, bounds)``:
        text ``i``'s other scored candidates, in rank order, are at
        ``bounds[i]:bounds[i + 1]`` of ``rows`` and ``scores`` (for review, at no cost
        to the texts that do not need them).

        A record holding the only catalog copy of one of the text's model codes
        is always scored, and reported with method ``code`` when it wins.
        """
        codes, code_rows, pairs = self.score_texts(
            texts, keys, max(keep, RERANK_CANDIDATES), peers, peer_rows
        )
        out: list[list[tuple[int, float, str, str, tuple[Evidence, ...]]]] = []
        grouped = pairs.by_item(len(texts))
        kept = [positions[:keep] for positions in grouped]
        flat = np.array([p for positions in kept for p in positions], dtype=np.int64)
        if runners_up is not None:
            rest = [positions[keep:] for positions in grouped]
            bounds = np.cumsum([0] + [len(r) for r in rest]).tolist()
            rest_flat = np.array([p for r in rest for p in r], dtype=np.int64)
            runners_up.append((pairs.rows[rest_flat], pairs.scores[rest_flat], bounds))
        described = pairs.scores[flat] >= described_from
        explanations = iter(explain_rows(pairs.features[flat[described]], pairs.prior_shift))
        t = pairs.signals
        columns = zip(
            pairs.rows[flat].tolist(),
            pairs.scores[flat].tolist(),
            pairs.text_similarity[flat].tolist(),
            t.code_agreement[flat].tolist(),
            t.number_agreement[flat].tolist(),
            (t.char_margin[flat] + t.word_margin[flat]).tolist(),
            t.rival_margin[flat].tolist(),
            strict=True,
        )
        for i, positions in enumerate(kept):
            code_row = code_rows[i]
            ranked = []
            for _ in positions:
                row, score, similarity, *signals = next(columns)
                if score < described_from:
                    ranked.append((row, round(score, 9), METHOD_FUZZY, "", ()))
                    continue
                code = None
                if row == code_row and similarity >= CODE_CONFIRM_MIN_SIMILARITY:
                    code = min(c for c in codes[i] if self._code_rows.get(c) == code_row)
                method = METHOD_FUZZY if code is None else METHOD_CODE
                reason = describe(similarity, *signals, matched_code=code)
                # nine decimals: the last bits depend on the order the rivals were summed in
                explanation = next(explanations)
                ranked.append((row, round(score, 9), method, reason, explanation))
            out.append(ranked)
        return out


@contextlib.contextmanager
def _batch_allocations() -> Iterator[None]:
    """Hold the cycle collector while a call allocates its many small objects.

    Scoring a chunk makes hundreds of thousands of small objects that reference
    counting frees at once; with a large index alive, the collector's passes over them
    cost more than an eighth of the time. Building an index or peers keeps millions
    (every record's codes, numbers and marks), and each pass the collector makes over
    those that survive costs more the more there are: about a third of the build.
    Nothing here makes cycles, so pausing it only delays the collection of other
    code's garbage until the call returns.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _unmatched(pair: ReviewPair, chance: float) -> ReviewPair:
    """``pair``, a match withdrawn beside its rivals, reviewed as an unmatched item whose
    best candidate is right with ``chance``."""
    scores = [chance, *(score for _, score in pair.candidates[1:])]
    missed = error_chance(chance, matched=False, candidate_scores=scores)
    return dataclasses.replace(pair, matched=False, error_chance=missed, withdrawn_chance=chance)


def _as_text(value: object) -> str:
    """Texts should be ``str``; ``None`` counts as empty and other scalars are ``str()``-ed."""
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)
