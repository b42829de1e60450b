"""The LLM stage's question and answer: batch prompts, the strict JSON schema, validation.

One request asks about several items at once. Items are labelled ``i1``, ``i2``, …
and each item's candidates ``c1``, ``c2``, …, so the model never echoes long
catalog ids; :class:`BatchMapping` turns the labels back into ids. The model must
answer with JSON matching :data:`DECISIONS_SCHEMA` (OpenAI structured outputs, strict
mode), and :func:`parse_batch_response` accepts nothing else: an answer that is not
JSON, breaks the schema, names a candidate that was not offered for that item, or
answers an item twice fails *that item* (or every item, when the whole answer is
unusable). A failure is never turned into a match.

>>> request = build_batch_request(
...     [("a1", "Sony DSC W120", [Candidate("b7", "Sony Cyber-shot DSC-W120", 0.8)])],
...     model="m")
>>> content = '{"decisions": [{"item": "i1", "match": "c1", "confidence": 0.9, "reason": "same"}]}'
>>> decisions, errors = parse_batch_response(content, request.mapping)
>>> decisions[0].catalog_id, errors
('b7', {})
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from matching.exceptions import InvalidArgumentError
from matching.normalise import normalise_text

PROMPT_VERSION = "llm-match-v1"
"""Changes whenever the prompt or schema changes, so cached answers to old questions expire."""

MAX_TEXT_CHARS = 300
"""Item and candidate texts are cut to this many characters in the prompt (bounds tokens)."""

MAX_REASON_CHARS = 200
"""Longer reasons from the model are cut to this many characters."""

MAX_CANDIDATES = 20
"""Most candidates one item may offer the model."""

SCHEMA_NAME = "catalog_match_decisions"

SYSTEM_PROMPT = (
    "You match product listings. For each item you get a short list of catalog "
    "candidates. Decide which candidate, if any, is the same real-world product "
    "(same brand, model, and variant such as capacity, size or colour when stated). "
    "Accessories, bundles, and different variants are not the same product. "
    "Answer every item exactly once, with `match` set to a candidate key of that item "
    "or null when none is the same product, a confidence between 0 and 1, and a "
    "one-line reason."
)

# Errors reported for an item. They are fixed phrases: never the prompt, the model's
# text or anything from the server, so they are safe to log and to show to users.
ERROR_NOT_JSON = "invalid answer: not JSON"
ERROR_SCHEMA = "invalid answer: does not match the schema"
ERROR_NOT_ANSWERED = "invalid answer: item not answered"
ERROR_ANSWERED_TWICE = "invalid answer: item answered more than once"
ERROR_UNKNOWN_CANDIDATE = "invalid answer: match is not one of the item's candidates"
ERROR_BAD_CONFIDENCE = "invalid answer: confidence is not a number between 0 and 1"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A catalog record offered to the model for one item; ``score`` is the index's 0..1 score."""

    catalog_id: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class LLMDecision:
    """The model's verdict for one item.

    ``catalog_id`` is ``None`` when the model found no candidate to be the same
    entity (a decision, not a failure). ``confidence`` is on a 0..1 scale.
    """

    item_id: str
    catalog_id: str | None
    confidence: float
    reason: str


@dataclass(frozen=True, slots=True)
class BatchMapping:
    """From the prompt's labels back to ids: ``items["i1"]`` is an item id and
    ``candidates["i1"]["c3"]`` the catalog id offered to item ``i1`` as ``c3``."""

    items: Mapping[str, str]
    candidates: Mapping[str, Mapping[str, str]]


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """Keyword arguments for ``client.chat.completions.create(**params)`` and the label mapping."""

    params: dict[str, Any]
    mapping: BatchMapping


def decisions_schema(item_keys: Sequence[str], candidate_keys: Sequence[str]) -> dict[str, Any]:
    """The strict JSON schema of an answer about ``item_keys`` choosing among ``candidate_keys``.

    Strict mode needs every property required and ``additionalProperties: false``;
    enums keep the model to the labels in the prompt (whether a key belongs to
    *that* item is checked by :func:`parse_batch_response`).
    """
    decision = {
        "type": "object",
        "properties": {
            "item": {"type": "string", "enum": list(item_keys)},
            "match": {"type": ["string", "null"], "enum": [*candidate_keys, None]},
            "confidence": {"type": "number"},
            "reason": {"type": "string"},
        },
        "required": ["item", "match", "confidence", "reason"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"decisions": {"type": "array", "items": decision}},
        "required": ["decisions"],
        "additionalProperties": False,
    }


