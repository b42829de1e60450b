from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from matching import extract_codes, extract_numbers, is_model_code
from matching.codes import numbers_in_key


@pytest.mark.parametrize(
    ("title", "codes"),
    [
        ("Sony Turntable - PSLX350H", {"pslx350h"}),
        ("Sony PS-LX350H Belt-Drive Turntable", {"pslx350h"}),
        ("Sony Cyber-shot DSC-W120 8.1MP Digital Camera", {"dscw120"}),
        ("Canon 2727B001 PowerShot", {"2727b001"}),
        ("Seagate 500GB 7200RPM SATA drive", set()),
        ("Samsung 46in 1080p LCD HDTV 16GB", set()),
        ("Samsung 1920x1080 monitor 2.4GHz", set()),
        ("Bose Acoustimass 5 Series III - AM53BK/ Black", {"am53bk"}),
        ("Panasonic KX-TG6700B, KX-TGA600B handset", {"kxtg6700b", "kxtga600b"}),
        ("Panasonic 2-Line Integrated Telephone System - KXTS208W", {"kxts208w"}),
        ("Linksys 8-Port 10/100 Switch", set()),
        ("Griffin iTrip FM Transmitter - 4052-TRPSEB", {"4052trpseb"}),
        ("Rubbermaid 100-Pack Lids", set()),
        ("Released 2006-05-12, reissued 12/05/2008 and 5.12.09", set()),
        ("1 Main St, Beverly Hills CA 90210-1234", set()),
        ("Garmin Vehicle Suction Mount - 010-10609-00", {"0101060900"}),
        ("SONY 7-11719-70670-0 PS2 Memory Card, 2007 edition", {"711719706700"}),
        ("", set()),
    ],
)
def test_extract_codes_examples(title: str, codes: set[str]) -> None:
    assert extract_codes(title) == codes


@pytest.mark.parametrize(
    "token", ["500gb", "1080p", "16gb", "24ghz", "1920x1080", "abc", "w12", "12345"]
)
def test_units_dimensions_and_plain_tokens_are_not_codes(token: str) -> None:
    assert not is_model_code(token)


@pytest.mark.parametrize("token", ["dscw120", "kdl46xbr9", "ezxs88w", "x360", "2727b001"])
def test_mixed_letter_digit_tokens_are_codes(token: str) -> None:
    assert is_model_code(token)


def test_extract_numbers_keeps_quantities_not_codes() -> None:
    assert extract_numbers("Seagate 500GB 7200 RPM drive") == {"500gb", "7200rpm"}
    assert extract_numbers("Sony KDL-46XBR9 46in LCD") == {"46in"}
    assert extract_numbers("no digits here") == frozenset()
    assert numbers_in_key("sony kdl 46xbr9 46 lcd") == {"46"}


@given(st.text())
def test_codes_are_folded_joiner_free_and_long_enough(text: str) -> None:
    for code in extract_codes(text):
        assert len(code) >= 4
        assert not set(code) & set("-/. ")
        assert is_model_code(code)


@given(st.from_regex(r"[A-Z]{2,4}-?[0-9]{2,4}[A-Z]?", fullmatch=True))
def test_code_survives_case_and_joiner_changes(code: str) -> None:
    joined = code.replace("-", "")
    assert extract_codes(f"Brand {code} camera") == extract_codes(f"brand {joined.lower()} Camera")


def test_own_codes_leave_out_a_descriptions_and_a_compatible_products_codes() -> None:
    from matching.codes import own_codes

    text = (
        "Sony VAIO AW110J/H Notebook - VGNAW110J/H Sony Sony Vaio AW Series AW110JH Notebook"
        " 2.26GHz Intel Core 2 Duo P8400"
    )
    assert "p8400" in extract_codes(text) and "p8400" not in own_codes(text)
    assert own_codes("Canon Photo Ink - CL52 - Compatible With Pixma iP6210D") == {"cl52"}
    assert own_codes("Remote for BD-C5500 - RMC30D1") == {"rmc30d1"}


