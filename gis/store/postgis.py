"""Making sure a PostgreSQL server can run PostGIS.

One path for every server gridmap talks to, the embedded cluster and an external URL alike:
if the extension is not available and the server runs on this machine from Debian's
packages, install ``postgresql-<major>-postgis-3`` (as root, with apt-get); otherwise stop
with a message that says exactly what to install.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable

from gis.errors import EmbeddedDatabaseError

log = logging.getLogger(__name__)


def postgis_package(major: int) -> str:
    """Name the Debian/Ubuntu package that brings PostGIS 3 to PostgreSQL ``major``."""
    return f"postgresql-{major}-postgis-3"


def install_hint(major: int) -> str:
    """Say how to install PostGIS for this server on the usual platforms."""
    return (
        f"PostGIS is not installed for PostgreSQL {major}. "
        "Install it, then run the command again:\n"
        "  Debian/Ubuntu:  sudo apt-get update && "
        f"sudo apt-get install -y {postgis_package(major)}\n"
        f"  Fedora/RHEL:    sudo dnf install -y postgis34_{major}   (PGDG repository)\n"
        f"  macOS (brew):   brew install postgis\n"
        "Or point GRIDMAP_DATABASE_URL at a server that has PostGIS."
    )


def can_install_packages() -> bool:
    """Tell whether this process may install Debian packages itself (root with apt-get)."""
    return os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get") is not None


def install_postgis_package(major: int, *, echo: Callable[[str], None] = print) -> None:
    """Install PostGIS for PostgreSQL ``major`` with apt-get, or explain what to do."""
    if not can_install_packages():
        raise EmbeddedDatabaseError(install_hint(major))
    package = postgis_package(major)
    echo(f"gridmap: installing {package} with apt-get (PostGIS is missing)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise EmbeddedDatabaseError(
                f"`{' '.join(cmd)}` failed (exit {done.returncode}):\n  "
                + "\n  ".join(tail)
                + "\n\n"
                + install_hint(major)
            )
    echo(f"gridmap: {package} installed.")
