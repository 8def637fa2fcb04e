"""Property tests (hypothesis) for the parsers that take hostile input: request bodies, stream
cursors, idempotency keys, list cursors, the stub's script and the calculator. Whatever comes in,
each answers with its value or its own validation error — never another exception."""
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ParseError

from arkloop.errors import ValidationFailed
from arkloop.idempotency import check_key
from arkloop.parsers import MAX_DEPTH, StrictJSONParser
from runs.runner.calculator import CalculatorError, calculate
from runs.runner.providers.base import ProviderError
from runs.runner.providers.stub import script_check, script_parse
from runs.stream.views import check_seq

# Text and numbers a body may hold: no NUL, no lone surrogate, integers within 64 bits.
clean_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(clean_text, inner, max_size=4),
    max_leaves=30)


@given(st.binary(max_size=2000))
def test_json_parser_answers_a_dict_or_its_own_error_for_any_bytes(raw):
    try:
        parsed = StrictJSONParser().parse(io.BytesIO(raw))
    except (ParseError, ValidationFailed):
        return
    assert isinstance(parsed, dict)


@given(st.dictionaries(clean_text, json_values, max_size=6))
def test_json_parser_accepts_every_shallow_object(body):
    assert StrictJSONParser().parse(io.BytesIO(json.dumps(body).encode())) == body


@given(st.dictionaries(clean_text, json_values, max_size=4), st.lists(st.booleans(), max_size=4),
       st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", 2**63, -2**63 - 1, 2**200]))
def test_json_parser_names_the_field_of_any_bad_text_or_number(body, nesting, bad):
    """A NUL, a lone surrogate or an out-of-range integer, at any depth: 422 naming its path."""
    document, path = {"field": bad}, ["field"]
    for in_list in nesting:  # wrap in {"z": [...]} or {"a": ...}
        document, path = ({"z": [document]}, ["z", "0", *path]) if in_list else ({"a": document}, ["a", *path])
    raw = json.dumps({**body, "top": document}).encode()
    with pytest.raises(ValidationFailed) as caught:
        StrictJSONParser().parse(io.BytesIO(raw))
    assert list(caught.value.details["fields"]) == [".".join(["top", *path])]


@given(st.integers(min_value=MAX_DEPTH + 1, max_value=100_000))
def test_json_parser_refuses_any_depth_past_the_limit(depth):
    with pytest.raises(ParseError):
        StrictJSONParser().parse(io.BytesIO(b'{"a":' + b"[" * depth + b"]" * depth + b"}"))


@given(st.text(max_size=40))
def test_stream_cursor_is_a_non_negative_int_or_a_422(value):
    try:
        seq = check_seq(value, field="after_seq")
    except ValidationFailed as error:
        assert error.details["fields"] in ({"after_seq": ["must be an integer ≥ 0"]},
                                           {"after_seq": ["must be at most 18 digits"]})
        return
    assert isinstance(seq, int) and 0 <= seq < 10**18 and value.strip().isdigit()


@given(st.text(max_size=300))
def test_idempotency_key_is_accepted_or_refused_with_a_422(key):
    try:
        check_key(key)
    except ValidationFailed as error:
        assert "Idempotency-Key" in error.details["fields"]
        assert not key or len(key) > 255 or not key.isprintable()
        return
    assert 1 <= len(key) <= 255


@given(st.text(max_size=300))
def test_stub_script_parse_never_raises(text):
    script = script_parse("/stub " + text)
    assert isinstance(script.keys, dict)


def test_stub_script_nested_past_the_recursion_limit_is_plain_text():
    text = "/stub " + "[" * 30000 + "]" * 30000
    assert script_parse(text).keys == {}


script_values = json_values | st.floats() | st.integers(min_value=-10**20, max_value=10**20)
script_keys = st.sampled_from(["reply", "chunks", "delay_ms", "tools", "ask", "fail", "fail_times", "usage",
                               "repeat", "other"])


@given(st.dictionaries(script_keys, script_values | st.dictionaries(st.sampled_from(
    ["input_tokens", "output_tokens", "cached_input_tokens", "name", "arguments"]), script_values), max_size=5))
def test_any_stub_script_is_accepted_or_a_bad_request_naming_its_key(keys):
    try:
        script_check(keys)
    except ProviderError as error:
        assert error.error_class == "provider.bad_request"
        assert any(f"`{key}`" in error.message for key in keys)


@given(st.text(max_size=80))
def test_calculator_answers_a_number_or_a_calculator_error(expression):
    try:
        value = calculate(expression)
    except CalculatorError:
        return
    assert isinstance(value, (int, float)) and not isinstance(value, bool)


arithmetic = st.recursive(
    st.integers(min_value=-1000, max_value=1000).map(str),
    lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    max_leaves=12)


@given(arithmetic)
def test_calculator_agrees_with_python_on_integer_arithmetic(expression):
    assert calculate(expression) == eval(expression)  # noqa: S307 — the test builds the expression itself


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.text(max_size=60))
def test_any_list_cursor_is_a_page_or_a_422_never_a_500(alice, before):
    response = alice.client.get("/v1/runs", {"before": before})
    assert response.status_code in (200, 422)
    thread_page = alice.client.get("/v1/threads", {"before": before})
    assert thread_page.status_code in (200, 422)
