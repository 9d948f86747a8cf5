"""Category time units: read from the CSV, stored by the seed, shown by the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gis.errors import UnreadableFile
from gis.io.roster_files import read_categories

HEADER = "code,big_class,big_class_name,name,name_en,time_limit_hours,required_role,hazard"


def test_categories_api_shows_the_time_unit(app_client: TestClient, auth_headers) -> None:
    answer = app_client.get("/api/v1/categories", headers=auth_headers("worker"))
    assert answer.status_code == 200
    units = {c["code"]: c["time_unit"] for c in answer.json()}
    # The seed stored the CSV's column: emergencies (突发事件, big class 04) run on the clock.
    assert units["0402"] == "calendar"  # gas leak
    assert units["0101"] == "working"  # illegal structure
    assert {code for code, unit in units.items() if unit == "calendar"} == {
        f"040{i}" for i in range(1, 8)
    }


def test_time_unit_column_is_optional_and_checked(tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text(HEADER + "\n0101,01,市容环境,私搭乱建,,40,,false\n", encoding="utf-8")
    assert read_categories(old)[0].time_unit == "working"
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + ",time_unit\n0101,01,市容环境,私搭乱建,,40,,false,days\n", "utf-8")
    with pytest.raises(UnreadableFile, match="line 2: time_unit"):
        read_categories(bad)