def test_variant_marks() -> None:
    from matching.variants import marks, quantities_in_key, variant_signals

    assert quantities_in_key("hdd 16 gb 4 pack 60x60cm") == (
        ("16", "gb"),
        ("4", "pack"),
        ("60x60", "x"),
    )
    assert variant_signals(marks("ssd 16 gb"), marks("ssd 8 gb")) == (1, 0, 0, 0, 0)
    assert variant_signals(marks("ssd 16 gb"), marks("ssd 16gb 8 gb")) == (0, 0, 0, 0, 0)
    assert variant_signals(marks("ipod case"), marks("ipod nano")) == (0, 1, 0, 0, 0)
    assert variant_signals(marks("office pro"), marks("office standard")) == (0, 0, 1, 0, 0)
    assert variant_signals(marks("s550 plum"), marks("s550 black")) == (0, 0, 0, 1, 0)
    assert variant_signals(marks("s550 plum"), marks("s550")) == (0, 0, 0, 0, 0)
    assert variant_signals(marks("math success 2007"), marks("math success 2008")) == (
        0,
        0,
        0,
        0,
        1,
    )
    assert variant_signals(marks("office 2007 2008"), marks("office 2007")) == (0, 0, 0, 0, 0)
    assert variant_signals(marks("office 2007"), marks("office")) == (0, 0, 0, 0, 0)


@given(st.sampled_from(["f/", "f", "F/"]), st.decimals(1, 32, places=1), st.booleans())
def test_a_lens_aperture_is_not_a_model_code(prefix: str, f_number: object, zoom: bool) -> None:
    aperture = f"{prefix}{f_number}" + ("-5.6" if zoom else "")
    assert extract_codes(f"Canon EF 70-300mm {aperture} IS USM Lens") == frozenset()


positive = st.integers(1, 5000)
units = st.sampled_from(["gb", "mm", "cu", "mp", "pack", "w"])


@given(
    st.lists(st.tuples(positive, units), max_size=4),
    st.lists(st.tuples(positive, units), max_size=4),
)
def test_a_quantity_clash_is_symmetric_and_never_with_itself(a: list, b: list) -> None:
    from matching.variants import quantity_clash

    left = [(str(v), u) for v, u in a]
    right = [(str(v), u) for v, u in b]
    assert quantity_clash(left, right) == quantity_clash(right, left)
    assert not quantity_clash(left, left)


@given(st.integers(20, 5000), st.integers(0, 4), units)
def test_a_rounded_quantity_does_not_clash(value: int, off_percent: int, unit: str) -> None:
    from matching.variants import quantity_clash

    rounded = value * (100 + off_percent) / 100
    assert not quantity_clash([(str(value), unit)], [(f"{rounded:.1f}", unit)])
    assert quantity_clash([(str(value), unit)], [(str(2 * value), unit)])


@given(st.integers(10, 99), st.integers(100, 600))
def test_a_range_clashes_with_another_range_not_with_its_ends(low: int, high: int) -> None:
    from matching.normalise import normalise_text
    from matching.variants import quantities_in_key, quantity_clash

    lens = quantities_in_key(normalise_text(f"zoom lens {low}-{high}mm"))
    assert lens == ((f"{low}-{high}", "mm"),)
    assert not quantity_clash(lens, [(str(high), "mm")])
    assert quantity_clash(lens, [(f"{low}-{high + 50}", "mm")])


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("office pro 2007", "office professional 2007"),
        ("endnote student edition", "endnote academic"),
        ("office upg", "office upgrade"),
        ("ipod space gray", "ipod space grey"),
    ],
)
def test_spellings_of_one_edition_or_colour_do_not_clash(one: str, other: str) -> None:
    from matching.variants import marks, variant_signals

    assert variant_signals(marks(one), marks(other)) == (0, 0, 0, 0, 0)
