"""orjson's reading of a body (``api.bodies._parse_plain``) against the strict ``json.loads``.

Whatever ``_parse_plain`` accepts, the former reader (``json.loads`` with duplicate keys,
constants and lone surrogates refused) must accept with the same values, down to int versus
float and the sign of zero. Bodies are written here by hand, with duplicate keys, every way
of escaping a character, numbers of every form and whitespace anywhere, then mutated.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bodies import (
    _GIVE_UP,
    _SURROGATE_ESCAPE,
    _has_lone_surrogate,
    _no_constants,
    _no_duplicates,
    _parse_plain,
)


def strict(raw: bytes) -> Any:
    """The former reader; raises what it raised."""
    text = raw.decode("utf-8")
    parsed = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(parsed):
        raise ValueError("lone surrogate")
    return parsed


def same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def check(raw: bytes) -> bool:
    """Assert the fast reading agrees with the former one; True when it read the body."""
    fast = _parse_plain(raw)
    if fast is _GIVE_UP:
        return False
    assert same(fast, strict(raw)), raw
    return True


def escape(text: str, how: int) -> str:
    """A JSON string of ``text``: plain, every character escaped, or ``json.dumps``'s way."""
    if how == 0:
        return json.dumps(text, ensure_ascii=False)
    if how == 1:
        return json.dumps(text)
    out = []
    for ch in text:
        code = ord(ch)
        if code > 0xFFFF:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04X}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


spaces = st.sampled_from(["", "", "", " ", "\n  ", "\t", "\r\n"])
keys = st.sampled_from(["a", "b", "lon", "lat", "", ":", '"', 'x":', "\\", "é", "\ud800", ':"a'])
strings = st.one_of(
    keys, st.text(max_size=6), st.sampled_from(['":', '\\":', "a:b", "2026-11-26T09:30:00Z"])
)
numbers = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(
        [
            "0",
            "-0",
            "-0.0",
            "1e400",
            "-1e400",
            "1e-400",
            "1E5",
            "1.5e+3",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "9223372036854775807",
            "1" * 30,
            "1." + "0" * 30,
            "NaN",
            "Infinity",
            "-Infinity",
            "117.9910906",
            "37.3746621",
            "4.9e-324",
            "1.7976931348623157e308",
            "2.2250738585072011e-308",
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.25e}"),
    st.decimals(allow_nan=False, allow_infinity=False, places=12).map(str),
)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.integers(0, 5 if depth < 4 else 2))
    if kind == 0:
        return draw(numbers)
    if kind == 1:
        return escape(draw(strings), draw(st.integers(0, 2)))
    if kind == 2:
        return draw(st.sampled_from(["true", "false", "null"]))
    if kind == 3:
        items = draw(st.lists(documents(depth + 1), max_size=4))
        sep = draw(spaces)
        return "[" + sep + ("," + sep).join(items) + draw(spaces) + "]"
    pairs = draw(st.lists(st.tuples(keys, documents(depth + 1)), max_size=5))
    before, after = draw(spaces), draw(spaces)
    members = [
        escape(key, draw(st.integers(0, 2))) + before + ":" + after + value for key, value in pairs
    ]
    return "{" + draw(spaces) + ("," + draw(spaces)).join(members) + draw(spaces) + "}"


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), encoding=st.sampled_from(["utf-8", "surrogatepass"]))
def test_whatever_orjson_reads_is_read_alike(doc: str, encoding: str) -> None:
    if encoding == "utf-8":
        try:
            raw = doc.encode()
        except UnicodeEncodeError:
            return
    else:
        raw = doc.encode("utf-8", "surrogatepass")  # bytes that are not UTF-8
    check(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), data=st.data())
def test_mutated_bodies_are_read_alike_or_given_up(doc: str, data: st.DataObject) -> None:
    raw = bytearray(doc.encode("utf-8", "surrogatepass"))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        what = data.draw(st.integers(0, 2))
        if what == 0 and at < len(raw):
            del raw[at]
        elif what == 1:
            raw[at:at] = data.draw(
                st.sampled_from(
                    [b'"', b":", b",", b"\\", b"{", b"]", b"\x00", b"\xff", b" ", b"e", b"-", b"0"]
                )
            )
        elif at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
    check(bytes(raw))


@settings(max_examples=400, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    indent=st.sampled_from([None, 2]),
)
def test_bodies_as_clients_write_them_are_read_by_orjson(value: Any, indent: int | None) -> None:
    """What json.dumps writes (without lone surrogates or \\u00 escapes) takes the fast way."""
    raw = json.dumps(value, ensure_ascii=False, indent=indent).encode("utf-8", "surrogatepass")
    try:
        raw.decode()
    except UnicodeDecodeError:
        return
    if b"\\u00" in raw:
        return
    assert check(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":2}',
        b'{"a" :1,"a":2}',
        b'{"a":1, "a" : 2}',
        b'{"a":":x","a":1}',
        b'{"a":1,"\\u0061":2}',
        b'{"x":"\\":","x":1}',
        b'{"x":"\\u0022:","y":1,"y":2}',
        b'{"x":"\\u0022\\u003a","y":1,"y":2}',
        b'{"lon":1,"lat":2,"lon":3}',
        b'{"events":[{"a":1},{"b":1,"b":1}]}',
        b'{"a":{"b":1,"b":1}}',
        b"[18446744073709551616]",
        b"-9223372036854775809",
        b"[" * 300 + b"]" * 300,
        b'{"a":NaN}',
        b'"\\ud800"',
        b"1e400",
        b"\xef\xbb\xbf{}",
        b'{"a":"\xff"}',
    ],
)
def test_what_orjson_does_not_tell_goes_the_json_loads_way(raw: bytes) -> None:
    assert _parse_plain(raw) is _GIVE_UP


@pytest.mark.parametrize(
    "raw",
    [
        b'{"events": [{"category": "0102", "location": {"lon": 117.97, "lat": 37.38}}]}',
        b'{"a":"2026-11-26T09:30:00+08:00","b":"https://x/y"}',
        b'{\n  "a": 1,\n  "b": [1, 2.5, "x\\"y"]\n}',
        b'{"":1,":":2,"\\"":3}',
        b'"\\ud83d\\ude00"',
        b"-0",
        b"18446744073709551615",
    ],
)
def test_usual_bodies_take_the_orjson_way(raw: bytes) -> None:
    assert check(raw)
