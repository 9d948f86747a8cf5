"""A first run without rough edges: make help, bench help, the libpq URL, the demo's state."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from api.cli import demo
from api.seed import api_key_user_id, create_demo_users
from api.settings import Settings
from bench.suites import SUITES
from gis.store.database import libpq_url

ROOT = Path(__file__).resolve().parents[1]


def test_make_help_lists_every_target() -> None:
    makefile = (ROOT / "Makefile").read_text()
    phony = set(re.search(r"^\.PHONY:(.*)$", makefile, re.MULTILINE)[1].split())  # type: ignore[index]
    defined = set(re.findall(r"^([a-z][a-z-]*):", makefile, re.MULTILINE))
    assert phony == defined, "every rule is .PHONY and every .PHONY name has a rule"
    out = subprocess.run(
        ["make", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    listed = set(re.findall(r"^  ([a-z][a-z-]*): \S", out, re.MULTILINE))
    assert listed == defined


#: Runs each module as ``python -m MODULE --help`` does (``runpy``, as ``__main__``), one
#: after another in one interpreter, so the suites' shared imports load once, not ten times.
#: Each answer is framed by the module's name, then its exit code.
HELP_SCRIPT = """
import contextlib, io, runpy, sys
for module in sys.argv[1:]:
    out = io.StringIO()
    sys.argv = [module, "--help"]
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    print("=== " + module + "\\n" + out.getvalue() + "\\n=== exit " + str(code), flush=True)
"""


@pytest.mark.slow
def test_every_bench_help_names_sizes_and_run_time() -> None:
    modules = ["bench", *(s.module for s in SUITES.values())]
    done = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    answers = re.findall(r"^=== (\S+)\n(.*?)\n=== exit (-?\d+)$", done.stdout, re.S | re.M)
    assert [m for m, _, _ in answers] == modules, done.stdout + done.stderr
    for module, out, code in answers:
        assert code == "0", f"{module} --help:\n{out}"
        assert "usage: python -m " + module in out, out
        if module == "bench":
            for name, suite in SUITES.items():
                assert name in out and suite.takes in out
        else:
            assert "sizes:" in out and "expected run time:" in out, out
    assert "wrk" in SUITES["intake"].sizes


def test_db_url_libpq_is_taken_by_psql(database_url: URL) -> None:
    env = {
        **os.environ,
        "GRIDMAP_DATABASE_URL": database_url.render_as_string(hide_password=False),
    }
    gridmap = str(Path(sys.executable).with_name("gridmap"))
    done = subprocess.run(
        [gridmap, "db", "url", "--libpq"], capture_output=True, text=True, env=env, check=True
    )
    plain = done.stdout.strip()
    assert plain.startswith("postgresql://") and "+psycopg" not in plain
    assert plain == libpq_url(database_url)
    psql = shutil.which("psql")
    assert psql, "psql (postgresql-client) is part of the machine's PostgreSQL"
    answer = subprocess.run(
        [psql, plain, "-AtXc", "SELECT 1"], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "1"
    sqlalchemy_form = subprocess.run(
        [gridmap, "db", "url"], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()
    assert sqlalchemy_form.startswith("postgresql+psycopg://")  # the default form is unchanged


def test_libpq_url_keeps_password_and_options() -> None:
    url = URL.create(
        "postgresql+psycopg", "u", "p@ss/w", "db.example", 5433, "gm", {"sslmode": "require"}
    )
    assert libpq_url(url) == "postgresql://u:p%40ss%2Fw@db.example:5433/gm?sslmode=require"


# -- the demo ---------------------------------------------------------------------------------


def test_a_second_demo_run_keeps_the_key_the_first_printed(session: Session) -> None:
    first = create_demo_users(session, keep=None, revoke_old=False)["reporter"]
    second = create_demo_users(session, keep=first, revoke_old=False)["reporter"]
    assert second == first
    assert api_key_user_id(session, first) is not None
    # A key the file names but the database does not know: a new one, the old left alone.
    unknown = "gm_000000000000_" + "x" * 43
    third = create_demo_users(session, keep=unknown, revoke_old=False)["reporter"]
    assert third != first and api_key_user_id(session, first) is not None
    # --new-key: every earlier key revoked.
    fresh = create_demo_users(session, keep=None, revoke_old=True)["reporter"]
    assert fresh not in (first, third)
    assert api_key_user_id(session, first) is None and api_key_user_id(session, third) is None
    assert api_key_user_id(session, fresh) is not None


def _setup() -> demo.DemoSetup:
    return demo.DemoSetup(
        version_id=3,
        tokens={"admin": "tok-admin", "dispatcher": "tok-disp", "reporter": "never-printed"},
        keys={"reporter": "gm_0123456789ab_secretpart"},
    )


def test_credentials_file_is_private_and_names_the_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state", port=8123, token_ttl_minutes=720)
    path = demo.credentials_path(settings)
    path.parent.mkdir(parents=True)
    path.write_text("old")
    path.chmod(0o644)  # an existing file readable by others is tightened, not kept as it was
    demo.write_private(path, demo.credentials_text(settings, _setup()))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "http://127.0.0.1:8123/maps/plans/3" in text
    assert "tok-admin" in text and "export TOKEN=tok-disp" in text
    assert "never-printed" not in text  # the reporter has no password: its key is shown
    assert "valid 12 h" in text  # the same lifetime as a sign-in's
    assert demo.previous_api_key(path) == "gm_0123456789ab_secretpart"
    assert demo.previous_api_key(tmp_path / "missing.txt") is None


def test_demo_tokens_live_as_long_as_a_sign_ins(tmp_path: Path) -> None:
    for minutes in (30, 720, 1440):
        settings = Settings(data_dir=tmp_path, token_ttl_minutes=minutes)
        assert f"valid {minutes / 60:g} h" in demo.credentials_text(settings, _setup())


def test_access_log_goes_to_a_file_unless_asked(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    default = demo._access_log_path(settings, None)
    assert default == tmp_path / "state" / "access.log"
    config = demo.log_config(default)
    assert config["handlers"]["access"]["class"] == "logging.FileHandler"
    assert config["handlers"]["access"]["filename"] == str(default)
    assert demo._access_log_path(settings, "-") is None
    terminal = demo.log_config(None)
    assert terminal["handlers"]["access"]["class"] == "logging.StreamHandler"
    assert demo._access_log_path(settings, str(tmp_path / "a.log")) == tmp_path / "a.log"


def test_the_reminder_repeats_until_stopped() -> None:
    said: list[str] = []
    three = threading.Event()

    def echo(message: str) -> None:
        said.append(message)
        if len(said) >= 3:
            three.set()

    stop = demo.remind_every(0.01, "credentials in .gridmap/demo-credentials.txt", echo)
    assert three.wait(5)
    stop.set()
    assert set(said) == {"credentials in .gridmap/demo-credentials.txt"}


@pytest.mark.slow
def test_stopping_says_what_is_left_running(tmp_path: Path, cluster_dir: Path) -> None:
    external = Settings(data_dir=tmp_path, database_url="postgresql://x@db.example/gm")
    assert "left as it was" in demo.stopped_note(external, stop_db=True)
    settings = Settings(data_dir=cluster_dir)  # the embedded cluster in cluster_dir/pg
    assert demo.stopped_note(settings, stop_db=False) == "gridmap demo stopped."
    try:
        settings.embedded.start(echo=lambda m: None)
        note = demo.stopped_note(settings, stop_db=False)
        assert "still running" in note and "gridmap db stop" in note and "--stop-db" in note
        assert settings.embedded.running_port() is not None
        note = demo.stopped_note(settings, stop_db=True)
        assert note == "gridmap demo stopped; the embedded PostgreSQL is stopped."
        assert settings.embedded.running_port() is None
    finally:
        settings.embedded.stop()


def test_demo_refuses_a_taken_port_before_doing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GRIDMAP_PORT", str(port))
        monkeypatch.setenv("GRIDMAP_DATA_DIR", str(tmp_path / "state"))
        args = argparse.Namespace(
            no_serve=False, rate=0.0, new_key=False, stop_db=False, access_log=None
        )
        assert demo.run(args) == 2
    assert f"127.0.0.1:{port} is already in use" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # no cluster created, nothing written


# -- installing the PostgreSQL server -----------------------------------------------------------

APT_CACHE_15 = "postgresql\n  Depends: postgresql-15\n  Suggests: postgresql-doc\n"


@pytest.fixture
def apt(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the package commands gridmap would run; nothing is installed or removed."""
    from gis.store import postgis

    ran: list[list[str]] = []

    def run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
        ran.append(list(cmd))
        out = APT_CACHE_15 if list(cmd[:2]) == ["apt-cache", "depends"] else ""
        return subprocess.CompletedProcess(list(cmd), 0, out, "")

    monkeypatch.setattr(postgis, "_run", run)
    return ran