def build_batch_request(
    items: Sequence[tuple[str, str, Sequence[Candidate]]], *, model: str
) -> BatchRequest:
    """Build one chat-completions request asking about every ``(item_id, text, candidates)``.

    The user message is JSON (``{"items": [{"item": "i1", "text": …, "candidates":
    [{"key": "c1", "text": …}]}]}``) so texts with newlines or quotes cannot blur the
    structure. Raises :class:`InvalidArgumentError` for an empty batch, an item
    without candidates or with more than :data:`MAX_CANDIDATES`.
    """
    if not items:
        raise InvalidArgumentError("a batch needs at least one item")
    item_labels: dict[str, str] = {}
    candidate_labels: dict[str, dict[str, str]] = {}
    payload: list[dict[str, Any]] = []
    widest = 0
    for position, (item_id, text, candidates) in enumerate(items, start=1):
        if not candidates:
            raise InvalidArgumentError("every item needs at least one candidate")
        if len(candidates) > MAX_CANDIDATES:
            raise InvalidArgumentError(f"at most {MAX_CANDIDATES} candidates per item")
        item_key = f"i{position}"
        item_labels[item_key] = str(item_id)
        labels = {f"c{n}": c.catalog_id for n, c in enumerate(candidates, start=1)}
        candidate_labels[item_key] = labels
        widest = max(widest, len(labels))
        payload.append(
            {
                "item": item_key,
                "text": _clip(text),
                "candidates": [
                    {"key": f"c{n}", "text": _clip(c.text)}
                    for n, c in enumerate(candidates, start=1)
                ],
            }
        )
    schema = decisions_schema(list(item_labels), [f"c{n}" for n in range(1, widest + 1)])
    params: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": json.dumps({"items": payload}, ensure_ascii=False)},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": schema},
        },
        "temperature": 0,
    }
    return BatchRequest(params, BatchMapping(item_labels, candidate_labels))


def parse_batch_response(
    content: object, mapping: BatchMapping
) -> tuple[list[LLMDecision], dict[str, str]]:
    """Validate the model's answer: ``(decisions, {item_id: error})``, never raising.

    Every item of ``mapping`` ends in exactly one of the two. Entries naming an
    unknown item label are ignored (they cannot be attributed); an item answered
    twice fails even if one answer is good, since the model contradicted itself.
    """
    every_item = list(mapping.items.values())
    if not isinstance(content, str | bytes | bytearray):
        return [], dict.fromkeys(every_item, ERROR_NOT_JSON)
    try:
        data = json.loads(content)
    except (ValueError, RecursionError):
        return [], dict.fromkeys(every_item, ERROR_NOT_JSON)
    if (
        not isinstance(data, dict)
        or set(data) != {"decisions"}
        or not isinstance(data["decisions"], list)
    ):
        return [], dict.fromkeys(every_item, ERROR_SCHEMA)

    answers: dict[str, list[Any]] = {key: [] for key in mapping.items}
    for entry in data["decisions"]:
        item_key = entry.get("item") if isinstance(entry, dict) else None
        if isinstance(item_key, str) and item_key in answers:
            answers[item_key].append(entry)

    decisions: list[LLMDecision] = []
    errors: dict[str, str] = {}
    for item_key, item_id in mapping.items.items():
        entries = answers[item_key]
        if not entries:
            errors[item_id] = ERROR_NOT_ANSWERED
        elif len(entries) > 1:
            errors[item_id] = ERROR_ANSWERED_TWICE
        else:
            outcome = _check_entry(entries[0], item_id, mapping.candidates.get(item_key, {}))
            if isinstance(outcome, LLMDecision):
                decisions.append(outcome)
            else:
                errors[item_id] = outcome
    return decisions, errors


def question_key(model: str, item_text: str, candidates: Sequence[Candidate]) -> str:
    """A stable hex digest naming the question "which of these is ``item_text``?" for ``model``.

    Texts are normalised and candidates taken in catalog-id order (the index's scores
    are not part of the question), so the same question asked again, or with the
    candidates shuffled, has the same key; :data:`PROMPT_VERSION` is included so a
    changed prompt does not reuse old answers.

    >>> a, b = Candidate("b1", "Sony DSC-W120", 0.9), Candidate("b2", "Sony DSC-W130", 0.7)
    >>> question_key("m", "sony dsc w120", [a, b]) == question_key("m", "Sony DSC-W120 ", [b, a])
    True
    """
    body = [
        PROMPT_VERSION,
        model,
        normalise_text(_clip(item_text)),
        sorted((c.catalog_id, normalise_text(_clip(c.text))) for c in candidates),
    ]
    encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def _check_entry(entry: Any, item_id: str, candidates: Mapping[str, str]) -> LLMDecision | str:
    if set(entry) != {"item", "match", "confidence", "reason"}:
        return ERROR_SCHEMA
    match, confidence, reason = entry["match"], entry["confidence"], entry["reason"]
    if not isinstance(reason, str) or not (match is None or isinstance(match, str)):
        return ERROR_SCHEMA
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        return ERROR_BAD_CONFIDENCE
    try:
        confidence = float(confidence)
    except OverflowError:  # an integer too large for a float
        return ERROR_BAD_CONFIDENCE
    if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
        return ERROR_BAD_CONFIDENCE
    if match is not None and match not in candidates:
        return ERROR_UNKNOWN_CANDIDATE
    catalog_id = candidates[match] if match is not None else None
    reason = " ".join(reason.split())[:MAX_REASON_CHARS]
    return LLMDecision(item_id, catalog_id, confidence, reason)


def _clip(text: object) -> str:
    text = "" if text is None else str(text)
    return " ".join(text.split())[:MAX_TEXT_CHARS]
