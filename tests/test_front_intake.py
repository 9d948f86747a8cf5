"""The common report's short way through :func:`api.intake.prepare`, against ReportIn.

``prepare`` takes a plainly valid report's values straight from the parsed body
(``_fast_fields``) and sends anything else through ReportIn. The reference here is the
former ``prepare``: ReportIn, ``as_report`` and ``body_hash`` on every report. Both must give
the same Intake (values, key, hash) or the same problem, for every body.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from api.intake import (
    _fast_fields,
    _validate_report,
    _validation_message,
    as_report,
    idempotency_key,
    prepare,
)
from api.schemas import ReportIn
from gis.errors import InvalidInput


def reference(index: int, raw: Any, header_key: str | None = None) -> Any:
    """The former prepare: every report through ReportIn; the hash as json.dumps writes it."""
    if not isinstance(raw, dict):
        raise InvalidInput("A report must be a JSON object.")
    try:
        report = _validate_report(raw)
    except ValidationError as exc:
        raise InvalidInput(_validation_message(exc)) from None
    key = idempotency_key(report.client_event_id, header_key)
    material = {k: v for k, v in raw.items() if k != "client_event_id"}
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (index, as_report(report), key, hashlib.sha256(text.encode()).hexdigest())


def outcome(fn: Any, *args: Any) -> Any:
    try:
        it = fn(*args)
    except InvalidInput as exc:
        return ("problem", str(exc))
    except UnicodeEncodeError:  # a lone surrogate in the hash's text: both fail alike
        return ("unencodable",)
    if isinstance(it, tuple):
        return ("intake", *it)
    return ("intake", it.index, it.report, it.client_event_id, it.request_hash)


def same(a: Any, b: Any) -> bool:
    """Equal, and floats equal bit for bit (-0.0 is not 0.0) and of the same type."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1.0, a) == math.copysign(1.0, b) and a == b
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__"):
        return all(same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)
    return bool(a == b)


KEY = "5f0c1b9e-8a57-4a8e-9a43-2d0c61f2b7a1"

numbers = st.one_of(
    st.floats(),  # NaN and infinities too
    st.floats(-200, 200),
    st.sampled_from([0.0, -0.0, 1e-5, -1e-5, 1e-4, 1e16, 1e17, 100_000.0, 100_000.5, -1e-300]),
    st.integers(-200, 200),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, 2**63, 10**30, 100_000, 100_001, -1]),
    st.booleans(),
)
texts = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "a\x00b", "\ud800", "路边垃圾", "x" * 128, "x" * 129, "é\n"]),
    st.text(max_size=5).map(lambda s: s * 900),  # around the 4,000 limit
)
anything = st.one_of(st.none(), numbers, texts, st.lists(numbers, max_size=3), st.just({}))
keys = st.one_of(
    st.just(KEY),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: u.hex),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.uuids().map(lambda u: "urn:uuid:" + str(u)),
    st.sampled_from(["", "not-a-uuid", KEY + " ", KEY[:-1]]),
    anything,
)
lon_lat = st.fixed_dictionaries({"lon": numbers, "lat": numbers})
point = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Point", "point", "LineString"]) | anything,
        "coordinates": st.lists(numbers, min_size=0, max_size=4) | anything,
    }
)
location = st.one_of(
    lon_lat,
    point,
    lon_lat.map(lambda d: {**d, "alt": 1}),
    st.fixed_dictionaries({"lon": numbers}),
    st.dictionaries(st.sampled_from(["lon", "lat", "type", "coordinates"]), numbers),
    anything,
)
report_times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # naive: refused
    st.sampled_from(["2026-11-26T09:30:00+08:00", "2026-11-26", "0.5", "yesterday"]),
    st.integers(0, 2_000_000_000),
    st.floats(0, 2e9),
    anything,
)
media = st.one_of(
    st.sampled_from(["https://x.example/a.jpg", "http://x/ y", "ftp://x/a", "https://x/\x1c"]),
    st.text(max_size=10).map(lambda s: "https://x/" + s),
    anything,
)
fields = {
    "client_event_id": keys,
    "category": st.one_of(st.sampled_from(["0102", "a_b-C", "x" * 16, "x" * 17, "01\n"]), texts),
    "description": st.none() | texts,
    "location": location,
    "crs": st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326", "EPSG:4490"])
    | texts
    | anything,
    "accuracy_m": st.none() | numbers,
    "reported_at": st.none() | report_times,
    "reporter": st.none() | texts,
    "media_url": st.none() | media,
    "self_handled": st.none() | st.just({"result": "done", "photos": []}) | anything,
    "unknown": anything,
}


