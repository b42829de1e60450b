"""Deciding a web-search item without a model: which catalog record, if any, do the
results support?

A search engine's results mix the item's product with junk and other products, and
the catalog query each result leads to finds *some* record with a good score. So a
result counts only as much as its rank and its agreement with the item's own text
(its model codes, else character 3-gram similarity) say, and a record is taken only
when the agreeing results support it; otherwise the item stays undecided.
"""

from __future__ import annotations

from matching.codes import extract_codes, own_codes
from matching.llm_prompt import Candidate
from matching.normalise import normalise_text
from matching.similarity import code_agreement
from matching.websearch import WebCandidates, product_name

MIN_RESULT_AGREEMENT = 0.3
"""A result whose agreement with the item is lower says nothing about the item (0..1)."""

OWN_TEXT_WEIGHT = 0.5
"""Weight of the item's own text as evidence, beside a top-ranked agreeing result's 1.0."""

MIN_SUPPORT_SHARE = 0.6
"""Share of the agreeing evidence that must point to the chosen record."""

_NGRAM = 3


def _ngrams(text: str) -> frozenset[str]:
    key = f" {normalise_text(text)} "
    return frozenset(key[i : i + _NGRAM] for i in range(max(len(key) - _NGRAM + 1, 0)))


def text_agreement(a: str, b: str) -> float:
    """How much two texts say the same, 0..1: an own model code of ``a`` found in ``b``
    is 1.0, a conflicting one (same family, another model) is 0.0, else the Dice
    similarity of their character 3-grams (symmetric then).

    >>> text_agreement("ASIN B0013N3P6E", "Sony DSC-W120 Camera, ASIN B0013N3P6E")
    1.0
    >>> text_agreement("sony dsc-w120 camera", "Sony DSC-W130 camera")
    0.0
    >>> round(text_agreement("canon pixma printer", "Sony Bravia television"), 2)
    0.05
    """
    codes_a = own_codes(a)
    agreement = code_agreement(codes_a, extract_codes(b))
    if agreement:
        return 1.0 if agreement > 0 else 0.0
    grams_a, grams_b = _ngrams(a), _ngrams(b)
    if not grams_a or not grams_b:
        return 0.0
    return 2 * len(grams_a & grams_b) / (len(grams_a) + len(grams_b))


def rank_weight(rank: int) -> float:
    """Weight of the result at 0-based ``rank``: ``1 / (rank + 1)``."""
    return 1.0 / (rank + 1)


def choose_without_model(
    item_text: str, found: WebCandidates, *, threshold: float
) -> Candidate | None:
    """The record the web results support for the item, or ``None`` (undecided).

    Each result counts with the weight of its rank times its agreement with the
    item's text (:func:`text_agreement` of the item and the result's title and
    snippet); results below :data:`MIN_RESULT_AGREEMENT` (junk, other products)
    do not count. The item's own text counts with :data:`OWN_TEXT_WEIGHT`. Evidence
    points to a record with the index score the record got from it. A record is
    chosen when it has the most support, that support is at least
    :data:`MIN_SUPPORT_SHARE` of all the evidence that counts (each source's weight
    times its best score), some agreeing result (not only the item's own text, which
    the earlier stages already judged) found it with a score of at least
    ``threshold``, and, when the record names model codes and so do the item or the
    results that found it, one of them is the same.
    """
    support: dict[str, float] = {}
    # the evidence that counts is what points somewhere: a source's weight times its
    # best score (a result that agrees but finds nothing in the catalog counts little)
    mass = OWN_TEXT_WEIGHT * max(found.own.values(), default=0.0)
    for catalog_id, score in found.own.items():
        support[catalog_id] = OWN_TEXT_WEIGHT * score
    confirmed: dict[str, set[str]] = {}  # record -> codes of the results that found it
    for rank, (result, scores) in enumerate(zip(found.results, found.by_result, strict=True)):
        name = product_name(result)
        agreement = text_agreement(item_text, f"{name} {result.content}")
        if agreement < MIN_RESULT_AGREEMENT:
            continue
        weight = rank_weight(rank) * agreement
        mass += weight * max(scores.values(), default=0.0)
        for catalog_id, score in scores.items():
            support[catalog_id] = support.get(catalog_id, 0.0) + weight * score
            if score >= threshold:
                confirmed.setdefault(catalog_id, set()).update(extract_codes(name))
    if not confirmed:
        return None
    catalog_id, best = min(support.items(), key=lambda pair: (-pair[1], pair[0]))
    if catalog_id not in confirmed or best < MIN_SUPPORT_SHARE * mass:
        return None
    chosen = next((c for c in found.candidates if c.catalog_id == catalog_id), None)
    if chosen is None:
        return None
    # Stricter than the matcher's code agreement, which lets colour and region suffixes
    # pass (VM400S ~ VM400B) and ignores codes of unrelated shape (FS105 vs GS105): here
    # no one reads the pair, so the record's code must be one the evidence names.
    evidence_codes = own_codes(item_text) | confirmed[catalog_id]
    record_codes = extract_codes(chosen.text)
    if evidence_codes and record_codes and evidence_codes.isdisjoint(record_codes):
        return None
    return chosen
