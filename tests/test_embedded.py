"""The embedded cluster: created in a fresh folder on its own port, migrated, stopped."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import psycopg
import pytest

from gis.store.database import ensure_database, migrate
from gis.store.embedded import EmbeddedCluster, free_loopback_port

pytestmark = pytest.mark.slow


def test_start_migrate_reuse_and_stop(cluster_dir: Path) -> None:
    port = free_loopback_port()
    cluster = EmbeddedCluster(cluster_dir, port=port, database="gm_embedded")
    url = cluster.start(echo=lambda m: None)
    assert f":{port}/gm_embedded" in url
    migrate(ensure_database(url, echo=lambda m: None))
    with psycopg.connect(host="127.0.0.1", port=port, user="gridmap", dbname="gm_embedded") as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
    assert {
        "grids",
        "boundary_versions",
        "events",
        "event_transitions",
        "users",
        "api_keys",
    } <= tables

    again = EmbeddedCluster(cluster_dir, database="gm_embedded").start(echo=lambda m: None)
    assert again == url  # a second start reuses the running cluster
    assert cluster.status().running

    assert cluster.stop() is True
    assert cluster.status().running is False and cluster.status().initialised
    assert cluster.stop() is False


def test_stop_refuses_a_folder_gridmap_did_not_create(tmp_path: Path) -> None:
    (tmp_path / "PG_VERSION").write_text("15\n")
    assert EmbeddedCluster(tmp_path).stop() is False


def test_db_start_as_a_normal_user(cluster_dir: Path) -> None:
    """The unprivileged path, whoever runs the suite (no skip: CI fails on skips).

    As a normal user the suite starts the cluster as itself. As root, a forked child drops
    to 'nobody' (the interpreter under /root is not executable by nobody, so the child keeps
    the modules this process already imported and only changes its user).
    """
    if os.geteuid() != 0:
        cluster = EmbeddedCluster(cluster_dir, port=free_loopback_port())
        url = cluster.start(echo=lambda m: None)
        assert url.startswith("postgresql+psycopg://gridmap@127.0.0.1:")
        assert cluster.status().running is True
        assert cluster.stop() is True
        assert (cluster_dir / "PG_VERSION").stat().st_uid == os.geteuid()
        return
    nobody = pwd.getpwnam("nobody")
    cluster_dir.mkdir(parents=True)
    os.chown(cluster_dir, nobody.pw_uid, nobody.pw_gid)
    port = free_loopback_port()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become nobody, start, check, stop
        os.close(read_end)
        report: dict[str, object] = {}
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            cluster = EmbeddedCluster(cluster_dir, port=port)
            report["url"] = cluster.start(echo=lambda m: None)
            report["running"] = cluster.status().running
            report["stopped"] = cluster.stop()
        except BaseException as exc:
            report["error"] = repr(exc)
        os.write(write_end, json.dumps(report).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        report = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    assert "error" not in report, report["error"]
    assert report["url"] == f"postgresql+psycopg://gridmap@127.0.0.1:{port}/gridmap"
    assert report["running"] is True and report["stopped"] is True
    owner = (cluster_dir / "PG_VERSION").stat().st_uid
    assert owner == nobody.pw_uid  # ran as nobody, not as the postgres service user
