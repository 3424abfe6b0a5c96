#!/bin/sh
# guest-test.sh - the test driver inside the nested guest (busybox sh).
#
# /init runs it once the KVM modules are loaded. It starts one memconvd,
# runs the reference VMM with --vm-type sw-protected for each scenario, and
# checks three things each time: the VMM's own verdict (data), the daemon's
# attribute map and counters (memconvctl show / ranges / history) and its
# log. Every verdict is one console line
#     KVMTEST: PASS name: details      KVMTEST: FAIL name: reason
# which tests/kvm/run.sh turns into results; "KVMTEST: END" closes the run.
PATH=/bin:/sbin:/usr/bin:/usr/sbin
export PATH
T=/tmp/mc
mkdir -p $T
SOCK=$T/vmm.sock
ADMIN=$T/admin.sock
DLOG=$T/daemon.log
VCPUS=${KVMTEST_VCPUS:-2}

say() { echo "KVMTEST: $*"; }
ctl() { memconvctl --admin-socket "$ADMIN" "$@"; }
# field NAME LABEL: the value of "LABEL: value" in memconvctl show
field() { ctl show "$1" | sed -n "s/^ *$2: //p"; }
# logn PATTERN...: daemon log lines containing every pattern
logn() {
        awk -v n=$# 'BEGIN { for (i = 1; i <= n; i++) p[i] = ARGV[i]; ARGC = 1 }
                     { ok = 1; for (i = 1; i <= n; i++) if (index($0, p[i]) == 0) { ok = 0; break } }
                     ok { c++ } END { print c + 0 }' "$@" < "$DLOG"
}

memconvd --socket "$SOCK" --admin-socket "$ADMIN" --state-dir $T/state --log-target=stderr --log-level=debug \
        --summary-interval=100000 2> "$DLOG" &
DPID=$!
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -S "$SOCK" ]; then
        say "FAIL setup: memconvd did not start"; tail -n 20 "$DLOG"; say END; exit 1
fi

# vmm NAME SCENARIO [options]: run one VMM; the output is in $T/NAME.out
vmm() {
        name=$1; sc=$2; shift 2
        t0=$(date +%s)
        timeout -s KILL "${KVMTEST_VMM_TIMEOUT:-180}" memconv-vmm --socket "$SOCK" --name "$name" \
                --vm-type sw-protected --vcpus "$VCPUS" --scenario "$sc" "$@" > "$T/$name.out" 2>&1
        rc=$?
        echo "--- $name: memconv-vmm exit $rc after $(( $(date +%s) - t0 )) s"
        if [ $rc = 137 ]; then
                echo "--- $name: HUNG, killed after ${KVMTEST_VMM_TIMEOUT:-180} s; the daemon's view:"
                ctl show "$name"
                grep -v 'MEMCONV_EVENT=change' "$DLOG" | grep -F "$name" | tail -n 10
                grep -E 'KVM_EXIT|race:' "$T/$name.out" | tail -n 8
        fi
        grep -v '^demo:' "$T/$name.out" | tail -n 12
        return $rc
}

# common NAME: checks every scenario shares; prints nothing, returns a reason
common() {
        name=$1
        grep -q 'attribute backend: kvm' "$T/$name.out" || { echo "not the kvm attribute backend"; return; }
        grep -q 'VM type sw-protected, MAP_GPA_RANGE by vmmcall' "$T/$name.out" || { echo "no sw-protected VM with vmmcall"; return; }
        grep -qE '^vmm: [0-9]+ passed, 0 failed' "$T/$name.out" || { echo "the VMM failed: $(grep -m1 FAIL "$T/$name.out")"; return; }
        [ "$(logn "VM $name (" "cc type CC_TYPE_SW_PROTECTED")" -ge 1 ] || { echo "daemon log: no sw-protected attach"; return; }
        [ "$(logn "VM $name (" "detached")" -ge 1 ] || { echo "daemon log: no detach"; return; }
        field "$name" Platform | grep -q 'sw-protected' || { echo "memconvctl show: platform $(field "$name" Platform)"; return; }
}

realx() { sed -n 's/^vmm: real KVM exits: //p' "$T/$1.out"; }
num() { sed -n "s/.*$2: \([0-9]*\).*/\1/p" "$T/$1.out" | head -n 1; }

check() {
        name=$1; shift
        why=$(common "$name")
        [ -z "$why" ] && why=$("$@")
        if [ -z "$why" ]; then
                say "PASS $name: $(realx "$name"); daemon: $(field "$name" Conversions)"
        else
                say "FAIL $name: $why"
                tail -n 30 "$T/$name.out"
                grep -F "VM $name" "$DLOG" | tail -n 10
        fi
}

map_all_shared() {
        m=$(field "${1:-$name}" Memory)
        case "$m" in "0 private"*) ;; *) echo "daemon map not all shared at the end: $m";; esac
}

