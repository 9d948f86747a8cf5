"""The command line imports only the group it runs: light commands start fast."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
from api.cli import main
code = main(["deadline", "2026-09-30T16:30:00+08:00", "--hours", "3"])
heavy = ("geopandas", "sqlalchemy", "fastapi", "api.cli.demo")
heavy = sorted(m for m in heavy if m in sys.modules)
print("HEAVY", heavy)
sys.exit(code)
"""


def test_deadline_does_not_import_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "2026-10-08T10:30:00+08:00" in done.stdout
    assert "HEAVY []" in done.stdout


def test_help_still_lists_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    from api.cli import COMMANDS

    for name in COMMANDS:
        assert name in done.stdout