def _no_server_until_installed(monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]) -> None:
    from gis.store import embedded

    def locate() -> embedded.ServerBinaries | None:
        installed = any(c[:2] == ["apt-get", "install"] for c in apt)
        return (
            embedded.ServerBinaries(Path("/usr/lib/postgresql/15/bin"), 15) if installed else None
        )

    monkeypatch.setattr(embedded, "locate_server_binaries", locate)


def test_as_root_a_missing_server_is_installed_with_postgis(
    monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]
) -> None:
    from gis.store import embedded, postgis

    _no_server_until_installed(monkeypatch, apt)
    monkeypatch.setattr(postgis, "can_install_packages", lambda: True)
    said: list[str] = []
    found = embedded.find_server_binaries(install=True, echo=said.append)
    assert found.major == 15
    assert apt == [
        ["apt-get", "update", "-qq"],
        ["apt-cache", "depends", "postgresql"],
        [
            "apt-get",
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "postgresql-15",
            "postgresql-15-postgis-3",
        ],
    ]
    assert said[-1] == "gridmap: postgresql-15 postgresql-15-postgis-3 installed."


def test_as_another_user_a_missing_server_gets_the_one_command(
    monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]
) -> None:
    from gis.errors import EmbeddedDatabaseError
    from gis.store import embedded, postgis

    _no_server_until_installed(monkeypatch, apt)
    monkeypatch.setattr(postgis, "can_install_packages", lambda: False)
    with pytest.raises(EmbeddedDatabaseError) as refused:
        embedded.find_server_binaries(install=True, echo=lambda m: None)
    assert (
        "sudo apt-get update && sudo apt-get install -y postgresql-15 postgresql-15-postgis-3"
        in refused.value.message
    )
    assert all(c[0] != "apt-get" for c in apt)  # asked apt-cache only, installed nothing


