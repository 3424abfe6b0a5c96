#!/bin/bash
# Two VMMs on one daemon at the same time, each converting its own memory on
# two vCPUs with data checks: neither disturbs the other.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
start_daemon

run_vmm vm-one --vcpus 2 --scenario storm --scenario selftest --iterations 300 --seed 1 &
p1=$!
run_vmm vm-two --vcpus 2 --scenario storm --scenario data --iterations 300 --seed 2 &
p2=$!
wait $p1 || fail "vm-one failed"
wait $p2 || fail "vm-two failed"
for vm in vm-one vm-two; do
        log_has MEMCONV_EVENT=change "MEMCONV_VM=$vm " || fail "no change records for $vm"
        log_has "VM $vm (" "detached: the VMM detached" || fail "$vm did not detach cleanly"
done
[ "$(grep -c 'attached by pid' "$DAEMON_LOG")" = 2 ] || fail "expected exactly two attaches"
stop_daemon
echo "PASS"
