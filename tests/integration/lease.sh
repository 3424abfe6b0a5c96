#!/bin/bash
# Leases with real vCPUs: the reference VMM asks memconvd for a lease and
# converts under it on its vCPU threads (memconv-protocol(7), LEASES).
# The guests' own data checks (discarded backing reads as zeros, nothing
# the guest wrote is lost) run all along. At the end of a 2-vCPU storm,
# held attached:
#  - most conversions were done under the lease, and memconvd counted them;
#  - memconvd's map equals the VMM's own record, and `check` finds no
#    memory backed twice (every leased conversion's stale side was
#    discarded);
#  - a reload revokes the lease while the vCPUs are idle: the VMM's
#    reader thread returns it (mc_client_dispatch()) and a new one comes;
#  - bad report delays (option and key) are refused, and nothing starts.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
command -v python3 >/dev/null || skip "python3 is needed to compare the maps"
CTL=$top_builddir/memconvctl

# ------------------------------------------ bad report delays: refused, nothing started
refuse_option lease-report-delay "0..100000 us" 100001 -1 abc ""
refuse_key Policy LeaseReportDelayUSec=200000 "is out of range (0..100000)"
echo "bad report delays refused: 4 options, 1 configuration key"

start_daemon
ctl() { "$CTL" --admin-socket "$TESTDIR/admin.sock" "$@"; }

run_vmm scen --vcpus 2 --lease --scenario explicit --scenario implicit --scenario selftest --scenario data
leased=$(sed -n 's/^vmm: lease: \([0-9]*\) leased.*/\1/p' "$TESTDIR/scen.out")
echo "scenarios: $leased conversion(s) under the lease"
[ "${leased:-0}" -gt 0 ] || fail "no conversion of the scenarios was done under the lease"

"$VMM" --socket "$SOCK" --name storm --vcpus 2 --lease --scenario storm --iterations 600 --seed 11 \
        --state-out "$TESTDIR/storm.state" --hold > "$TESTDIR/storm.out" 2>&1 &
VMMPID=$!
for _ in $(seq 6000); do
        grep -q "^vmm: holding" "$TESTDIR/storm.out" && break
        kill -0 $VMMPID 2>/dev/null || { cat "$TESTDIR/storm.out"; fail "the storm VMM exited early"; }
        sleep 0.05
done
grep -q "^vmm: holding" "$TESTDIR/storm.out" || fail "the storm did not finish"
grep -q "^PASS storm" "$TESTDIR/storm.out" || { cat "$TESTDIR/storm.out"; fail "the storm's data checks failed"; }

ctl --json show storm > "$TESTDIR/show.json" || fail "show failed"
ctl --json ranges storm > "$TESTDIR/ranges.json" || fail "ranges failed"
PYTHONPATH="$top_srcdir/tests/integration" python3 - "$TESTDIR/show.json" "$TESTDIR/ranges.json" "$TESTDIR/storm.state" <<'PY' || fail "lease storm: state differs"
import json, sys, vmmstate
vm = json.load(open(sys.argv[1]))
st = vm["stats"]
committed = st["explicit_to_private"] + st["explicit_to_shared"] + st["implicit_to_private"] + st["implicit_to_shared"]
print("storm: %d committed conversions, %d under the lease; lease: %s" % (committed, st["leased"], vm["lease"]))
if st["leased"] * 2 < committed:
    print("fewer than half of the conversions went under the lease"); sys.exit(1)
if not vm["lease"].startswith("granted"):
    print("no lease in force"); sys.exit(1)
if vmmstate.same_map(sys.argv[2], sys.argv[3]) is None:
    sys.exit(1)
PY
# Every discard is done once the conversions are settled: nothing is backed twice.
for _ in $(seq 200); do ctl check storm > "$TESTDIR/check.out" 2>&1 && break; sleep 0.05; done
cat "$TESTDIR/check.out"
grep -q "no problems found" "$TESTDIR/check.out" || fail "check found problems after the leased storm"

# Revoked while the vCPUs are idle: returned by the VMM's reader thread, then granted anew.
grants=$(ctl --json show storm | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["lease_grants"])')
kill -HUP "$DAEMON_PID"
for _ in $(seq 200); do
        now=$(ctl --json show storm | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["lease_grants"])')
        [ "$now" -gt "$grants" ] && break
        sleep 0.05
done
[ "$now" -gt "$grants" ] || fail "the lease revoked by a reload was not returned and granted again"
log_has "lease" "returned" || fail "no lease return logged"
echo "reload: lease revoked, returned by the idle VMM, granted again (grants $grants -> $now)"

kill -USR1 $VMMPID
wait $VMMPID || { cat "$TESTDIR/storm.out"; fail "the storm VMM failed"; }
grep "^vmm: lease:" "$TESTDIR/storm.out"
stop_daemon
echo "PASS"
