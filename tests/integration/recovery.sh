#!/bin/bash
# Durable state and recovery: a reference VMM runs a conversion storm on two
# vCPUs, checking its data all along, while memconvd is killed with SIGKILL at
# random points and restarted on the same state directory. The VMM must not
# notice beyond a pause. At the end:
#  - the daemon's attribute map equals the VMM's own record of what it applied;
#  - the history holds every change exactly once: replayed from all-shared,
#    every committed record changes what it says it changes (a duplicate
#    would not), and the replay ends in that same map;
# then the same with frequent compaction (kills land during compactions), and
# a truncated and a bit-flipped journal: the damage is reported and cut off,
# the state before it kept.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
command -v python3 >/dev/null || skip "python3 is needed to compare JSON output"
CTL=$top_builddir/memconvctl
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-rec.XXXXXX")
trap 'kill $DAEMON_PID 2>/dev/null; kill $VMMPID 2>/dev/null; wait 2>/dev/null; rm -rf "$TESTDIR"' EXIT
SOCK=$TESTDIR/vmm.sock
DAEMON_LOG=$TESTDIR/daemon.log

daemon_up() {
        "$MEMCONVD" --socket "$SOCK" --state-dir "$TESTDIR/state" --history-records=1000000 --log-target=stderr --log-level=info "$@" \
                2>>"$DAEMON_LOG" &
        DAEMON_PID=$!
        for _ in $(seq 300); do
                "$CTL" --admin-socket "$TESTDIR/admin.sock" status >/dev/null 2>&1 && return 0
                sleep 0.01
        done
        fail "memconvd did not come up"
}

# compare VM: daemon map (memconvctl) == VMM record == replay of the history
compare() {
        "$CTL" --admin-socket "$TESTDIR/admin.sock" --json ranges "$1" > "$TESTDIR/ranges.json" || fail "ranges failed"
        "$CTL" --admin-socket "$TESTDIR/admin.sock" --json history "$1" > "$TESTDIR/history.json" || fail "history failed"
        PYTHONPATH="$top_srcdir/tests/integration" python3 - "$TESTDIR/ranges.json" "$TESTDIR/history.json" \
                "$TESTDIR/vmm.state" "$2" <<'PY' || fail "state comparison failed"
import json, sys
from vmmstate import pages, same_map
history = json.load(open(sys.argv[2]))["records"]
check_history = sys.argv[4] == "history"
daemon = same_map(sys.argv[1], sys.argv[3])
if daemon is None:
    sys.exit(1)
if not check_history:
    sys.exit(0)
seqs = [r["seq"] for r in history]
if seqs != list(range(1, len(seqs) + 1)):
    print("history sequence has gaps or repeats"); sys.exit(1)
state = set()
committed = 0
for r in history:
    if r["result"] != "committed":
        continue
    committed += 1
    pg = pages([(r["gpa"], r["size"])])
    want_from_private = r["from"] == "private"
    if any((p in state) != want_from_private for p in pg):
        print("record %d changes pages that were not %s: a duplicate or a lost change" % (r["seq"], r["from"]))
        sys.exit(1)
    if r["to"] == "private":
        state |= pg
    else:
        state -= pg
if state != daemon:
    print("replaying the history does not give the map"); sys.exit(1)
print("history: %d records, %d committed, each exactly once; its replay gives the map" % (len(history), committed))
PY
}

storm_with_kills() {
        local name=$1 kills=$2; shift 2
        "$VMM" --socket "$SOCK" --name "$name" --vcpus 2 --scenario storm --iterations 1200 --seed $RANDOM \
                ${VMM_EXTRA:-} --state-out "$TESTDIR/vmm.state" > "$TESTDIR/$name.out" 2>&1 &
        VMMPID=$!
        # The kills start once the VMM has attached: a daemon killed before
        # that would only test the VMM's first connect, which does not retry.
        for _ in $(seq 1000); do
                "$CTL" --admin-socket "$TESTDIR/admin.sock" show "$name" 2>/dev/null | grep -q "State: attached" && break
                kill -0 $VMMPID 2>/dev/null || break
                sleep 0.01
        done
        for i in $(seq "$kills"); do
                sleep "0.$(( RANDOM % 6 + 2 ))"
                kill -0 $VMMPID 2>/dev/null || break
                kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
                sleep "0.0$(( RANDOM % 5 ))"
                daemon_up "$@"
        done
        wait $VMMPID; rc=$?
        cat "$TESTDIR/$name.out"
        [ "$rc" = 0 ] || fail "the VMM's storm failed across daemon restarts"
        echo "$name: daemon killed $i times during the storm"
}

