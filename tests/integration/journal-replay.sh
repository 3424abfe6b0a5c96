#!/bin/bash
# Restoring VMs from their journals builds each attribute map in one sweep
# (daemon/replay.h). This compares everything memconvd restores with what
# the reference build restores from the same files: memconvd-incremental
# applies each record's map update in turn, as memconvd did before (set
# MEMCONVD_REFERENCE=PATH to compare with another memconvd binary).
#
# The journals: 40 random ones (tests/integration/gen-replay-journals:
# interleaved region and change records, rolled-back and refused changes,
# invalid ranges, snapshots in the middle with their SnapshotMore records,
# sequence gaps, torn, zero-filled and corrupt tails), and two of the
# benchmark's fragmented 1 TiB guests (tests/bench/gen-journal), one of them
# compacted as memconvd does. Compared, per VM: memconvctl show (identity,
# regions, bytes, range count, counters), every range of the map, the whole
# history ring (--history-records=64, so it wraps), and the daemon's log
# lines about each journal.
. "${top_srcdir:-.}/tests/integration/lib.sh"
GEN=$top_builddir/tests/integration/gen-replay-journals
BENCH_GEN=$top_builddir/tests/bench/gen-journal
REF=${MEMCONVD_REFERENCE:-$top_builddir/tests/integration/memconvd-incremental}
CTL=$top_builddir/memconvctl
SEED=${MC_TEST_SEED:-1}
[ -x "$GEN" ] || fail "tests/integration/gen-replay-journals was not built"
[ -x "$BENCH_GEN" ] || fail "tests/bench/gen-journal was not built"
[ -x "$REF" ] || fail "the reference $REF was not built"
T=$(mktemp -d "${TMPDIR:-/tmp}/memconv-replay.XXXXXX")
trap 'stop_daemon_quiet; rm -rf "$T"' EXIT

mkdir "$T/journals"
"$GEN" --state-dir "$T/journals" --vms 40 --records 2000 --seed "$SEED" || fail "gen-replay-journals failed"
"$BENCH_GEN" --state-dir "$T/journals" --vm-id 101 --name bench-101 --seed "$SEED" --records 100000 > /dev/null ||
        fail "gen-journal failed"
"$BENCH_GEN" --state-dir "$T/journals" --vm-id 102 --name bench-102 --seed "$SEED" --records 100000 \
        --compact 30000 > /dev/null || fail "gen-journal --compact failed"
echo "seed $SEED: $(ls "$T/journals" | wc -l) journals, $(du -sk "$T/journals" | cut -f1) KiB"

# restore NAME BINARY: start BINARY on a copy of the journals, dump what it restored into $T/NAME
restore() {
        local name=$1 id
        MEMCONVD=$2
        rm -rf "$T/state"
        cp -r "$T/journals" "$T/state"
        mkdir "$T/$name"
        start_daemon --state-dir "$T/state" --admin-socket "$T/admin.sock" --history-records=64 \
                --journal-compact=100000000
        trap 'stop_daemon_quiet; rm -rf "$T"' EXIT
        for _ in $(seq 1000); do "$CTL" --admin-socket "$T/admin.sock" status > /dev/null 2>&1 && break; sleep 0.01; done
        for id in $(seq 1 40) 101 102; do
                "$CTL" --admin-socket "$T/admin.sock" --json show "#$id" > "$T/$name/show-$id" 2>&1 ||
                        echo "(exit $?)" >> "$T/$name/show-$id"
                "$CTL" --admin-socket "$T/admin.sock" --json ranges "#$id" > "$T/$name/ranges-$id" 2>&1 ||
                        echo "(exit $?)" >> "$T/$name/ranges-$id"
                "$CTL" --admin-socket "$T/admin.sock" --json history "#$id" --since 0 > "$T/$name/history-$id" 2>&1 ||
                        echo "(exit $?)" >> "$T/$name/history-$id"
        done
        # Attachment times differ from one start to the next; nothing else may.
        sed -i '/"attached_realtime_usec"/d' "$T/$name"/show-*
        grep -E 'Journal vm-|restored from|Restored ' "$DAEMON_LOG" | sed -e 's/^<[0-9]>//' -e 's/ in [0-9]* ms$//' |
                sort > "$T/$name/log"
        stop_daemon
        rm -rf "$TESTDIR"
        MEMCONVD=$top_builddir/memconvd
}

restore fast "$top_builddir/memconvd"
restore reference "$REF"

if ! diff -r "$T/reference" "$T/fast" > "$T/diff"; then
        head -n 40 "$T/diff" >&2
        fail "memconvd restored something else than $(basename "$REF") ($(grep -c '^[<>]' "$T/diff") lines differ)"
fi
grep -q "Restored 42 VM(s)" "$T/fast/log" || fail "not every journal was restored: $(grep Restored "$T/fast/log")"
# The generated damage is there, so the comparison covers it.
for what in "the tail is cut off" "its snapshot is incomplete"; do
        grep -q "$what" "$T/fast/log" || fail "no journal with \"$what\": the generator no longer covers it"
done
private=$(cat "$T"/fast/ranges-* | grep -c '"attribute": "private"')
[ "$private" -gt 40000 ] || fail "only $private private ranges restored: too few to compare"
echo "same state: $(ls "$T/fast" | wc -l) dumps, $private private ranges, $(grep -c '"seq"' "$T"/fast/history-* |
        awk -F: '{ n += $2 } END { print n }') history records"
echo "PASS"
