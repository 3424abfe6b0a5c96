#!/bin/bash
# memconvd as the shipped service unit runs it (CPUSchedulingPolicy=batch,
# here `chrt --batch 0`): every thread it has while serving a guest (event
# loop, discard workers, journal thread) is SCHED_BATCH, none resets its
# policy, and conversions work; memconvd(8) SCHEDULING relies on that.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
command -v chrt >/dev/null || skip "chrt (util-linux) is needed"
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-sched.XXXXXX")
SOCK=$TESTDIR/vmm.sock
DAEMON_LOG=$TESTDIR/daemon.log
trap 'kill $DAEMON_PID 2>/dev/null; wait 2>/dev/null; rm -rf "$TESTDIR"' EXIT

chrt --batch 0 "$MEMCONVD" --socket "$SOCK" --state-dir "$TESTDIR/state" --discard-threads=2 \
        --log-target=stderr 2>"$DAEMON_LOG" &
DAEMON_PID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.01; done
[ -S "$SOCK" ] || fail "memconvd did not start under chrt --batch"

run_vmm batch --vcpus 2 --scenario explicit --lease

policies() {
        local t
        for t in /proc/"$DAEMON_PID"/task/*; do
                chrt -p "${t##*/}" | sed -n 's/.*current scheduling policy: //p'
        done
}
threads=$(policies | wc -l)
batch=$(policies | grep -c '^SCHED_BATCH$')
echo "memconvd has $threads threads, $batch of them SCHED_BATCH"
# the event loop, two discard workers, the journal thread
[ "$threads" -ge 4 ] || fail "expected at least 4 threads, found $threads"
[ "$batch" = "$threads" ] || { policies; fail "a thread of memconvd is not SCHED_BATCH"; }
grep -q "passed, 0 failed" "$TESTDIR/batch.out" || fail "the guest's conversions failed"
echo "PASS"
