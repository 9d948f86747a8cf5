"""Making sure this machine can run PostgreSQL with PostGIS.

Two steps, one rule. The server programs (``initdb``, ``pg_ctl``) for the embedded cluster,
and the PostGIS extension for any server on this machine: when one is missing and gridmap
runs as root on Debian/Ubuntu, it installs the package itself with apt-get
(``postgresql-<major>`` and ``postgresql-<major>-postgis-3``, after ``apt-get update``);
run as anyone else, it stops and prints the one command that installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence

from gis.errors import EmbeddedDatabaseError

#: Debian/Ubuntu's default PostgreSQL major by release, for when apt-cache cannot tell.
DEFAULT_MAJOR_BY_RELEASE = {
    ("debian", "11"): 13,
    ("debian", "12"): 15,
    ("debian", "13"): 17,
    ("ubuntu", "20.04"): 12,
    ("ubuntu", "22.04"): 14,
    ("ubuntu", "24.04"): 16,
}


def postgis_package(major: int) -> str:
    """Name the Debian/Ubuntu package that brings PostGIS 3 to PostgreSQL ``major``."""
    return f"postgresql-{major}-postgis-3"


def server_packages(major: int | None) -> list[str]:
    """The packages of a PostgreSQL server with PostGIS (the metapackage when the major is unknown).

    >>> server_packages(15)
    ['postgresql-15', 'postgresql-15-postgis-3']
    >>> server_packages(None)
    ['postgresql']
    """
    return ["postgresql"] if major is None else [f"postgresql-{major}", postgis_package(major)]


def apt_command(packages: Sequence[str]) -> str:
    """The one command a person runs to install ``packages``.

    >>> apt_command(["postgresql-15-postgis-3"])
    'sudo apt-get update && sudo apt-get install -y postgresql-15-postgis-3'
    """
    return f"sudo apt-get update && sudo apt-get install -y {' '.join(packages)}"


def install_hint(major: int) -> str:
    """Say how to install PostGIS for this server on the usual platforms."""
    return (
        f"PostGIS is not installed for PostgreSQL {major}. "
        "Install it, then run the command again:\n"
        f"  Debian/Ubuntu:  {apt_command([postgis_package(major)])}\n"
        f"  Fedora/RHEL:    sudo dnf install -y postgis34_{major}   (PGDG repository)\n"
        f"  macOS (brew):   brew install postgis\n"
        "Or point GRIDMAP_DATABASE_URL at a server that has PostGIS."
    )


def server_install_hint(major: int | None) -> str:
    """Say how to install the PostgreSQL server and PostGIS when neither is there."""
    return (
        "No PostgreSQL server programs (initdb, pg_ctl) were found on this machine. "
        "Install them with PostGIS, then run the command again:\n"
        f"  Debian/Ubuntu:  {apt_command(server_packages(major))}\n"
        "  macOS (brew):   brew install postgresql@16 postgis\n"
        "Run as root, gridmap installs them itself. "
        "Or set GRIDMAP_DATABASE_URL to an existing PostgreSQL server with PostGIS."
    )


def parse_default_major(apt_cache_depends: str) -> int | None:
    r"""The major the ``postgresql`` metapackage depends on, from ``apt-cache depends``.

    >>> parse_default_major("postgresql\n  Depends: postgresql-15\n  Suggests: postgresql-doc")
    15
    >>> parse_default_major("E: No packages found") is None
    True
    """
    found = re.search(r"Depends:\s*postgresql-(\d+)\s*$", apt_cache_depends, re.MULTILINE)
    return int(found.group(1)) if found else None


def release_default_major(os_release: str) -> int | None:
    r"""The default major of a Debian/Ubuntu release, from ``/etc/os-release``'s text.

    >>> release_default_major('ID=ubuntu\nVERSION_ID="24.04"\n')
    16
    """
    fields = dict(
        line.split("=", 1) for line in os_release.splitlines() if "=" in line and line[0] != "#"
    )
    key = (fields.get("ID", "").strip('"'), fields.get("VERSION_ID", "").strip('"'))
    return DEFAULT_MAJOR_BY_RELEASE.get(key)


def _run(cmd: Sequence[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(list(cmd), env=env, capture_output=True, text=True, check=False)


def default_server_major() -> int | None:
    """The PostgreSQL major apt would install here, or None when it cannot be told."""
    if shutil.which("apt-cache"):
        major = parse_default_major(_run(["apt-cache", "depends", "postgresql"]).stdout)
        if major is not None:
            return major
    try:
        with open("/etc/os-release", encoding="utf-8") as release:
            return release_default_major(release.read())
    except OSError:
        return None


def can_install_packages() -> bool:
    """Tell whether this process may install Debian packages itself (root with apt-get)."""
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None


def _apt(cmd: Sequence[str], hint: str) -> None:
    done = _run(cmd)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise EmbeddedDatabaseError(
            f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n  "
            + "\n  ".join(tail)
            + "\n\n"
            + hint
        )


def _apt_install(packages: Sequence[str], hint: str) -> None:
    _apt(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], hint)


def install_postgis_package(major: int, *, echo: Callable[[str], None] = print) -> None:
    """Install PostGIS for PostgreSQL ``major`` with apt-get, or explain what to do."""
    if not can_install_packages():
        raise EmbeddedDatabaseError(install_hint(major))
    package = postgis_package(major)
    echo(f"gridmap: installing {package} with apt-get (PostGIS is missing)...")
    _apt(["apt-get", "update", "-qq"], install_hint(major))
    _apt_install([package], install_hint(major))
    echo(f"gridmap: {package} installed.")


def install_server_packages(*, echo: Callable[[str], None] = print) -> None:
    """Install the PostgreSQL server and PostGIS with apt-get, or explain what to do."""
    if not can_install_packages():
        raise EmbeddedDatabaseError(server_install_hint(default_server_major()))
    echo("gridmap: installing the PostgreSQL server and PostGIS with apt-get (none found)...")
    _apt(["apt-get", "update", "-qq"], server_install_hint(None))
    packages = server_packages(default_server_major())  # known once the lists are fresh
    _apt_install(packages, server_install_hint(None))
    echo(f"gridmap: {' '.join(packages)} installed.")
