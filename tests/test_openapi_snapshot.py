"""The served OpenAPI equals the committed snapshot ``docs/openapi.json``.

A route, parameter or schema changed on purpose? Regenerate the snapshot with
``python -m api.openapi --write docs/openapi.json`` (or ``make openapi``) and commit it
with the change, so every change of the API is a reviewed diff.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from fastapi.testclient import TestClient

from api.openapi import render

SNAPSHOT = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
REGENERATE = "python -m api.openapi --write docs/openapi.json"


def test_served_openapi_equals_the_snapshot(app_client: TestClient) -> None:
    served = render(app_client.get("/openapi.json").json())
    committed = SNAPSHOT.read_text(encoding="utf-8")
    if served != committed:
        diff = difflib.unified_diff(
            committed.splitlines(),
            served.splitlines(),
            "docs/openapi.json (committed)",
            "/openapi.json (served)",
            lineterm="",
            n=2,
        )
        shown = list(diff)
        more = f"\n… {len(shown) - 200} more diff lines" if len(shown) > 200 else ""
        raise AssertionError(
            "The served OpenAPI differs from docs/openapi.json:\n"
            + "\n".join(shown[:200])
            + more
            + f"\n\nIf the change is intended, regenerate the snapshot:\n    {REGENERATE}"
        )


def test_the_snapshot_command_writes_what_is_served(app_client: TestClient, tmp_path) -> None:
    from api.openapi import main

    out = tmp_path / "openapi.json"
    assert main(["--write", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render(app_client.get("/openapi.json").json())
