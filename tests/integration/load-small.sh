#!/bin/bash
# A CI-sized load run (tests/load/): 8 VMs x 2 real vCPUs converting at once
# for 5 s through one memconvd, then, for every VM while its VMM is still
# attached but idle: every decision reached its vCPU exactly once (the VMM's
# per-vCPU answers against the daemon's counters and its whole history),
# `memconvctl check` finds no problem, and the daemon's map equals the
# VMM's attributes; then every VMM passes its own data checks and detaches,
# and the daemon stops cleanly; then the same with the VMMs converting under a
# policy lease (--lease: pages changed are compared instead of decisions).
# Timings are printed, never asserted.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
command -v python3 > /dev/null 2>&1 || skip "python3 is needed"
out=$(mktemp -d "${TMPDIR:-/tmp}/memconv-load-small.XXXXXX")
trap 'rm -rf "$out"' EXIT
# A history ring big enough for the whole run: the per-vCPU comparison is then exact.
for mode in asked lease; do
        extra=()
        [ "$mode" = lease ] && extra=(--lease)
        echo "--- the load run, $mode"
        python3 "$top_srcdir/tests/load/load.py" --top "$top_builddir" --vms 8 --vcpus 2 --seconds 5 \
                --history-records 1000000 --require-full-history "${extra[@]}" --output "$out/results-$mode.json"
        rc=$?
        [ "$rc" = 77 ] && skip "the load run cannot run here"
        [ "$rc" = 0 ] || fail "the load run failed ($mode, exit $rc)"
done
echo "PASS"
