#!/bin/bash
# The journal's disk returns EIO (the tests/fault shim in memconvd, switched
# on and off by a flag file), once with the writes failing and once with
# only the syncs failing (the data reached the page cache and must be cut
# off again). memconvd keeps serving and the vCPUs get their answers, but it
# claims no durability it does not have: the failed append is logged with
# its errno and counted, its decisions are never confirmed (Committed), and
# a VMM that detaches afterwards is told that its last changes are not
# durable. Once the disk works, conversions are journaled again, and the
# VM's whole state is rewritten (a snapshot), which makes the lost change
# durable and confirms its decision; after a restart the journal replays
# everything, and the resumed VMM has nothing to re-send.
. "${top_srcdir:-.}/tests/integration/lib.sh"
. "$top_srcdir/tests/fault/fault-lib.sh"
need_kvm

A=0x100000 B=0x180000 C=0x200000 D=0x280000 SIZE=0x10000

private_ranges() { ctl ranges "$1" --private --no-legend | awk '{ printf "%s-%s ", $1, $2 }'; }
confirmed() { [ "$(log_count "Journal $1: append durable")" -ge "$2" ]; }

run_mode() {
        local mode=$1 r
        echo "=== MEMCONV_FAULT_JOURNAL=$mode"
        fault_setup JOURNAL="$mode"
        fault_start_daemon

        # --- the disk works: A is journaled and confirmed
        fvmm_start keep
        fvmm_ok convert $A $SIZE private
        wait_for "A to be confirmed as durable" confirmed vm-1.journal 1

        # --- the disk fails: B is decided and applied, but not durable
        fault_on JOURNAL
        fvmm_ok convert $B $SIZE private
        wait_for "the failed append to be logged" \
                log_has "Journal vm-1.journal: append failed; 1 decision(s) stay unconfirmed" "Input/output error"
        log_has "fault-inject:" "vm-1.journal" "EIO injected" || fail "the shim injected nothing"
        [ "$(stat_of keep journal_errors)" -ge 1 ] || fail "journal_errors does not count the failure"
        confirmed vm-1.journal 2 && fail "B was confirmed as durable"

        # --- the disk works again: C is journaled and confirmed, then the whole state
        # is rewritten, which makes B durable and confirms it
        fault_off JOURNAL
        fvmm_ok convert $C $SIZE private
        wait_for "C to be confirmed as durable" confirmed vm-1.journal 2
        wait_for "the recovery snapshot" \
                log_has "Journal vm-1.journal: VM keep's whole state rewritten: durable again; 1 decision(s)"
        [ "$(private_ranges keep)" = "$A-0x110000 $B-0x190000 $C-0x210000 " ] ||
                fail "before the restart: private ranges $(private_ranges keep)"

        # --- restart: the journal has A, B and C
        stop_daemon
        fault_start_daemon
        log_has "VM keep" "restored from vm-1.journal" || fail "VM keep was not restored"
        r=$(private_ranges keep)
        echo "replayed private ranges: $r"
        [ "$r" = "$A-0x110000 $B-0x190000 $C-0x210000 " ] || fail "the journal replayed $r, not A, B and C"

        # --- the VMM resumes with its next request: B was confirmed, nothing to re-send
        fvmm_ok convert $D $SIZE private
        [ "$(stat_of keep reapplied)" = 0 ] || fail "the VMM re-sent $(stat_of keep reapplied) decisions, expected none"
        r=$(private_ranges keep)
        [ "$r" = "$A-0x110000 $B-0x190000 $C-0x210000 $D-0x290000 " ] || fail "after the resume: private ranges $r"
        fvmm_quit

        # --- a VMM that detaches after a failed write is told its changes are not durable,
        # even though the disk works again by the time it detaches
        fvmm_start gone
        fvmm_ok convert $A $SIZE private
        wait_for "A of VM gone to be confirmed" confirmed "vm-2.journal" 1
        fault_on JOURNAL
        fvmm_ok convert $B $SIZE private
        wait_for "the failed append of VM gone" log_has "Journal vm-2.journal: append failed" "Input/output error"
        fault_off JOURNAL
        fvmm detach
        [ "$FVMM_REPLY" = "error: Input/output error" ] || fail "Detach after a failed journal write: $FVMM_REPLY"
        log_has "VM gone (" "detached" || fail "VM gone was not detached"
        fvmm_quit

        # --- the daemon keeps serving: a real guest's storm while every journal write fails ...
        fault_on JOURNAL
        run_vmm storm --vcpus 2 --scenario storm --iterations 200
        fault_off JOURNAL
        [ "$(stat_of storm journal_errors)" -ge 1 ] || fail "the storm's journal writes did not fail"
        # ... and a new VM once the disk works, journaled and confirmed
        run_vmm after --scenario demo
        id=$(sed -n 's/^.*VM after (.*) attached by .*: id \([0-9]*\).*$/\1/p' "$DAEMON_LOG")
        [ -n "$id" ] || fail "VM after did not attach"
        wait_for "the new VM's conversions to be confirmed" confirmed "vm-$id.journal" 1
        echo "failed appends: $(log_count 'append failed'), confirmed appends: $(log_count 'append durable')," \
             "injected: $(log_count 'fault-inject:')"
        stop_daemon
        [ -n "${KEEP_TESTDIR:-}" ] || rm -rf "$TESTDIR"
}

run_mode eio
run_mode eio-sync
echo "PASS"
