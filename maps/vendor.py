"""Re-fetch the map pages' third-party scripts, styles, fonts and images at pinned versions.

gridmap runs on intranets with no internet, so every asset a map page loads is committed
under ``maps/static/vendor/<package>@<version>/`` beside its licence, and served by gridmap
itself. This script rebuilds that folder: each npm package is fetched with ``npm pack`` (the
registry's tarball, no install scripts run) into a temporary folder, and only the files the
pages use are copied. Three heatmap scripts come from the installed folium wheel instead,
because folium ships patched copies (e.g. the Leaflet.heat weights fix) that its plugins
are tested with.

A few files are patched on the way in, and each patch says why: Leaflet.TimeDimension's
control stylesheet loads the Glyphicons font from a CDN by ``url()``; it is pointed at a
copy of the font vendored from Bootstrap 3. ReDoc's bundle shows a logo from Redocly's CDN; the
URL is replaced by an empty image.

``manifest.json`` records every file's size and SHA-256, so the tests can tell a hand-edited
or missing asset from the pinned one.

Run: ``.venv/bin/python -m maps.vendor`` (needs ``npm`` and network access to the registry),
or ``--check`` to verify the committed files against the manifest without fetching.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
MANIFEST = VENDOR_DIR / "manifest.json"

#: The folium version whose bundled heatmap scripts are vendored (see the module docstring).
FOLIUM_VERSION = "0.20.0"

Patch = Callable[[str], str]


def _local_glyphicons(css: str) -> str:
    """Point Leaflet.TimeDimension's @font-face at the vendored Glyphicons (woff2, woff).

    Only the two formats every supported browser reads are kept, so the page never asks for
    the .eot/.ttf/.svg variants the original lists.
    """
    face = (
        "@font-face {\n"
        "    font-family: 'Glyphicons Halflings';\n"
        "    src: url('../bootstrap@3.4.1/fonts/glyphicons-halflings-regular.woff2') "
        "format('woff2'),\n"
        "         url('../bootstrap@3.4.1/fonts/glyphicons-halflings-regular.woff') "
        "format('woff');\n"
        "}"
    )
    patched, count = re.subn(r"@font-face\s*\{[^}]*\}", face, css, count=1)
    if count != 1 or "bootstrapcdn" in patched:
        raise RuntimeError("Leaflet.TimeDimension's stylesheet changed: review the font patch")
    return patched


@dataclass(frozen=True)
class NpmPackage:
    """Files taken from one npm package at a pinned version."""

    name: str
    version: str
    #: path inside the package → path under ``vendor/<dir>/``
    files: Mapping[str, str]
    licence: str = "LICENSE"
    patches: Mapping[str, Patch] = field(default_factory=dict)

    @property
    def dir(self) -> str:
        """The vendor sub-folder: ``<name>@<version>`` without the npm scope."""
        return f"{self.name.rsplit('/', 1)[-1]}@{self.version}"


@dataclass(frozen=True)
class FoliumFile:
    """A script bundled in the folium wheel, with the upstream licence it is under."""

    source: str  # path inside the folium package
    dest: str  # path under vendor/
    licence_from: str  # "<npm name>@<version>" whose LICENSE file applies


def _no_remote_logo(js: str) -> str:
    """Drop ReDoc's "API docs by Redocly" logo, which it loads from Redocly's CDN.

    The image component shows nothing when its source fails, so an empty data URI keeps the
    text link and makes no request; offline pages must not reach for the internet at all.
    """
    remote = "https://cdn.redoc.ly/redoc/logo-mini.svg"
    if js.count(remote) != 1:
        raise RuntimeError("ReDoc's bundle changed: review the logo patch")
    return js.replace(remote, "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E")


_GLYPHICONS = "glyphicons-halflings-regular"

PACKAGES: tuple[NpmPackage, ...] = (
    NpmPackage(
        "leaflet",
        "1.9.3",
        {
            "dist/leaflet.js": "leaflet.js",
            "dist/leaflet.css": "leaflet.css",
            "dist/images/layers.png": "images/layers.png",
            "dist/images/layers-2x.png": "images/layers-2x.png",
            "dist/images/marker-icon.png": "images/marker-icon.png",
            "dist/images/marker-icon-2x.png": "images/marker-icon-2x.png",
            "dist/images/marker-shadow.png": "images/marker-shadow.png",
        },
    ),
    NpmPackage(
        "leaflet.markercluster",
        "1.5.3",
        {
            "dist/leaflet.markercluster.js": "leaflet.markercluster.js",
            "dist/MarkerCluster.css": "MarkerCluster.css",
            "dist/MarkerCluster.Default.css": "MarkerCluster.Default.css",
        },
        licence="MIT-LICENCE.txt",
    ),
    NpmPackage(
        "leaflet.fullscreen",
        "3.0.0",
        {
            "Control.FullScreen.js": "Control.FullScreen.js",
            "Control.FullScreen.css": "Control.FullScreen.css",
            "icon-fullscreen.svg": "icon-fullscreen.svg",
        },
    ),
    NpmPackage(
        "leaflet-timedimension",
        "1.1.1",
        {
            "dist/leaflet.timedimension.min.js": "leaflet.timedimension.min.js",
            "dist/leaflet.timedimension.control.css": "leaflet.timedimension.control.css",
        },
        patches={"leaflet.timedimension.control.css": _local_glyphicons},
    ),
    NpmPackage(
        "bootstrap",
        "3.4.1",
        {
            f"dist/fonts/{_GLYPHICONS}.{ext}": f"fonts/{_GLYPHICONS}.{ext}"
            for ext in ("woff2", "woff")
        },
    ),
    NpmPackage("iso8601-js-period", "0.2.1", {"iso8601.js": "iso8601.js"}, licence=""),
    NpmPackage("jquery", "3.7.1", {"dist/jquery.min.js": "jquery.min.js"}, licence="LICENSE.txt"),
    NpmPackage(
        "@geoman-io/leaflet-geoman-free",
        "2.20.2",
        {
            "dist/leaflet-geoman.min.js": "leaflet-geoman.min.js",
            "dist/leaflet-geoman.css": "leaflet-geoman.css",
        },
    ),
    # The API documentation pages (/docs, /redoc), which FastAPI loads from CDNs by default.
    NpmPackage(
        "swagger-ui-dist",
        "5.35.0",
        {
            "swagger-ui-bundle.js": "swagger-ui-bundle.js",
            "swagger-ui.css": "swagger-ui.css",
            "favicon-32x32.png": "favicon-32x32.png",
        },
    ),
    NpmPackage(
        "redoc",
        "2.5.0",
        {"bundles/redoc.standalone.js": "redoc.standalone.js"},
        patches={"redoc.standalone.js": _no_remote_logo},
    ),
    # Only their licence texts: the code comes from the folium wheel (FOLIUM_FILES).
    NpmPackage("leaflet.heat", "0.2.0", {}),
    NpmPackage("heatmap.js", "2.0.5", {}),
)

FOLIUM_FILES: tuple[FoliumFile, ...] = (
    FoliumFile(
        "templates/leaflet_heat.min.js",
        f"leaflet.heat@folium-{FOLIUM_VERSION}/leaflet-heat.min.js",
        "leaflet.heat@0.2.0",
    ),
    FoliumFile(
        "templates/pa7_hm.min.js",
        f"heatmap.js@folium-{FOLIUM_VERSION}/heatmap.min.js",
        "heatmap.js@2.0.5",
    ),
    FoliumFile(
        "templates/pa7_leaflet_hm.min.js",
        f"heatmap.js@folium-{FOLIUM_VERSION}/leaflet-heatmap.min.js",
        "heatmap.js@2.0.5",
    ),
)

#: iso8601-js-period ships no licence file; its package.json declares Apache-2.0.
_ISO8601_NOTICE = (
    "iso8601-js-period 0.2.1 (https://github.com/nezasa/iso8601-js-period)\n"
    "Licensed under the Apache License, Version 2.0, as declared in its package.json;\n"
    "the package ships no licence file. https://www.apache.org/licenses/LICENSE-2.0\n"
)


def _npm_pack(spec: str, workdir: Path) -> Path:
    """Fetch a package tarball with ``npm pack`` and unpack it; return its ``package`` dir."""
    out = subprocess.run(
        ["npm", "pack", "--silent", spec],
        cwd=workdir,
        check=True,
        capture_output=True,
        text=True,
    )
    tarball = workdir / out.stdout.strip().splitlines()[-1]
    target = workdir / tarball.stem
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(vendor_dir: Path = VENDOR_DIR) -> dict[str, dict[str, object]]:
    """Rebuild ``vendor_dir`` from the registry and the folium wheel; return the manifest."""
    installed = metadata.version("folium")
    if installed != FOLIUM_VERSION:
        raise SystemExit(
            f"folium {installed} is installed but the heatmap scripts are pinned to "
            f"{FOLIUM_VERSION}: install that version or update FOLIUM_VERSION after review"
        )
    if vendor_dir.exists():
        shutil.rmtree(vendor_dir)
    vendor_dir.mkdir(parents=True)
    licences: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="gridmap-vendor-") as tmp:
        for pkg in PACKAGES:
            src = _npm_pack(f"{pkg.name}@{pkg.version}", Path(tmp))
            licence = (src / pkg.licence).read_text() if pkg.licence else _ISO8601_NOTICE
            licences[f"{pkg.name.rsplit('/', 1)[-1]}@{pkg.version}"] = licence
            if not pkg.files:
                continue
            dest = vendor_dir / pkg.dir
            for inner, rel in pkg.files.items():
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if rel in pkg.patches:
                    target.write_text(pkg.patches[rel]((src / inner).read_text()))
                else:
                    shutil.copyfile(src / inner, target)
            (dest / "LICENSE").write_text(licence)
    folium_root = resources.files("folium")
    folium_licence = Path(str(metadata.distribution("folium").locate_file(""))).glob(
        f"folium-{FOLIUM_VERSION}.dist-info/**/LICENSE*"
    )
    folium_text = next(iter(sorted(folium_licence))).read_text()
    for item in FOLIUM_FILES:
        target = vendor_dir / item.dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(folium_root.joinpath(item.source).read_bytes())
        (target.parent / "LICENSE").write_text(
            f"Code: {licences_header(item.licence_from)}\n\n{licences[item.licence_from]}\n\n"
            f"Bundled and patched by folium {FOLIUM_VERSION} (MIT):\n\n{folium_text}"
        )
    manifest = build_manifest(vendor_dir)
    (vendor_dir / MANIFEST.name).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def licences_header(spec: str) -> str:
    """One line naming the upstream package a folium-bundled script comes from."""
    return f"{spec} (upstream), as bundled in the folium {FOLIUM_VERSION} wheel"


def build_manifest(vendor_dir: Path = VENDOR_DIR) -> dict[str, dict[str, object]]:
    """Map every vendored file (relative path) to its size and SHA-256."""
    return {
        str(p.relative_to(vendor_dir)): {"bytes": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(vendor_dir.rglob("*"))
        if p.is_file() and p != vendor_dir / MANIFEST.name
    }


def check(vendor_dir: Path = VENDOR_DIR) -> list[str]:
    """Compare the committed files with ``manifest.json``; return the differences."""
    expected = json.loads((vendor_dir / MANIFEST.name).read_text())
    actual = build_manifest(vendor_dir)
    problems = [f"missing: {p}" for p in sorted(set(expected) - set(actual))]
    problems += [f"not in the manifest: {p}" for p in sorted(set(actual) - set(expected))]
    problems += [
        f"changed: {p}"
        for p in sorted(set(expected) & set(actual))
        if expected[p]["sha256"] != actual[p]["sha256"]
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    """Fetch the pinned assets, or with ``--check`` verify the committed ones."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify, do not fetch")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        for line in problems:
            print(line)
        return 1 if problems else 0
    manifest = fetch()
    total = sum(int(str(entry["bytes"])) for entry in manifest.values())
    print(f"vendored {len(manifest)} files, {total / 1024:.0f} KiB, into {VENDOR_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
