"""The embedded PostgreSQL + PostGIS cluster: gridmap's default database.

With no ``GRIDMAP_DATABASE_URL``, gridmap runs a private cluster in a data folder from the
PostgreSQL server binaries already on the machine. It listens on loopback only, on a port
chosen once and remembered, with no Unix socket (socket paths have a 107-byte limit that
deep project folders exceed). As root, the server runs as the unprivileged ``postgres``
user, because PostgreSQL refuses to run as root. A marker file records that gridmap created
the cluster, so ``stop`` never touches a server it did not start.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gis.errors import EmbeddedDatabaseError
from gis.store import postgis

MARKER = "gridmap-cluster.json"
SUPERUSER = "gridmap"
SERVICE_USER = "postgres"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class ServerBinaries:
    """Where the PostgreSQL server programs live, and their major version."""

    bindir: Path
    major: int

    def tool(self, name: str) -> str:
        """Return the full path of one server program."""
        return str(self.bindir / name)


def locate_server_binaries() -> ServerBinaries | None:
    """Find ``initdb``/``pg_ctl``: ``pg_config --bindir`` first, then the usual places."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    # Debian/Ubuntu keep one folder per major version; prefer the newest.
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(re.sub(r"\D", "", Path(p).parent.name) or 0),
        reverse=True,
    )
    candidates += [Path(p) for p in debian]
    candidates += [Path(p) for p in ("/usr/local/pgsql/bin", "/usr/pgsql/bin", "/usr/bin")]
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path:
        candidates.append(Path(initdb_on_path).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return ServerBinaries(bindir=bindir, major=_server_major(bindir))
    return None


def find_server_binaries(
    *, install: bool = False, echo: Callable[[str], None] = print
) -> ServerBinaries:
    """Locate the server programs; with ``install``, as root, apt-get them when missing.

    Otherwise a missing server stops with the one command that installs it (and PostGIS).
    """
    found = locate_server_binaries()
    if found is None and install and postgis.can_install_packages():
        postgis.install_server_packages(echo=echo)
        found = locate_server_binaries()
    if found is None:
        raise EmbeddedDatabaseError(postgis.server_install_hint(postgis.default_server_major()))
    return found


def _server_major(bindir: Path) -> int:
    out = subprocess.run(
        [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, check=False
    )
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if not match:
        raise EmbeddedDatabaseError(f"Cannot read the PostgreSQL version from {bindir}/pg_ctl.")
    return int(match.group(1))


def free_loopback_port() -> int:
    """Ask the kernel for a free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Tell whether a TCP server could listen on ``host:port`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As PostgreSQL does: connections of a just-stopped server in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


@dataclass(frozen=True)
class ClusterStatus:
    """What ``gridmap db status`` reports about the embedded cluster."""

    initialised: bool
    running: bool
    port: int | None
    data_dir: Path
    url: str | None


class EmbeddedCluster:
    """A PostgreSQL cluster owned by gridmap in ``data_dir``."""

    def __init__(self, data_dir: Path, *, port: int | None = None, database: str = "gridmap"):
        self.data_dir = data_dir.resolve()
        self.requested_port = port
        self.database = database

    # -- facts -------------------------------------------------------------------------------
    @property
    def marker(self) -> Path:
        """The file that proves gridmap created this cluster."""
        return self.data_dir / MARKER

    @property
    def log_file(self) -> Path:
        """The server log, inside the data folder so the service user can write it."""
        return self.data_dir / "server.log"

    def is_initialised(self) -> bool:
        """Tell whether a gridmap cluster already lives in ``data_dir``."""
        return (self.data_dir / "PG_VERSION").is_file() and self.marker.is_file()

    def _read_marker(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.marker.read_text())
        return data

    def running_port(self) -> int | None:
        """Return the port of the running postmaster, or None when it is not running."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        if len(lines) < 4:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the service user
        return port

    def url(self, port: int | None = None, database: str | None = None) -> str:
        """Return the SQLAlchemy URL of the cluster's database."""
        port = port or self.running_port() or self._remembered_port()
        db = database or self.database
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{db}"

    def _remembered_port(self) -> int | None:
        if not self.marker.is_file():
            return None
        port = self._read_marker().get("port")
        return int(port) if isinstance(port, int | str) else None

    def status(self) -> ClusterStatus:
        """Describe the cluster without changing anything."""
        port = self.running_port()
        initialised = self.is_initialised()
        return ClusterStatus(
            initialised=initialised,
            running=port is not None,
            port=port or self._remembered_port(),
            data_dir=self.data_dir,
            url=self.url(port) if initialised else None,
        )

    # -- actions -----------------------------------------------------------------------------
    def start(self, *, echo: Callable[[str], None] = print) -> str:
        """Start the cluster (creating it on first use) and return its URL. Idempotent."""
        port = self.running_port()
        if port is not None and self.is_initialised():
            return self.url(port)
        binaries = find_server_binaries(install=True, echo=echo)
        if not self.is_initialised():
            self._initdb(binaries, echo)
        port = self._choose_port()
        self._pg_ctl_start(binaries, port)
        marker = self._read_marker()
        marker["port"] = port
        self._write_marker(marker)
        self._ensure_database(port)
        return self.url(port)

    def is_replica(self) -> bool:
        """Tell whether this cluster is a standby (``standby.signal`` in its folder)."""
        return (self.data_dir / "standby.signal").is_file()

    def start_replica(
        self, primary: EmbeddedCluster, *, echo: Callable[[str], None] = print
    ) -> str:
        """Start this cluster as a streaming replica of ``primary``; return its URL.

        On first use the folder is filled by ``pg_basebackup`` from the running primary
        (``-R`` writes ``standby.signal`` and the connection to stream from). The primary
        keeps 512 MB of WAL for it (``wal_keep_size``), so a replica stopped for a while
        can catch up without a replication slot that would pin WAL forever if the replica
        were abandoned. Idempotent, like :meth:`start`.
        """
        port = self.running_port()
        if port is not None and self.is_initialised():
            return self.url(port)
        primary_port = primary.running_port()
        if primary_port is None:
            raise EmbeddedDatabaseError(
                "The primary embedded PostgreSQL is not running; start it first "
                "(`gridmap db start`)."
            )
        binaries = find_server_binaries()
        if not self.is_initialised():
            self._basebackup(binaries, primary, primary_port, echo)
        port = self._choose_port()
        self._pg_ctl_start(binaries, port)
        marker = self._read_marker()
        marker["port"] = port
        self._write_marker(marker)
        return self.url(port)

    def _basebackup(
        self,
        binaries: ServerBinaries,
        primary: EmbeddedCluster,
        primary_port: int,
        echo: Callable[[str], None],
    ) -> None:
        import psycopg

        if self.data_dir.is_dir() and any(self.data_dir.iterdir()):
            raise EmbeddedDatabaseError(
                f"{self.data_dir} exists and is not an embedded gridmap replica; "
                "refusing to copy the primary over it."
            )
        echo(f"gridmap: creating a streaming replica in {self.data_dir} (pg_basebackup)")
        with psycopg.connect(
            host="127.0.0.1", port=primary_port, user=SUPERUSER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("ALTER SYSTEM SET wal_keep_size = '512MB'")
            conn.execute("SELECT pg_reload_conf()")
        self._prepare_dir()
        self._run(
            [
                binaries.tool("pg_basebackup"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary_port),
                "-U",
                SUPERUSER,
                "--no-password",
                "-X",
                "stream",
                "-c",
                "fast",
                "-R",
            ],
            what="copy the primary with pg_basebackup",
        )
        (self.data_dir / "server.log").unlink(missing_ok=True)  # the primary's, copied along
        self._write_marker(
            {
                "created_by": "gridmap",
                "major": binaries.major,
                "port": None,
                "replica_of": str(primary.data_dir),
            }
        )

    def stop(self) -> bool:
        """Stop the cluster if gridmap started it; return whether a server was stopped."""
        if not self.is_initialised():
            return False
        if self.running_port() is None:
            return False
        binaries = find_server_binaries()
        self._run(
            [binaries.tool("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            what="stop the embedded PostgreSQL",
        )
        return True

    # -- internals ---------------------------------------------------------------------------
    def _service_user(self) -> pwd.struct_passwd | None:
        """Return the unprivileged user to run as when we are root, else None."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(SERVICE_USER)
        except KeyError as exc:
            raise EmbeddedDatabaseError(
                "gridmap runs as root, and PostgreSQL refuses to run as root, but there is no "
                f"'{SERVICE_USER}' system user to run it as. Create one "
                f"(`useradd --system {SERVICE_USER}`) or run gridmap as a normal user."
            ) from exc

    def _run(self, cmd: list[str], *, what: str) -> subprocess.CompletedProcess[str]:
        user = self._service_user()
        kwargs: dict[str, object] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env=env,
            cwd=str(self.data_dir.parent),
            **kwargs,  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            log_tail = ""
            if self.log_file.is_file():
                log_tail = "\n  ".join(self.log_file.read_text().splitlines()[-8:])
            raise EmbeddedDatabaseError(
                f"Could not {what} (exit {done.returncode}).\n  "
                + "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-8:])
                + (f"\nServer log ({self.log_file}):\n  {log_tail}" if log_tail else "")
            )
        return done  # type: ignore[no-any-return]

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = self._service_user()
        if user is None:
            self.data_dir.chmod(0o700)
            return
        # The service user must be able to reach the folder through every parent.
        for parent in reversed(self.data_dir.parents):
            mode = parent.stat().st_mode
            if not mode & 0o001:
                raise EmbeddedDatabaseError(
                    f"The embedded database runs as the '{SERVICE_USER}' user, which cannot "
                    f"enter {parent}. Choose a data folder it can reach "
                    "(GRIDMAP_DATA_DIR), or run `chmod o+x` on that folder."
                )
        os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)

    def _initdb(self, binaries: ServerBinaries, echo: Callable[[str], None]) -> None:
        if any(self.data_dir.iterdir()) if self.data_dir.is_dir() else False:
            raise EmbeddedDatabaseError(
                f"{self.data_dir} exists and is not an embedded gridmap cluster; "
                "refusing to initialise over it. Choose another GRIDMAP_DATA_DIR."
            )
        echo(
            f"gridmap: creating an embedded PostgreSQL {binaries.major} cluster in {self.data_dir}"
        )
        self._prepare_dir()
        self._run(
            [
                binaries.tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            what="initialise the embedded PostgreSQL cluster",
        )
        self._write_marker({"created_by": "gridmap", "major": binaries.major, "port": None})

    def _write_marker(self, data: dict[str, object]) -> None:
        user = self._service_user()
        self.marker.write_text(json.dumps(data, indent=2) + "\n")
        if user is not None:
            os.chown(self.marker, user.pw_uid, user.pw_gid)

    def _choose_port(self) -> int:
        for port in (self.requested_port, self._remembered_port()):
            if port and port_is_free(port):
                return port
        if self.requested_port:
            raise EmbeddedDatabaseError(
                f"Port {self.requested_port} on 127.0.0.1 is taken; set GRIDMAP_PG_PORT to a "
                "free port or leave it unset to pick one."
            )
        return free_loopback_port()

    def _pg_ctl_start(self, binaries: ServerBinaries, port: int) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='' "
            "-c max_connections=100 -c fsync=on"
        )
        self._run(
            [
                binaries.tool("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            what="start the embedded PostgreSQL",
        )

    def _ensure_database(self, port: int) -> None:
        import psycopg

        deadline = time.monotonic() + 10
        while True:
            try:
                conn = psycopg.connect(
                    host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True
                )
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