# explicit: real vmmcall exits, RAX checked by the scenario; refusals.
vmm explicit explicit
chk_explicit() {
        hc=$(sed -n 's/.*hypercall: \([0-9]*\).*/\1/p' "$T/explicit.out")
        [ "${hc:-0}" -gt 0 ] || { echo "no real KVM_EXIT_HYPERCALL"; return; }
        [ "$(logn "MEMCONV_VM=explicit" "MEMCONV_EVENT=refused")" -ge 1 ] || { echo "daemon log: no refusal"; return; }
        ctl history explicit | grep -q 'explicit  map-gpa-range' || { echo "history: no map-gpa-range records"; return; }
        map_all_shared explicit
}
check explicit chk_explicit

# implicit: the guest's view announcements, applied with the real ioctl.
vmm implicit implicit
chk_implicit() {
        ctl history implicit | grep -q 'implicit  memory-fault' || { echo "history: no memory-fault records"; return; }
}
check implicit chk_implicit

# race: KVM's own memory faults (flags 0x8 and 0) from conversions racing reads.
vmm race race --iterations "${KVMTEST_RACE_ITERATIONS:-300}" --verbose
chk_race() {
        f8=$(grep -c 'KVM_EXIT_MEMORY_FAULT .* flags 0x8$' "$T/race.out")
        f0=$(grep -c 'KVM_EXIT_MEMORY_FAULT .* flags 0x0$' "$T/race.out")
        [ $((f8 + f0)) -gt 0 ] || { echo "no real KVM_EXIT_MEMORY_FAULT"; return; }
        echo "$f8 $f0" > $T/race.counts
        # Whether a racing fault still needs a conversion when memconvd sees it depends on the
        # interleaving (single-threaded TCG races less): count them, but only require that
        # those the daemon converted are in its history.
        nconv=$(logn "MEMCONV_VM=race" "MEMCONV_EVENT=change" "MEMCONV_SOURCE=memory-fault")
        echo "race: $nconv conversions from real memory faults" >&2
        if [ "$nconv" -ge 1 ]; then
                ctl history race | grep -q 'implicit  memory-fault' || { echo "history: no memory-fault records"; return; }
        fi
        map_all_shared race
}
check race chk_race
[ -f $T/race.counts ] && echo "race: real memory faults flags 0x8 / 0x0: $(cat $T/race.counts); example lines:" &&
        grep -m 2 'flags 0x8$' "$T/race.out"; grep -m 2 'flags 0x0$' "$T/race.out"
grep -m 3 'KVM_EXIT_HYPERCALL' "$T/race.out"

# private: raw views - private data unseen, zeros after discards, refusals.
vmm private private
chk_private() {
        grep -q 'RAX 0xffffffea' "$T/private.out" || { echo "no refused MAP_GPA_RANGE with RAX -22"; return; }
        [ "$(logn "MEMCONV_VM=private" "MEMCONV_EVENT=refused")" -ge 1 ] || { echo "daemon log: no refusal"; return; }
        map_all_shared private
}
check private chk_private
grep 'RAX' "$T/private.out"

# selftest: private_mem_conversions_test's ranges and patterns on every vCPU.
vmm selftest selftest
check selftest map_all_shared

# data: discarded backings read as zeros and are holes.
vmm data data
check data map_all_shared

# killed: the VMM SIGKILLed in a storm; the daemon releases guest_memfd, keeps the history.
before=$(sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo)
memconv-vmm --socket "$SOCK" --name killed --vm-type sw-protected --vcpus "$VCPUS" --mem-mb 64 \
        --scenario storm --iterations 1000000 > $T/killed.out 2>&1 &
