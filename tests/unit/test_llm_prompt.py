"""Batch prompts and answer validation for the LLM stage (no network)."""

from __future__ import annotations

import doctest
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matching.backoff
import matching.llm
import matching.llm_prompt
import matching.websearch
from matching.backoff import backoff_delay, parse_retry_after
from matching.exceptions import InvalidArgumentError
from matching.llm import LLMUsage
from matching.llm_prompt import (
    ERROR_ANSWERED_TWICE,
    ERROR_BAD_CONFIDENCE,
    ERROR_NOT_ANSWERED,
    ERROR_NOT_JSON,
    ERROR_SCHEMA,
    ERROR_UNKNOWN_CANDIDATE,
    MAX_TEXT_CHARS,
    BatchMapping,
    Candidate,
    build_batch_request,
    parse_batch_response,
    question_key,
)


def make_items(n: int, candidates: int = 3) -> list[tuple[str, str, list[Candidate]]]:
    return [
        (
            f"item-{i}",
            f"Acme Widget {i}",
            [Candidate(f"cat-{i}-{j}", f"Acme Widget {i} v{j}", 0.5) for j in range(candidates)],
        )
        for i in range(n)
    ]


def answer(*decisions: dict[str, Any]) -> str:
    return json.dumps({"decisions": list(decisions)})


def decision(item: str, match: str | None, confidence: float = 0.8) -> dict[str, Any]:
    return {"item": item, "match": match, "confidence": confidence, "reason": "r"}


@pytest.mark.parametrize(
    "module", [matching.llm, matching.llm_prompt, matching.backoff, matching.websearch]
)
def test_docstring_examples(module: Any) -> None:
    failed, attempted = doctest.testmod(module)
    assert attempted > 0 and failed == 0


def test_request_labels_items_and_candidates_and_uses_a_strict_schema() -> None:
    request = build_batch_request(make_items(2), model="gpt-test")
    params = request.params
    assert params["model"] == "gpt-test"
    response_format = params["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    prompt = json.loads(params["messages"][-1]["content"])
    assert [i["item"] for i in prompt["items"]] == ["i1", "i2"]
    assert [c["key"] for c in prompt["items"][0]["candidates"]] == ["c1", "c2", "c3"]
    assert "cat-0-0" not in params["messages"][-1]["content"]  # ids stay out of the prompt
    assert request.mapping.items == {"i1": "item-0", "i2": "item-1"}
    assert request.mapping.candidates["i2"]["c3"] == "cat-1-2"


def _objects(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict):
        found = [schema] if schema.get("type") == "object" else []
        return found + [o for value in schema.values() for o in _objects(value)]
    if isinstance(schema, list):
        return [o for value in schema for o in _objects(value)]
    return []


def test_schema_meets_strict_mode_rules() -> None:
    schema = build_batch_request(make_items(3), model="m").params["response_format"]["json_schema"][
        "schema"
    ]
    objects = _objects(schema)
    assert len(objects) == 2
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])
    match = objects[1]["properties"]["match"]
    assert match["type"] == ["string", "null"] and None in match["enum"]


def test_long_texts_are_clipped() -> None:
    items = [("a", "x" * 5000, [Candidate("b", "y" * 5000, 0.1)])]
    prompt = json.loads(build_batch_request(items, model="m").params["messages"][-1]["content"])
    assert len(prompt["items"][0]["text"]) == MAX_TEXT_CHARS
    assert len(prompt["items"][0]["candidates"][0]["text"]) == MAX_TEXT_CHARS


@pytest.mark.parametrize(
    "items", [[], [("a", "text", [])], [("a", "t", [Candidate(str(n), "x", 0) for n in range(21)])]]
)
def test_request_rejects_unaskable_batches(items: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        build_batch_request(items, model="m")


def test_parse_maps_keys_back_and_accepts_no_match() -> None:
    mapping = build_batch_request(make_items(2), model="m").mapping
    decisions, errors = parse_batch_response(
        answer(decision("i1", "c2", 0.75), decision("i2", None, 0.4)), mapping
    )
    assert errors == {}
    assert [(d.item_id, d.catalog_id, d.confidence) for d in decisions] == [
        ("item-0", "cat-0-1", 0.75),
        ("item-1", None, 0.4),
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json at all", ERROR_NOT_JSON),
        ('{"decisions": [', ERROR_NOT_JSON),
        ('{"answers": []}', ERROR_SCHEMA),
        ('{"decisions": {}}', ERROR_SCHEMA),
        ("[]", ERROR_SCHEMA),
        (answer(), ERROR_NOT_ANSWERED),
    ],
)
def test_an_unusable_answer_fails_every_item(content: str, expected: str) -> None:
    mapping = build_batch_request(make_items(2), model="m").mapping
    decisions, errors = parse_batch_response(content, mapping)
    assert decisions == []
    assert errors == {"item-0": expected, "item-1": expected}


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        (decision("i1", "c9"), ERROR_UNKNOWN_CANDIDATE),
        (decision("i1", "cat-0-0"), ERROR_UNKNOWN_CANDIDATE),  # a real id, but not a key
        (decision("i1", "c1", 1.5), ERROR_BAD_CONFIDENCE),
        (decision("i1", "c1", -0.1), ERROR_BAD_CONFIDENCE),
        ({**decision("i1", "c1"), "confidence": True}, ERROR_BAD_CONFIDENCE),
        ({**decision("i1", "c1"), "extra": 1}, ERROR_SCHEMA),
        ({"item": "i1", "match": "c1"}, ERROR_SCHEMA),
        ({**decision("i1", "c1"), "match": 3}, ERROR_SCHEMA),
    ],
)
def test_a_bad_entry_fails_only_its_item(first: dict[str, Any], expected: str) -> None:
    mapping = build_batch_request(make_items(2), model="m").mapping
    decisions, errors = parse_batch_response(answer(first, decision("i2", "c3")), mapping)
    assert errors == {"item-0": expected}
    assert [(d.item_id, d.catalog_id) for d in decisions] == [("item-1", "cat-1-2")]


