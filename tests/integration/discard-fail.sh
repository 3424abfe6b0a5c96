#!/bin/bash
# Discards fail: fallocate(PUNCH_HOLE) returns EIO in memconvd (the
# tests/fault shim, switched on and off by a flag file). Conversions still
# succeed for the vCPUs (the discard is off their path); the failure is
# logged with its errno, counted, and shown by `memconvctl check`; memconvd
# retries with backoff, and once the fault is gone the retry punches the
# stale backing for real (seen in the VMM's own fds) and `check` is clean.
# A range converted back before the retry keeps the data the guest wrote
# after converting it back: the retry punches the side that is stale now,
# never the side the failed discard named. Each VM backs off on its own.
. "${top_srcdir:-.}/tests/integration/lib.sh"
. "$top_srcdir/tests/fault/fault-lib.sh"
need_kvm

A=0x100000 ASIZE=0x10000   # goes private; its shared side must be punched
B=0x200000 BSIZE=0x1000    # goes private and back to shared before any retry works

fault_setup FALLOCATE=eio
fault_start_daemon
fault_on FALLOCATE

# --- a VMM that stays attached while the fault comes and goes
fvmm_start retry
fvmm_ok fill gmem $A $ASIZE 0xa1            # what the guest will own privately
fvmm_ok fill shared $A $ASIZE 0x5a          # its shared copy, stale once A is private
fvmm_ok convert $A $ASIZE private           # the vCPU is answered although the discard fails
fvmm_ok fill gmem $B $BSIZE 0xb1
fvmm_ok convert $B $BSIZE private
fvmm_ok convert $B $BSIZE shared
fvmm_ok fill shared $B $BSIZE 0xb2          # the guest writes B after converting it back

check_has_failed() {
        local out
        out=$(ctl check retry --no-legend) && return 1   # exit 1: problems found
        echo "$out" | grep -q "^discard-failed *$A " && echo "$out" | grep -q "^discard-failed *$B "
}
wait_for "check to report both failed discards" check_has_failed
ctl check retry
log_has "VM retry: discarding shared backing of [$A, 0x110000)" "failed" "retrying in" "Input/output error" ||
        fail "the failed discard of A is not logged with its errno"
log_has "VM retry: discarding guest_memfd backing of [$B, 0x201000)" "failed" "Input/output error" ||
        fail "the failed discard of B (back to shared) is not logged"
# The retries run and fail while the fault lasts; the stale data is still there.
wait_for "a retry that fails again" log_has "VM retry: discarding" "failed again"
fvmm_ok expect shared $A $ASIZE 0x5a
fvmm "data shared $A $ASIZE"
[ "$FVMM_REPLY" = data ] || fail "the shared side of A was punched although every punch failed"
[ "$(stat_of retry discard_errors)" -ge 3 ] || fail "discard_errors does not count the failures"

# --- the fault goes away: the next retry works
fault_off FALLOCATE
check_clean() { ctl check retry > /dev/null; }
wait_for "check to report no problems after the retry" check_clean
ctl check retry | tee "$TESTDIR/check.out"
grep -q "no problems found" "$TESTDIR/check.out" || fail "check does not say the VM is clean"
log_has "VM retry: discarding shared backing of [$A, 0x110000) succeeded on retry" ||
        fail "no record of the successful retry of A"
log_has "VM retry: discarding guest_memfd backing of [$B, 0x201000) succeeded on retry" ||
        fail "no record of the successful retry of B's stale private side"
if log_has "VM retry: discarding shared backing of [$B," "succeeded"; then
        fail "a retry punched B's shared side, which the guest uses since it converted B back"
fi
[ "$(stat_of retry discard_retries)" -ge 2 ] || fail "discard_retries does not count the retries"

# What the VMM sees in its own fds: A's stale shared pages are gone (a hole),
# its private data is intact; B's shared data survived, its private side is zeros.
fvmm "data shared $A $ASIZE"
[ "$FVMM_REPLY" = hole ] || fail "the shared backing of A is still allocated after the retry"
fvmm_ok expect gmem $A $ASIZE 0xa1
fvmm "expect shared $B $BSIZE 0xb2"
[ "$FVMM_REPLY" = ok ] || fail "the guest's shared data in B was destroyed by the retry: $FVMM_REPLY"
fvmm_ok expect gmem $B $BSIZE 0
fvmm_quit

# --- real vCPUs: a guest converting while every discard fails is not held up
fault_on FALLOCATE
run_vmm vcpus --vcpus 2 --scenario bench --iterations 50
fault_off FALLOCATE
conversions=$(( $(stat_of vcpus explicit_to_private) + $(stat_of vcpus explicit_to_shared) ))
errors=$(stat_of vcpus discard_errors)
echo "vcpus: $conversions conversions, $(stat_of vcpus discards) discards, $errors failed"
[ "$conversions" -ge 100 ] || fail "the guest made $conversions conversions, expected at least 100"
# Every conversion's discard failed at least once (retries may add more).
[ "$errors" -ge "$conversions" ] || fail "$errors failed discards for $conversions conversions"
log_has "VM vcpus: discarding" "failed" "Input/output error" || fail "the vCPU VM's failed discards are not logged"