# 1. no compaction: the whole history stays in the journal
daemon_up --journal-compact=100000000
storm_with_kills rec1 6 --journal-compact=100000000
grep -q "restored from vm-" "$DAEMON_LOG" || fail "no VM was restored from its journal"
compare rec1 history
# and once more after a clean restart: everything came back from the journal alone
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; daemon_up
compare rec1 history

# 1b. the same under a lease: conversions applied under it and not yet Committed
# when the daemon dies are re-sent as Reapplied; the lease is asked for again.
"$CTL" --admin-socket "$TESTDIR/admin.sock" forget rec1 >/dev/null || fail "forget failed"
VMM_EXTRA=--lease storm_with_kills rec1l 6 --journal-compact=100000000
grep "^vmm: lease:" "$TESTDIR/rec1l.out"
leased=$(sed -n 's/^vmm: lease: \([0-9]*\) leased.*/\1/p' "$TESTDIR/rec1l.out")
[ "${leased:-0}" -gt 0 ] || fail "no conversion of the storm went under the lease"
compare rec1l history
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null; daemon_up
compare rec1l history

# 2. compaction every 64 records: kills land during compactions too
"$CTL" --admin-socket "$TESTDIR/admin.sock" forget rec1l >/dev/null || fail "forget failed"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
daemon_up --journal-compact=64
storm_with_kills rec2 6 --journal-compact=64
compare rec2 map
kill -KILL "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
ls "$TESTDIR/state" | grep -q '\.tmp\.' && echo "(a compaction was interrupted: its temporary file is left for start-up)"
daemon_up --journal-compact=64
compare rec2 map
! ls "$TESTDIR/state" | grep -q '\.tmp\.' || fail "temporary journal files survived start-up"
j=$(ls "$TESTDIR"/state/vm-*.journal)
size=$(stat -c %s "$j")
echo "compacted journal: $size bytes"
[ "$size" -lt 200000 ] || fail "the journal is not being compacted ($size bytes)"

# 3. damage: a truncated and a bit-flipped journal
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
"$MEMCONVD" --socket "$SOCK" --state-dir "$TESTDIR/state2" --journal-compact=100000000 --log-target=stderr 2>>"$DAEMON_LOG" &
DAEMON_PID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && break; sleep 0.01; done
run_vmm damaged --scenario storm --iterations 200 --seed 3
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
j=$TESTDIR/state2/vm-1.journal
full=$(stat -c %s "$j")
cp "$j" "$TESTDIR/full.journal"
truncate -s $(( full - 7 )) "$j"
: > "$DAEMON_LOG"
daemon_up --state-dir "$TESTDIR/state2"   # later --state-dir wins
grep -q "vm-1.journal: .*the tail is cut off" "$DAEMON_LOG" || { cat "$DAEMON_LOG"; fail "truncation not reported"; }
n1=$("$CTL" --admin-socket "$TESTDIR/admin.sock" --json history damaged | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))')
[ "$(stat -c %s "$j")" -lt $(( full - 7 )) ] || fail "the torn tail was not cut off"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"
# flip one bit in the middle of the file
cp "$TESTDIR/full.journal" "$j"
python3 -c "
import sys; f=open('$j','r+b'); f.seek($full // 2); b=f.read(1); f.seek($full // 2); f.write(bytes([b[0] ^ 0x10])); f.close()"
: > "$DAEMON_LOG"
daemon_up --state-dir "$TESTDIR/state2"
grep -qE "vm-1.journal: .*(CRC|length|decod|zero).*cut off" "$DAEMON_LOG" || { cat "$DAEMON_LOG"; fail "bit flip not reported"; }
n2=$("$CTL" --admin-socket "$TESTDIR/admin.sock" --json history damaged | python3 -c 'import json,sys; r=json.load(sys.stdin)["records"]; print(len(r))')
echo "history records kept: $n1 after truncation, $n2 after a bit flip in the middle"
[ "$n1" -gt "$n2" ] && [ "$n2" -gt 0 ] || fail "unexpected amount of history kept ($n1, $n2)"
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || fail "memconvd did not stop cleanly"
echo "PASS"
