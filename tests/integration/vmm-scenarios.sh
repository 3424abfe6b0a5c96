#!/bin/bash
# The reference VMM's real KVM guests converting through a real memconvd:
# explicit and implicit conversions on two vCPUs, the KVM selftest
# private_mem_conversions_test scenarios, data semantics (discarded backing
# reads as zeros / is a hole), and a random storm; then the structured log
# records the daemon must have written for them.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
start_daemon --summary-interval=100

run_vmm scen --vcpus 2 --scenario explicit --scenario implicit --scenario selftest --scenario data
run_vmm storm --vcpus 2 --scenario storm --iterations 400 --seed 7 --state-out "$TESTDIR/storm.state"

# Every change is a structured record with the fields operators filter on.
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_KIND=explicit MEMCONV_SOURCE=map-gpa-range MEMCONV_FROM=shared MEMCONV_TO=private \
        || fail "no explicit to-private change record"
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_KIND=explicit MEMCONV_TO=shared || fail "no explicit to-shared record"
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_KIND=implicit MEMCONV_SOURCE=memory-fault MEMCONV_TO=private \
        || fail "no implicit (flags PRIVATE) record"
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_KIND=implicit MEMCONV_TO=shared || fail "no implicit (flags 0) record"
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_VCPU=1 || fail "no record from vCPU 1"
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_SIZE=0x200000 || fail "no 2 MiB conversion record"
log_has MEMCONV_EVENT=refused MEMCONV_VM=scen MEMCONV_CODE= || fail "no refusal record"
log_has MEMCONV_EVENT=summary MEMCONV_VM=storm MEMCONV_CHANGES= || fail "no rate-limited summary record"
# Records carry the VM's identity and the decision that made them.
log_has MEMCONV_EVENT=change MEMCONV_VM_UUID= MEMCONV_REQUEST= MEMCONV_DECISION= MEMCONV_DECISION_USEC= \
        || fail "change records lack identity fields"
# No discard failed, nothing was abandoned or rolled back.
! grep -qE "discarding .* failed|abandoned|rolled back" "$DAEMON_LOG" || fail "unexpected discard failure or rollback"
[ -s "$TESTDIR/storm.state" ] || fail "the VMM wrote no state record"
echo "storm: $(grep -c "MEMCONV_EVENT=change.*MEMCONV_VM=storm " "$DAEMON_LOG") change records"
stop_daemon
echo "PASS"
