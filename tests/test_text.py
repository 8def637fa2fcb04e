"""NUL and lone surrogates: detected and cleaned the same way everywhere (arkloop.text)."""
from arkloop.text import REPLACEMENT, json_clean, text_clean, text_is_clean


def test_nul_and_lone_surrogates_are_detected() -> None:
    assert text_is_clean("plain text, ünïcode and 😀 (a surrogate pair in UTF-16)")
    assert not text_is_clean("bad \x00 byte")
    assert not text_is_clean("lone \ud800 high")
    assert not text_is_clean("lone \udfff low")


def test_cleaning_replaces_each_bad_code_point() -> None:
    assert text_clean("a\x00b\ud800c\udc00") == f"a{REPLACEMENT}b{REPLACEMENT}c{REPLACEMENT}"
    clean = "nothing to do"
    assert text_clean(clean) is clean


def test_json_cleaning_reaches_keys_and_nested_values() -> None:
    dirty = {"k\x00": ["ok", {"deep": "x\ud800"}], "n": 1, "none": None}
    assert json_clean(dirty) == {f"k{REPLACEMENT}": ["ok", {"deep": f"x{REPLACEMENT}"}], "n": 1, "none": None}
    assert dirty["k\x00"][1]["deep"] == "x\ud800"  # the input is not modified


def test_clean_json_is_returned_as_is() -> None:
    clean = {"a": ["b", {"c": 1.5}], "d": True}
    assert json_clean(clean) is clean


def test_json_cleaning_turns_non_finite_numbers_into_null() -> None:
    # Python's json reads `NaN` and `Infinity`; jsonb, JSON.parse and SSE clients do not.
    assert json_clean({"a": [float("nan"), float("inf")], "b": -float("inf"), "c": 1e308}) == {
        "a": [None, None], "b": None, "c": 1e308}