def test_a_key_offered_to_another_item_is_not_accepted() -> None:
    items = make_items(2)
    items[0] = ("item-0", "Acme", [Candidate("only", "Acme", 0.9)])
    mapping = build_batch_request(items, model="m").mapping
    _, errors = parse_batch_response(answer(decision("i1", "c3"), decision("i2", "c3")), mapping)
    assert errors == {"item-0": ERROR_UNKNOWN_CANDIDATE}


def test_an_item_answered_twice_fails_and_unknown_items_are_ignored() -> None:
    mapping = build_batch_request(make_items(2), model="m").mapping
    content = answer(
        decision("i1", "c1"), decision("i1", "c1"), decision("i2", "c1"), decision("i7", "c1")
    )
    decisions, errors = parse_batch_response(content, mapping)
    assert errors == {"item-0": ERROR_ANSWERED_TWICE}
    assert [d.item_id for d in decisions] == ["item-1"]


def test_question_key_is_stable_and_specific() -> None:
    a, b = Candidate("b1", "Sony DSC-W120", 0.9), Candidate("b2", "Sony DSC-W130", 0.1)
    key = question_key("m", "Sony DSC W120", [a, b])
    assert key == question_key("m", "  sony dsc-w120 ", [b, Candidate("b1", "SONY DSC W120", 0.2)])
    assert key != question_key("other-model", "Sony DSC W120", [a, b])
    assert key != question_key("m", "Sony DSC W130", [a, b])
    assert key != question_key("m", "Sony DSC W120", [a])
    assert len(key) == 64


def test_usage_adds_up() -> None:
    total = sum([LLMUsage(1, 10, 2), LLMUsage(2, 5, 1, cache_hits=1)], LLMUsage())
    assert total == LLMUsage(3, 15, 3, 1)
    assert total.total_tokens == 18


def test_retry_after_parsing_and_backoff_bounds() -> None:
    assert parse_retry_after({"retry-after": "120"}) == 120.0
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({}) is None
    for attempt in range(1, 20):
        assert (
            0.0 <= backoff_delay(attempt, base=0.5, cap=4.0) <= min(4.0, 0.5 * 2 ** (attempt - 1))
        )


# --- properties ---------------------------------------------------------------------------

json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_shallow = (
    json_leaves
    | st.lists(json_leaves, max_size=4)
    | st.dictionaries(st.text(max_size=8), json_leaves, max_size=4)
)
json_values = (
    json_shallow
    | st.lists(json_shallow, max_size=3)
    | st.dictionaries(st.text(max_size=8), json_shallow, max_size=3)
)
keys = st.sampled_from(["i1", "i2", "i3", "c1", "c2", "c3", "c4", "x", ""])
entries = st.fixed_dictionaries(
    {
        "item": keys | json_values,
        "match": st.none() | keys | json_values,
        "confidence": st.floats(allow_nan=True) | st.integers() | json_values,
        "reason": st.text(max_size=20) | json_values,
    }
)
answers = (
    st.text()
    | json_values.map(json.dumps)
    | st.lists(entries, max_size=6).map(lambda ds: json.dumps({"decisions": ds}))
)
batches = st.lists(
    st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True),
    min_size=1,
    max_size=3,
)


def _mapping_for(candidate_ids: list[list[str]]) -> BatchMapping:
    items = [
        (f"item{n}", "text", [Candidate(cid, "t", 0.0) for cid in ids])
        for n, ids in enumerate(candidate_ids)
    ]
    return build_batch_request(items, model="m").mapping


@settings(max_examples=200, deadline=None)
@given(batches, answers)
def test_parse_never_raises_and_never_invents_a_match(
    candidate_ids: list[list[str]], content: str
) -> None:
    mapping = _mapping_for(candidate_ids)
    decisions, errors = parse_batch_response(content, mapping)
    offered = {f"item{n}": set(ids) for n, ids in enumerate(candidate_ids)}
    decided = [d.item_id for d in decisions]
    assert sorted(decided + list(errors)) == sorted(offered)  # every item exactly once
    for d in decisions:
        assert d.catalog_id is None or d.catalog_id in offered[d.item_id]
        assert 0.0 <= d.confidence <= 1.0


@given(st.binary())
def test_parse_never_raises_on_bytes(content: bytes) -> None:
    decisions, errors = parse_batch_response(content, _mapping_for([["a"]]))
    assert len(decisions) + len(errors) == 1


@given(batches, st.data())
def test_valid_answers_round_trip(candidate_ids: list[list[str]], data: st.DataObject) -> None:
    mapping = _mapping_for(candidate_ids)
    chosen = {}
    answers_ = []
    for n, ids in enumerate(candidate_ids):
        pick = data.draw(st.none() | st.integers(0, len(ids) - 1))
        chosen[f"item{n}"] = None if pick is None else ids[pick]
        answers_.append(decision(f"i{n + 1}", None if pick is None else f"c{pick + 1}"))
    decisions, errors = parse_batch_response(answer(*answers_), mapping)
    assert errors == {}
    assert {d.item_id: d.catalog_id for d in decisions} == chosen
