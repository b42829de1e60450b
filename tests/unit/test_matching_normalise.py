from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching import compose_text, normalise_text
from matching.normalise import fold_text, strip_accents, tokens


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sony Cyber-shot® DSC-W120 (Black)", "sony cyber shot dsc w120 black"),
        ("  LINKSYS   EtherFast\t10/100  ", "linksys etherfast 10 100"),
        ("Crème Brûlée", "creme brulee"),
        ("Ｓｏｎｙ ＫＤＬ－４０", "sony kdl 40"),  # full-width forms fold under NFKC
        ("STRASSE vs straße", "strasse vs strasse"),
        ("snake_case-name", "snake case name"),
        ("", ""),
        ("!!!", ""),
        # character references of texts scraped from web pages are decoded, not read as words
        ("Fr&#233;d&#233;ric Cuppens &amp; Co", "frederic cuppens co"),
        ("The VLDB Journal &mdash; Intl &#x2014; 1996", "the vldb journal intl 1996"),
        ("AT&T R&D &bogus; &not", "at t r d bogus not"),
    ],
)
def test_normalise_text_examples(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


def test_fold_keeps_code_punctuation() -> None:
    assert fold_text("DSC-W120/B") == "dsc-w120/b"
    assert strip_accents("Señor Café") == "Senor Cafe"


def test_a_record_with_character_references_is_the_same_text() -> None:
    from matching import CatalogIndex

    index = CatalogIndex.build(
        [("b1", "Caf&eacute; de la R&eacute;publique"), ("b2", "Cafe Rouge")]
    )
    [result] = index.match([("a1", "Café de la République")])
    assert (result.catalog_id, result.method) == ("b1", "exact")


def test_tokens_split_normalised_words() -> None:
    assert tokens("Bose® Acoustimass 5 — Series III") == [
        "bose",
        "acoustimass",
        "5",
        "series",
        "iii",
    ]


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise_text(text)
    assert normalise_text(once) == once


@given(st.text())
def test_normalised_text_has_no_edge_or_double_spaces(text: str) -> None:
    key = normalise_text(text)
    assert key == key.strip()
    assert "  " not in key
    assert key == key.casefold() or not key.isascii()


def test_compose_text_skips_missing_and_stringifies() -> None:
    record = {"title": "Paper", "year": 1999, "venue": None, "blank": "  ", "nan": float("nan")}
    assert (
        compose_text(record, ["title", "missing", "venue", "blank", "nan", "year"]) == "Paper 1999"
    )
    assert compose_text(record, []) == ""


def test_compose_text_keeps_field_order() -> None:
    record = {"name": "EZXS88W Switch", "manufacturer": "LINKSYS"}
    assert compose_text(record, ["manufacturer", "name"]) == "LINKSYS EZXS88W Switch"