# --- under a lease: a failed discard revokes it, and the retry waits until the
# VMM (idle, through its reader thread) has returned it; then all is punched.
fault_on FALLOCATE
"$VMM" --socket "$SOCK" --name lvcpus --vcpus 2 --lease --scenario bench --iterations 50 --hold \
        > "$TESTDIR/lvcpus.out" 2>&1 &
LPID=$!
held() { grep -q "^vmm: holding" "$TESTDIR/lvcpus.out"; }
wait_for "the leased VMM to finish its conversions" held
grep -q "^PASS bench" "$TESTDIR/lvcpus.out" || { cat "$TESTDIR/lvcpus.out"; fail "the leased VMM failed"; }
log_has "VM lvcpus: lease" "revoked: a discard failed" || fail "a failed discard did not revoke the lease"
fault_off FALLOCATE
lclean() { ctl check lvcpus > /dev/null; }
for _ in $(seq 2000); do lclean && break; sleep 0.02; done  # the backoff may have grown: up to 40 s
lclean || fail "the leased VM's failed discards were not retried after its lease came back"
log_has "VM lvcpus: lease" "returned" || fail "the lease was never returned"
# Every retry ran with the lease returned: no grant and no retry overlap (one line per event, in order).
awk '/VM lvcpus: lease [0-9]+ granted/ { g = 1 } /VM lvcpus: lease [0-9]+ returned/ { g = 0 }
     /VM lvcpus: retrying the discard/ && g { bad = 1 } END { exit bad }' "$DAEMON_LOG" ||
        fail "a discard was retried while the VMM held a lease"
kill -USR1 $LPID
wait $LPID || { cat "$TESTDIR/lvcpus.out"; fail "the leased VMM failed"; }
grep "^vmm: lease:" "$TESTDIR/lvcpus.out"
echo "lvcpus: $(stat_of lvcpus leased) conversions under a lease, $(stat_of lvcpus discard_errors) failed discards," \
     "$(stat_of lvcpus lease_revocations) revocation(s)"
# Granted at the start, revoked by the first failed discard, granted again once all were retried.
# (How many conversions ran under it before the revocation is a race, and may be none.)
[ "$(stat_of lvcpus lease_revocations)" -ge 1 ] || fail "the lease was not revoked"
[ "$(stat_of lvcpus lease_grants)" -ge 2 ] || fail "the lease was not granted again after the retries"
# --- each VM backs off on its own: one whose discards keep failing ("stuck")
# neither delays the first retry of another's ("fresh"), nor has its backoff
# reset when the other's retry works.
fault_on FALLOCATE fault-vmm-stuck-shared     # only stuck's shared memory
fvmm_start stuck
fvmm_ok fill shared $A $ASIZE 0x5a
fvmm_ok convert $A $ASIZE private
wait_for "stuck's backoff to reach 800 ms" log_has "VM stuck: discarding shared backing" "failed again; retrying in 800 ms"
fvmm2_start fresh
fault_on FALLOCATE fault-vmm-                 # both VMs' shared memory
fvmm2_ok fill shared $A $ASIZE 0x6b
fvmm2_ok convert $A $ASIZE private
wait_for "fresh's discard to fail" log_has "VM fresh: discarding shared backing" "failed;"
first=$(grep -F "VM fresh: discarding shared backing" "$DAEMON_LOG" | grep -F "failed;" | head -n 1)
echo "fresh: ${first#*failed}"
case $first in
*"retrying in 100 ms"*) ;;
*) fail "fresh's first retry does not come after the first step of its own backoff: $first" ;;
esac
fault_on FALLOCATE fault-vmm-stuck-shared
wait_for "fresh's retry to succeed" log_has "VM fresh: discarding shared backing" "succeeded on retry"
ctl check fresh > /dev/null || fail "fresh still has failed discards after its retry succeeded"
fvmm2 "data shared $A $ASIZE"
[ "$FVMM_REPLY" = hole ] || fail "fresh's stale shared backing is still allocated: $FVMM_REPLY"
if ctl check stuck > /dev/null; then fail "stuck has no failed discard although every punch of it fails"; fi
stuck_fails() { grep -F "VM stuck: discarding shared backing" "$DAEMON_LOG" | grep -cF "failed again"; }
n=$(stuck_fails)
more_fails() { [ "$(stuck_fails)" -gt "$n" ]; }
wait_for "stuck's next retry" more_fails
grep -F "VM stuck: discarding shared backing" "$DAEMON_LOG" | grep -F "failed again" | tail -n +"$((n + 1))" |
        grep -q "retrying in 100 ms" && fail "fresh's successful retry reset stuck's backoff"
echo "stuck: $(stuck_fails) failed retries, still backing off: $(grep -F "VM stuck: discarding" "$DAEMON_LOG" |
        tail -n 1 | sed 's/.*retrying in/retrying in/')"
fault_off FALLOCATE
fvmm2_quit
fvmm_quit

echo "injected punch failures: $(log_count 'fault-inject: fallocate')"
stop_daemon
echo "PASS"
