#!/bin/bash
# A VMM killed (SIGKILL) in the middle of a conversion storm: the daemon must
# release the VM's guest_memfd and shared memory within a second, keep serving
# other VMMs, and still shut down cleanly.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
start_daemon

"$VMM" --socket "$SOCK" --name doomed --vcpus 2 --scenario storm --iterations 1000000 > "$TESTDIR/doomed.out" 2>&1 &
vmm=$!
for _ in $(seq 1 200); do
        [ "$(log_count 'MEMCONV_VM=doomed')" -gt 200 ] && break
        sleep 0.02
done
[ "$(log_count 'MEMCONV_VM=doomed')" -gt 200 ] || { cat "$TESTDIR/doomed.out"; fail "the storm did not start"; }
held() { ls -l /proc/"$DAEMON_PID"/fd 2>/dev/null | grep -c -e 'kvm-gmem' -e 'memfd:' ; }
[ "$(held)" -gt 0 ] || fail "daemon holds no guest fds during the storm"
kill -KILL $vmm
t0=$(date +%s%N)
while [ "$(held)" -gt 0 ]; do
        [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 1000 ] || fail "guest fds still open 1 s after the VMM died"
        sleep 0.001
done
echo "guest memory released $(( ($(date +%s%N) - t0) / 1000 )) us after SIGKILL"
wait $vmm 2>/dev/null
log_has "VM doomed (" "detached: the VMM disconnected" || fail "no detach record"
# The daemon still serves others.
run_vmm after --scenario demo
stop_daemon
echo "PASS"
