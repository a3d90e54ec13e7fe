#!/usr/bin/env bash
# Runs the whole test suite and ends with one plain closing line: "tests: N passed, M failed".
# Data-dependent tests read ../shared (or $PROMPTREPRO_SHARED); with CI=true a missing shared
# directory is an error rather than a silent skip.
set -uo pipefail
cd "$(dirname "$0")/.."
shared="${PROMPTREPRO_SHARED:-$(cd .. && pwd)/shared}"
if [ "${CI:-}" = "true" ] && [ ! -d "$shared" ]; then
  echo "error: CI=true but the shared data directory '$shared' is missing." >&2
  echo "hint: CI clones the repo beside ../shared; set PROMPTREPRO_SHARED to its path." >&2
  exit 2
fi
export PROMPTREPRO_SHARED="$shared"
log=$(mktemp)
swift test 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
line=$(grep -E "Test Suite 'All tests' (passed|failed)" -A1 "$log" | grep -oE "Executed [0-9]+ tests?, with [0-9]+ failures?" | tail -1)
total=$(echo "$line" | grep -oE "[0-9]+" | head -1)
failed=$(echo "$line" | grep -oE "[0-9]+" | sed -n 2p)
rm -f "$log"
if [ -z "$total" ]; then
  echo "tests: 0 passed, 1 failed (no XCTest summary; swift test exited $status)"
  exit 1
fi
echo "tests: $((total - failed)) passed, $failed failed"
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
