#!/usr/bin/env bash
# Install GDAL's command-line tools (Debian gdal-bin: ogrinfo, ogr2ogr with the OAPIF
# driver), which the OGC API – Features test drives the way QGIS users add a layer.
# Idempotent: does nothing when ogr2ogr is present.
#
# Usage: tests/install_gdal.sh
set -euo pipefail

if command -v ogr2ogr >/dev/null 2>&1 && ogrinfo --formats 2>/dev/null | grep OAPIF >/dev/null; then
  ogrinfo --version
  exit 0
fi
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install_gdal: apt-get install gdal-bin"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdal-bin >/dev/null
else
  echo "install_gdal: GDAL's ogr2ogr (with the OAPIF driver) is missing." >&2
  echo "  Run as root: apt-get install -y gdal-bin" >&2
  exit 1
fi
ogrinfo --version
