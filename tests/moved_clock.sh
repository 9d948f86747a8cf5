#!/usr/bin/env bash
# Run tests under a moved wall clock: the next time it is each given UTC hour, with libfaketime
# (Debian's `faketime`, installed with apt-get when run as root). No test may depend on the
# hour or the date it runs at; this is how that is checked.
#
# The embedded test cluster is stopped first and restarted by the suite under the same
# moved clock, so PostgreSQL's now() and Python's agree; it is stopped again at the end.
# (With GRIDMAP_TEST_DATABASE_URL the server keeps its own clock: tests that compare the
# two then fail for that reason, not the hour.) The clock is moved by an offset, so it runs
# on at its normal pace.
#
# Usage: tests/moved_clock.sh [HOURS] [pytest arguments…]
#   HOURS     comma-separated UTC hours, default 02,11,15,20
#   pytest …  without test paths: the time-sensitive modules below, without browser tests
# Example: tests/moved_clock.sh 20 tests/test_feed.py -x
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS="02,11,15,20"
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]{1,2}(,[0-9]{1,2})*$ ]]; then
  HOURS="$1"
  shift
fi
# Only options (no test paths): the time-sensitive modules, with those options.
has_paths=0
for arg in "$@"; do
  case "$arg" in tests/*|*.py|*::*) has_paths=1 ;; esac
done
if [ "$has_paths" -eq 0 ]; then
  set -- "$@" -m "not browser" -p no:cacheprovider -q \
    tests/test_feed.py tests/test_sample_history.py tests/test_workflow.py \
    tests/test_dispatch.py tests/test_workcalendar.py tests/test_intake.py \
    tests/test_maps.py tests/test_dispatcher_api.py tests/test_poisoned_rows.py \
    tests/test_assessment.py tests/test_assessment_api.py tests/test_exports.py \
    tests/test_open311.py tests/test_tablet.py tests/test_visibility.py \
    tests/test_boundary_versions.py tests/test_workflow_table.py tests/test_photos.py
fi

LIB=""
for candidate in /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 \
  /usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
  [ -e "$candidate" ] && LIB="$candidate" && break
done
if [ -z "$LIB" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "moved_clock: apt-get install faketime"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
    LIB="$(dpkg -L libfaketime 2>/dev/null | grep 'libfaketime.so.1$' | head -n1)"
  fi
  if [ -z "$LIB" ]; then
    echo "moved_clock: libfaketime is missing. Run as root: apt-get install -y faketime" >&2
    exit 1
  fi
fi

PYTEST=.venv/bin/pytest
GRIDMAP=.venv/bin/gridmap
status=0
today="$(date -u +%Y-%m-%d)"
for hour in ${HOURS//,/ }; do
  # The next time it is that hour: PostgreSQL's timeouts misfire when its clock is moved
  # back (it reads both the moved and the real clock), never when it is moved ahead.
  moved="$today $(printf '%02d' "$((10#$hour))"):00:00"
  offset=$(($(date -u -d "$moved" +%s) - $(date -u +%s)))
  if [ "$offset" -lt 0 ]; then
    offset=$((offset + 86400))
    moved="$(date -u -d "@$(($(date -u +%s) + offset))" '+%Y-%m-%d %H:00:00')"
  fi
  echo "== wall clock moved to $moved UTC (offset ${offset}s) =="
  GRIDMAP_DATA_DIR=.gridmap "$GRIDMAP" db stop >/dev/null 2>&1 || true
  if ! TZ=UTC LD_PRELOAD="$LIB" FAKETIME="$(printf '%+d' "$offset")s" FAKETIME_NO_CACHE=1 \
    "$PYTEST" "$@"; then
    status=1
    echo "== FAILED at $moved UTC =="
  fi
  GRIDMAP_DATA_DIR=.gridmap "$GRIDMAP" db stop >/dev/null 2>&1 || true
done
exit "$status"