good = {
    "client_event_id": st.uuids().map(str),
    "category": st.sampled_from(["0102", "a_b-C", "x" * 16]),
    "description": st.none() | st.text(max_size=12).filter(lambda s: "\x00" not in s),
    "location": st.one_of(
        st.fixed_dictionaries({"lon": st.floats(-180, 180), "lat": st.floats(-90, 90)}),
        st.fixed_dictionaries(
            {
                "type": st.just("Point"),
                "coordinates": st.lists(st.floats(-90, 90), min_size=2, max_size=3),
            }
        ),
    ),
    "crs": st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326", "EPSG:4490"]),
    "accuracy_m": st.none() | st.floats(0, 100_000) | st.integers(0, 100_000),
    "reported_at": st.none() | st.just("2026-11-26T09:30:00+08:00"),
    "reporter": st.none() | st.just("W017"),
    "media_url": st.none() | st.just("https://example.org/p.jpg"),
    "self_handled": st.none(),
}


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Reports near the edge of valid: each field usually valid, sometimes anything."""
    body: dict[str, Any] = {}
    for name, values in fields.items():
        if name == "unknown":
            if draw(st.integers(0, 29)) == 0:
                body[draw(st.sampled_from(["grid", "status", "Category"]))] = draw(values)
            continue
        if name in ("category", "location") and draw(st.integers(0, 29)) == 0:
            continue  # a required field missing
        if name not in ("category", "location") and draw(st.booleans()):
            continue  # an optional field left out
        body[name] = draw(values if draw(st.integers(0, 14)) == 0 else good[name])
    return body


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=bodies(),
    header=st.none() | st.sampled_from([KEY, " " + KEY.upper(), "nope"]) | st.uuids().map(str),
)
def test_prepare_is_the_reportin_path(raw: dict[str, Any], header: str | None) -> None:
    assert same(outcome(prepare, 3, raw, header), outcome(reference, 3, raw, header))


valid = st.fixed_dictionaries(
    {
        "client_event_id": st.uuids().map(str),
        "category": st.from_regex(r"[0-9A-Za-z_-]{1,16}", fullmatch=True),
        "location": st.one_of(
            st.fixed_dictionaries(
                {"lon": st.floats(-180, 180) | st.integers(-180, 180), "lat": st.floats(-90, 90)}
            ),
            st.fixed_dictionaries(
                {
                    "type": st.just("Point"),
                    "coordinates": st.lists(st.floats(-90, 90), min_size=2, max_size=3),
                }
            ),
        ),
    },
    optional={
        "description": st.none() | st.text(max_size=50).filter(lambda s: "\x00" not in s),
        "crs": st.sampled_from(["wgs84", "cgcs2000", "gcj02", "bd09", "EPSG:4326"]),
        "accuracy_m": st.none() | st.floats(0, 100_000) | st.integers(0, 100_000),
        "reported_at": st.none()
        | st.datetimes(
            min_value=datetime(2000, 1, 2),
            timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))]),
        ).map(lambda d: d.isoformat()),
        "reporter": st.none() | st.text(max_size=20).filter(lambda s: "\x00" not in s),
        "media_url": st.none() | st.just("https://example.org/p.jpg"),
    },
)


@settings(max_examples=500, deadline=None)
@given(raw=valid)
def test_valid_reports_take_the_short_way_with_reportins_values(raw: dict[str, Any]) -> None:
    """So the comparison above compares something: valid reports are read without ReportIn."""
    fast = _fast_fields(raw)
    assert fast is not None
    values, key, _ = fast
    model = ReportIn.model_validate(raw)
    assert key == model.client_event_id
    assert same(tuple(values.values()), tuple(as_report(model).__dict__.values()))
    assert same(outcome(prepare, 0, raw), outcome(reference, 0, raw))


@pytest.mark.parametrize(
    "raw",
    [
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "self_handled": {"result": "x"}},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "grid": "g1"},
        {"category": "0102", "location": {"lon": math.nan, "lat": 2.0}},
        {"category": "0102", "location": {"lon": True, "lat": 2.0}},
        {"category": "0102", "location": {"lon": 2**60, "lat": 2.0}},
        {"category": "0102", "location": {"type": "Point", "coordinates": [1.0]}},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "accuracy_m": -0.5},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "description": "\ud800"},
        {"category": "01 02", "location": {"lon": 1.0, "lat": 2.0}},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "crs": None},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "client_event_id": "x"},
        {"category": "0102", "location": {"lon": 1.0, "lat": 2.0}, "reported_at": "2026-01-01"},
    ],
)
def test_anything_else_goes_through_reportin(raw: dict[str, Any]) -> None:
    assert _fast_fields(raw) is None
    assert same(outcome(prepare, 0, raw, KEY), outcome(reference, 0, raw, KEY))


def test_the_hash_of_floats_orjson_writes_otherwise_is_json_dumps_text() -> None:
    """2.5e-05 and 1e+16 as Python writes them (orjson: 0.000025, 1e16)."""
    raw = {
        "client_event_id": KEY,
        "category": "0102",
        "location": {"type": "Point", "coordinates": [117.97, 2.5e-05, 1e16]},
        "accuracy_m": 1e-5,
    }
    assert _fast_fields(raw) is not None
    text = (
        '{"accuracy_m":1e-05,"category":"0102",'
        '"location":{"coordinates":[117.97,2.5e-05,1e+16],"type":"Point"}}'
    )
    assert prepare(0, raw).request_hash == hashlib.sha256(text.encode()).hexdigest()


def test_the_short_way_s_limits_are_report_in_s() -> None:
    """The constants ``_fast_fields`` checks against are ReportIn's constraints.

    A limit changed in ReportIn and not here would let the short way accept what ReportIn
    refuses (or the reverse) for values the generated bodies may never reach.
    """
    from api import intake

    fields = ReportIn.model_json_schema()["properties"]
    category = fields["category"]
    assert intake._CATEGORY.pattern == (
        f"{category['pattern'][1:-2]}{{{category['minLength']},{category['maxLength']}}}"
    )
    (reporter, _) = fields["reporter"]["anyOf"]
    assert reporter["maxLength"] == intake._MAX_REPORTER
    (description, _) = fields["description"]["anyOf"]
    assert description["maxLength"] == intake.MAX_DESCRIPTION
    (accuracy, _) = fields["accuracy_m"]["anyOf"]
    assert (accuracy["minimum"], accuracy["maximum"]) == (0, 100_000)
    assert set(fields) == intake._KNOWN
