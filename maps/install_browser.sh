#!/usr/bin/env bash
# Install what the browser tests and the map benchmark need: Debian's Chromium (never a
# browser download by a test tool), CJK fonts so Chinese labels render in screenshots, and
# the playwright Python package (it drives the system Chromium through
# executable_path=/usr/bin/chromium). Idempotent: does nothing when all are present.
#
# Usage: maps/install_browser.sh [path/to/python]   (default: .venv/bin/python)
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"
CHROMIUM=/usr/bin/chromium
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || missing+=(fonts-noto-cjk)

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "install_browser: missing ${missing[*]}." >&2
    echo "  Run as root: apt-get install -y ${missing[*]}" >&2
    echo "  (the browser tests use Debian's Chromium at $CHROMIUM; they never download one)" >&2
    exit 1
  fi
fi

if ! "$PYTHON" -c "import playwright" 2>/dev/null; then
  echo "install_browser: pip install playwright"
  "$PYTHON" -m pip install --quiet "playwright>=1.45,<2"
fi

"$CHROMIUM" --version 2>/dev/null | head -n1
