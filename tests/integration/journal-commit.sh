#!/bin/bash
# The journal's commit interval (CommitIntervalMSec=, --journal-commit-interval):
#  - with 100 ms, a two-vCPU storm is written in at most one append per
#    100 ms of wall time (each append is a write and an fdatasync), where
#    --journal-commit-interval=0 writes once per loop iteration;
#  - nothing is lost to the wait: SIGKILL right after the storm, and the
#    restarted daemon's map (from the journal alone) equals the VMM's record;
#  - bad values are refused with a clear error and nothing started.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
CTL=$top_builddir/memconvctl

# ---------------------------------------------------------------- bad values: refused, nothing started
refuse_option journal-commit-interval "0..1000 ms" 1001 -1 abc ""
refuse_key Journal CommitIntervalMSec=5000 "is out of range (0..1000)"

now_ms() { date +%s%3N; }

# storm INTERVAL: a two-vCPU storm against a daemon with that commit interval;
# sets APPENDS (appends made durable, counted once the VMM's Detach was
# answered, i.e. everything was durable) and ELAPSED_MS (its wall time)
storm() {
        start_daemon --journal-commit-interval="$1"
        local t0
        t0=$(now_ms)
        run_vmm storm --vcpus 2 --scenario storm --iterations 600 --seed 7 --state-out "$TESTDIR/vmm.state"
        ELAPSED_MS=$(( $(now_ms) - t0 ))
        # The VMM detaches at the end, answered once everything is durable.
        APPENDS=$(log_count "append durable")
}

command -v python3 >/dev/null || skip "python3 is needed to compare the maps"

storm 0
every=$APPENDS
echo "--journal-commit-interval=0: $every appends for a storm of $ELAPSED_MS ms"
stop_daemon
rm -rf "$TESTDIR"

storm 100
# One append per 100 ms at most, plus the first one and the one after the storm.
bound=$(( ELAPSED_MS / 100 + 3 ))
echo "--journal-commit-interval=100: $APPENDS appends for a storm of $ELAPSED_MS ms (at most $bound allowed)"
[ "$APPENDS" -ge 1 ] || fail "nothing was appended"
[ "$APPENDS" -le "$bound" ] || fail "$APPENDS appends in $ELAPSED_MS ms: the 100 ms commit interval was not kept"
[ "$every" -gt "$APPENDS" ] || fail "the interval did not reduce the appends ($every without, $APPENDS with)"

# Nothing lost: killed without warning, the next daemon has everything from the journal.
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
DAEMON_PID=
"$MEMCONVD" --socket "$SOCK" --state-dir "$TESTDIR/state" --log-target=stderr --log-level=debug 2>>"$DAEMON_LOG" &
DAEMON_PID=$!
for _ in $(seq 300); do "$CTL" --admin-socket "$TESTDIR/admin.sock" status >/dev/null 2>&1 && break; sleep 0.01; done
"$CTL" --admin-socket "$TESTDIR/admin.sock" --json ranges storm > "$TESTDIR/ranges.json" || fail "ranges failed after the restart"
PYTHONPATH="$top_srcdir/tests/integration" python3 - "$TESTDIR/ranges.json" "$TESTDIR/vmm.state" <<'PY' || fail "the restarted daemon's map differs from the VMM's record"
import sys, vmmstate
sys.exit(vmmstate.same_map(sys.argv[1], sys.argv[2]) is None)
PY
stop_daemon
echo "PASS"