vpid=$!
i=0
while [ "$(logn "MEMCONV_VM=killed" "MEMCONV_EVENT=change")" -lt 300 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
held() { ls -l /proc/$DPID/fd 2>/dev/null | grep -c 'kvm-gmem'; }
nh=$(held)
during=$(sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo)
kill -KILL $vpid
wait $vpid 2>/dev/null
i=0
while [ "$(held)" -gt 0 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
sleep 0.5
after=$(sed -n 's/^MemAvailable: *\([0-9]*\).*/\1/p' /proc/meminfo)
nchanges=$(logn "MEMCONV_VM=killed" "MEMCONV_EVENT=change")
nhist=$(ctl history killed --no-legend 2>/dev/null | grep -c 'committed')
echo "killed: gmem fds held during the storm $nh, after $(held); MemAvailable kB before $before, during $during, after $after; $nchanges changes logged, $nhist history records"
if [ "$nchanges" -lt 300 ]; then
        say "FAIL killed: the storm did not start"; tail -n 20 $T/killed.out
elif [ "$nh" -lt 1 ]; then
        say "FAIL killed: the daemon held no guest_memfd during the storm"
elif [ "$(held)" -gt 0 ]; then
        say "FAIL killed: the daemon still holds the guest_memfd after the VMM died"
elif [ "$(logn "VM killed (" "detached")" -lt 1 ]; then
        say "FAIL killed: no detach record in the daemon log"
elif [ "$nhist" -lt 1 ] || ! field killed State | grep -q detached; then
        say "FAIL killed: the history was not kept ($nhist records, state $(field killed State))"
else
        say "PASS killed: guest_memfd released, $nhist history records kept, state $(field killed State | cut -d, -f1), $(field killed Memory)"
fi

kill -TERM $DPID
wait $DPID
echo "memconvd exit status $?"

# policy: a daemon whose explicit-only plugin refuses implicit conversions.
# The implicit scenario's first memory fault is refused: neither KVM's
# attributes (the VMM sets them with the real ioctl only when told to; its
# record must stay all shared) nor the daemon's map change.
printf '[Policy]\nPluginDirectory=/lib/memconvd/plugins\nPlugins=explicit-only\n[Plugin explicit-only]\naction=refuse\n' > $T/policy.conf
: > "$DLOG"
memconvd --config $T/policy.conf --socket "$SOCK" --admin-socket "$ADMIN" --state-dir $T/state2 --log-target=stderr \
        --log-level=debug --summary-interval=100000 2> "$DLOG" &
DPID=$!
i=0
while [ ! -S "$ADMIN" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
timeout -s KILL "${KVMTEST_VMM_TIMEOUT:-180}" memconv-vmm --socket "$SOCK" --name policy --vm-type sw-protected \
        --vcpus 1 --scenario implicit --verbose --state-out $T/policy.state > $T/policy.out 2>&1
prc=$?
nref=$(logn "MEMCONV_VM=policy" "MEMCONV_EVENT=refused" "MEMCONV_CODE=policy-refused")
nimpl=$(logn "MEMCONV_VM=policy" "MEMCONV_EVENT=change" "MEMCONV_KIND=implicit")
priv=$(grep -c ' private$' $T/policy.state 2>/dev/null)
pmap=$(ctl ranges policy --private --no-legend 2>/dev/null | grep -c private)
echo "policy: memconv-vmm exit $prc; $nref refused by policy, $nimpl implicit changes, VMM record private ranges $priv, daemon map private ranges $pmap"
grep -m 3 -E 'refused|FAIL' $T/policy.out
if [ "$prc" = 137 ]; then
        say "FAIL policy: the VMM hung"
elif [ "$prc" = 0 ]; then
        say "FAIL policy: implicit conversions succeeded despite explicit-only"
elif [ "$nref" -lt 1 ]; then
        say "FAIL policy: the daemon refused nothing"
elif [ "$nimpl" -ne 0 ] || [ "${priv:-0}" -ne 0 ] || [ "${pmap:-0}" -ne 0 ]; then
        say "FAIL policy: something changed despite the refusal ($nimpl changes, $priv/$pmap private ranges)"
else
        say "PASS policy: $nref refused by explicit-only; KVM's attributes (VMM record) and the daemon's map unchanged"
fi
kill -TERM $DPID
wait $DPID
say END