def test_stopping_never_installs(monkeypatch: pytest.MonkeyPatch, apt: list[list[str]]) -> None:
    from gis.errors import EmbeddedDatabaseError
    from gis.store import embedded, postgis

    _no_server_until_installed(monkeypatch, apt)
    monkeypatch.setattr(postgis, "can_install_packages", lambda: True)
    with pytest.raises(EmbeddedDatabaseError):
        embedded.find_server_binaries()
    assert all(c[0] != "apt-get" for c in apt)


def test_the_major_comes_from_apt_or_else_from_the_release() -> None:
    import doctest

    from gis.store import postgis

    assert doctest.testmod(postgis).failed == 0
    assert postgis.parse_default_major(APT_CACHE_15) == 15
    assert postgis.release_default_major('ID=debian\nVERSION_ID="12"\n') == 15
    assert postgis.release_default_major('ID=fedora\nVERSION_ID="40"\n') is None
    assert postgis.server_install_hint(None).count("sudo apt-get install -y postgresql\n") == 1


def test_a_server_already_there_needs_no_apt(apt: list[list[str]]) -> None:
    from gis.store import embedded

    found = embedded.find_server_binaries(install=True, echo=lambda m: None)
    assert found.major >= 13 and apt == []


def test_license_is_spdx_and_the_build_backend_is_bounded() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "MIT"  # an SPDX expression, not a table
    (backend,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert re.fullmatch(r"setuptools>=\d+,<\d+", backend), backend
