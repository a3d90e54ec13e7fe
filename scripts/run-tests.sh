#!/usr/bin/env bash
# Runs the whole test suite and ends with one plain closing line: "tests: N passed, M failed".
# Data-dependent tests read ../shared (or $PROMPTREPRO_SHARED); with CI=true a missing shared
# directory is an error rather than a silent skip. Arguments go to `swift test` (e.g. --filter).
# PROMPTREPRO_THREADS=N runs every test whose thread count is not set by the test itself with N
# threads, as on a host with N cores (`make test-threads`).
set -uo pipefail
cd "$(dirname "$0")/.."
shared="${PROMPTREPRO_SHARED:-$(cd .. && pwd)/shared}"
if [ "${CI:-}" = "true" ] && [ ! -d "$shared" ]; then
  echo "error: CI=true but the shared data directory '$shared' is missing." >&2
  echo "hint: CI clones the repo beside ../shared; set PROMPTREPRO_SHARED to its path." >&2
  exit 2
fi
export PROMPTREPRO_SHARED="$shared"
if [ -n "${PROMPTREPRO_THREADS+x}" ] && ! [[ "$PROMPTREPRO_THREADS" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: PROMPTREPRO_THREADS='$PROMPTREPRO_THREADS' is not a positive integer." >&2
  exit 2
fi
log=$(mktemp)
swift test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# XCTest's summary: "Executed N tests, with M failures" or, when tests were skipped (e.g. the
# AVX-512 kernel tests on a CPU without AVX-512), "Executed N tests, with S tests skipped and M failures".
# The suite is 'All tests', or 'Selected tests' with --filter.
line=$(grep -E "Test Suite '(All|Selected) tests' (passed|failed)" -A1 "$log" \
  | grep -oE "Executed [0-9]+ tests?, with ([0-9]+ tests? skipped and )?[0-9]+ failures?" | tail -1)
total=$(echo "$line" | grep -oE "[0-9]+" | head -1)
failed=$(echo "$line" | grep -oE "[0-9]+" | tail -1)
skipped=$(echo "$line" | grep -oE "[0-9]+ tests? skipped" | grep -oE "^[0-9]+")
skipped=${skipped:-0}
skips=$(grep -E "Test skipped" "$log" | sed -E 's/.*: ([A-Za-z0-9_]+\.[A-Za-z0-9_]+) : Test skipped( -|:) (.*)/  skipped \1: \3/')
rm -f "$log"
if [ -z "$total" ]; then
  echo "tests: 0 passed, 1 failed (no XCTest summary; swift test exited $status)"
  exit 1
fi
[ -n "$skips" ] && echo "$skips"
[ -n "${PROMPTREPRO_THREADS:-}" ] && echo "threads: $PROMPTREPRO_THREADS (PROMPTREPRO_THREADS)"
if [ "$skipped" -gt 0 ]; then
  echo "tests: $((total - failed - skipped)) passed, $failed failed ($skipped skipped)"
else
  echo "tests: $((total - failed)) passed, $failed failed"
fi
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
