#!/bin/bash
# Install dependencies, build, and run every test: tools/test.sh [BUILDDIR [configure options...]]
# Ends with one line "tests: N passed, N failed, N skipped".
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}; shift || true
"$src/tools/install-deps.sh" || exit 1
"$src/tools/build.sh" "$build" "$@" || exit 1
cd "$build"
make -j"$(nproc)" check; rc=$?
for t in $(ls tests/*/*.log tests/*.log man/*.log 2>/dev/null | grep -v test-suite.log); do
        trs=${t%.log}.trs
        [ -f "$trs" ] && grep -q ":test-result: FAIL" "$trs" && { echo "=== $t"; tail -n 60 "$t"; }
done
pass=$(grep -h '^# PASS:' test-suite.log | awk '{print $3}')
failn=$(grep -h '^# FAIL:' test-suite.log | awk '{print $3}')
errn=$(grep -h '^# ERROR:' test-suite.log | awk '{print $3}')
skipn=$(grep -h '^# SKIP:' test-suite.log | awk '{print $3}')
for t in $(grep -l ':test-result: SKIP' $(find . -name '*.trs')); do echo "skipped: ${t%.trs}"; done
echo "tests: ${pass:-0} passed, $(( ${failn:-0} + ${errn:-0} )) failed, ${skipn:-0} skipped" | tee ci-summary
exit $rc
