"""The served OpenAPI document: every reference resolves, errors and credentials documented."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

PROBLEM_STATUSES = {"401", "403", "404", "409", "413", "415", "422", "503"}


def _spec(app_client: TestClient) -> dict:
    resp = app_client.get("/openapi.json")
    assert resp.status_code == 200
    return resp.json()


def test_every_ref_resolves(app_client: TestClient) -> None:
    spec = _spec(app_client)
    text = json.dumps(spec)
    assert "#/$defs/" not in text
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        node = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, ref
            node = node[part]
    lonlat = spec["components"]["schemas"]["LonLat"]
    assert set(lonlat["properties"]) == {"lon", "lat"}


def test_errors_are_documented_as_problem_json(app_client: TestClient) -> None:
    spec = _spec(app_client)
    for path, item in spec["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            if method == "options":
                continue  # answered before routing, always 204 (tests/test_allow.py)
            responses = operation["responses"]
            assert set(responses) >= PROBLEM_STATUSES, (method, path)
            for status in PROBLEM_STATUSES:
                content = responses[status]["content"]
                assert "application/problem+json" in content, (method, path, status)


def test_security_schemes_and_the_idempotency_key(app_client: TestClient) -> None:
    spec = _spec(app_client)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    post = spec["paths"]["/api/v1/events"]["post"]
    (key,) = [p for p in post["parameters"] if p["name"].lower() == "idempotency-key"]
    assert key["schema"]["format"] == "uuid"
    assert {"bearer": []} in post["security"]


def test_every_idempotency_key_is_documented_as_a_uuid(app_client: TestClient) -> None:
    spec = _spec(app_client)
    keys = [
        (path, p)
        for path, item in spec["paths"].items()
        for operation in item.values()
        for p in operation.get("parameters", [])
        if p["name"].lower() == "idempotency-key"
    ]
    assert {path for path, _ in keys} == {"/api/v1/events", "/open311/v2/requests.json"}
    for path, parameter in keys:
        schema = parameter["schema"]
        formats = {s.get("format") for s in [schema, *schema.get("anyOf", [])]} - {None}
        assert formats == {"uuid"}, path
