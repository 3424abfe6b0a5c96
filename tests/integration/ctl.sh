#!/bin/bash
# memconvctl against a real memconvd: every command's real output, its JSON
# and Prometheus forms, and the exit statuses of memconvctl(8) - 2 usage,
# 3 daemon unreachable, 4 no such VM, 1 refused (forget of an attached VM),
# with a clear message and nothing changed for each refusal.
#
# One VM ("demo-vm") runs the demo scenario and detaches; another ("live")
# runs a long storm in the background, so that it is attached, has private
# ranges and produces a stream for history --follow, and is killed at the end.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm

CTL=$top_builddir/memconvctl
[ -x "$CTL" ] || fail "$CTL is not built"
have_python=false
command -v python3 > /dev/null 2>&1 && python3 -c 'import json' 2>/dev/null && have_python=true

# The admin socket lives in a directory of our own: start_daemon creates
# TESTDIR only when it runs, and it owns the EXIT trap, which we extend.
CTLDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-ctl.XXXXXX")
ADMIN=$CTLDIR/admin.sock
mkdir "$CTLDIR/state"
# The history ring must hold the whole backlog the follow test reads (a slow
# machine runs the storm longer before it is paused).
start_daemon --admin-socket "$ADMIN" --state-dir "$CTLDIR/state" --history-records=1000000
LIVE_PID=
trap '[ -n "$LIVE_PID" ] && kill "$LIVE_PID" 2>/dev/null; stop_daemon_quiet; rm -rf "$CTLDIR"' EXIT
for _ in $(seq 1 300); do [ -S "$ADMIN" ] && break; sleep 0.01; done
[ -S "$ADMIN" ] || fail "memconvd did not create its admin socket $ADMIN"

OUT=$CTLDIR/out
ERR=$CTLDIR/err

# ctl ARGS...: memconvctl on our daemon; stdout in $OUT, stderr in $ERR, status in $RC
ctl() {
        "$CTL" --admin-socket "$ADMIN" "$@" > "$OUT" 2> "$ERR"
        RC=$?
}

# expect STATUS ARGS...: run ctl ARGS and require exit status STATUS
expect() {
        local want=$1; shift
        ctl "$@"
        if [ "$RC" != "$want" ]; then
                echo "--- stdout:" >&2; cat "$OUT" >&2; echo "--- stderr:" >&2; cat "$ERR" >&2
                fail "memconvctl $* exited with $RC, expected $want"
        fi
}

# out_has / err_has TEXT: the last command's stdout / stderr contains TEXT
out_has() { grep -qF -- "$1" "$OUT" || { cat "$OUT" >&2; fail "stdout of the last memconvctl lacks '$1'"; }; }
err_has() { grep -qF -- "$1" "$ERR" || { cat "$ERR" >&2; fail "stderr of the last memconvctl lacks '$1'"; }; }

# json_valid FILE: FILE is one JSON document
json_valid() {
        if $have_python; then
                python3 -m json.tool "$1" > /dev/null || { cat "$1" >&2; fail "not valid JSON: $1"; }
        else
                head -c1 "$1" | grep -q '[{[]' || fail "not JSON: $1"
        fi
}

# py SCRIPT: run python3 SCRIPT with the last stdout as stdin (only with python)
py() { python3 -c "$1" < "$OUT"; }

# ---------------------------------------------------------------- unreachable, usage
"$CTL" --admin-socket "$CTLDIR/nothing-here.sock" status > "$OUT" 2> "$ERR"; RC=$?
[ "$RC" = 3 ] || fail "an absent admin socket gave exit status $RC, expected 3"
err_has "cannot connect to $CTLDIR/nothing-here.sock"
err_has "Is memconvd running?"

expect 2 no-such-command
err_has "unknown command 'no-such-command'"
expect 2 --no-such-option list
err_has "unknown option '--no-such-option'"
expect 2 show
err_has "which VM?"
expect 2 show a b
expect 2 ranges x --private --shared
err_has "exclude each other"
expect 2 ranges x --start banana
err_has "is not an address"
expect 2 ranges x --start 2M --end 1M
expect 2 history x --since 3 --since-time now
expect 2 history x --limit 0
expect 2 stats --prometheus --json
expect 0 --help
out_has "forget VM"
expect 0 history --help
out_has "--follow"
expect 0 --version
out_has "memconvctl "

# ---------------------------------------------------------------- an empty daemon
expect 0 status
out_has "VMs: 0 attached, 0 detached"
out_has "Admin socket: $ADMIN"
out_has "State directory: $CTLDIR/state"
expect 0 list --no-legend
[ ! -s "$OUT" ] || fail "list --no-legend of an empty daemon printed: $(cat "$OUT")"

# ---------------------------------------------------------------- a detached VM with history
run_vmm demo-vm --scenario demo

# ... and an attached one, converting all the time
"$VMM" --socket "$SOCK" --name live --scenario storm --iterations 100000000 --seed 3 > "$TESTDIR/live.out" 2>&1 &
LIVE_PID=$!
for _ in $(seq 1 500); do
        ctl show live
        [ "$RC" = 0 ] && grep -q "State: attached" "$OUT" && grep -q "Regions: slot" "$OUT" && break
        kill -0 "$LIVE_PID" 2>/dev/null || { cat "$TESTDIR/live.out"; wait "$LIVE_PID"
                [ $? = 77 ] && skip "the reference VMM cannot run here"; fail "the storm VMM exited early"; }
        sleep 0.01
done
[ "$RC" = 0 ] || fail "VM live never showed up"

expect 0 status
out_has "VMs: 1 attached, 1 detached"
expect 0 status --json
json_valid "$OUT"
if $have_python; then
        py 'import json,sys; s=json.load(sys.stdin); assert s["vms_attached"]==1 and s["vms_detached"]==1, s' ||
                fail "status --json has the wrong VM counts"
fi

expect 0 list
grep -E '^ *[0-9]+ +demo-vm +[0-9a-f-]{36} +detached ' "$OUT" > /dev/null || { cat "$OUT"; fail "list lacks demo-vm, detached"; }
grep -E '^ *[0-9]+ +live +[0-9a-f-]{36} +attached ' "$OUT" > /dev/null || { cat "$OUT"; fail "list lacks live, attached"; }
head -n1 "$OUT" | grep -qE '^ *ID +NAME +UUID +STATE +PID' || fail "list has no header line"
expect 0 list --no-legend
grep -q 'NAME' "$OUT" && fail "list --no-legend printed the header"
live_id=$(awk '$2 == "live" { print $1 }' "$OUT")
[ -n "$live_id" ] || fail "no id for live in the list"
expect 0 list --json
json_valid "$OUT"
if $have_python; then
        py 'import json,sys; v=[v for v in json.load(sys.stdin)["vms"] if v["name"]=="live"][0]; assert v["id"]=='"$live_id"' and v["state"]=="attached", v' ||
                fail "list --json disagrees with the table about live"
fi

# show: by name, by #id and by uuid
expect 0 show live
out_has "State: attached"
expect 0 show "#$live_id"
out_has "VM: live"
uuid=$(awk '/UUID:/ { print $2 }' "$OUT")
expect 0 show "$uuid"
out_has "ID: #$live_id"
expect 0 show live --json
json_valid "$OUT"

# ranges: the map covers the registered RAM exactly; a private range shows up while the storm runs
if $have_python; then
        ctl show live --json
        region_bytes=$(py 'import json,sys; print(sum(r["size"] for r in json.load(sys.stdin)["regions"]))')
        expect 0 ranges live --json
        json_valid "$OUT"
        py '
import json, sys
r = json.load(sys.stdin)["ranges"]
assert all(x["attribute"] in ("private", "shared") for x in r)
assert all(r[i]["end"] <= r[i + 1]["gpa"] for i in range(len(r) - 1)), "ranges overlap or are unsorted"
assert sum(x["size"] for x in r) == '"$region_bytes"', "ranges do not cover the regions"
' || fail "ranges --json does not cover the registered RAM ($region_bytes bytes) exactly once"
fi
found=false
for _ in $(seq 1 200); do
        ctl ranges live --private --no-legend
        [ "$RC" = 0 ] || fail "ranges --private failed: $(cat "$ERR")"
        if [ -s "$OUT" ]; then found=true; break; fi
        sleep 0.01
done
$found || fail "no private range of live seen while its storm runs"
awk '$4 != "private" { exit 1 }' "$OUT" || { cat "$OUT"; fail "ranges --private printed a range that is not private"; }
expect 0 ranges live --shared --start 0x0 --end 4M
awk 'NR > 1 && NF == 4 && $4 != "shared" { exit 1 }' "$OUT" || fail "ranges --shared printed a private range"

# check on an attached VM held still (SIGSTOP: no vCPU converts, discards drain)
# Discards still queued when the VMM stopped may take a moment to drain.
kill -STOP "$LIVE_PID"
for _ in $(seq 1 100); do
        ctl check live
        [ "$RC" = 0 ] && grep -qF "no problems found" "$OUT" && break
        sleep 0.1
done
expect 0 check live
out_has "no problems found"
expect 0 check live --json
json_valid "$OUT"
kill -CONT "$LIVE_PID"

# ---------------------------------------------------------------- history and stats of demo-vm
expect 0 history demo-vm --json
json_valid "$OUT"
log_changes=$(grep -F 'MEMCONV_EVENT=change' "$DAEMON_LOG" | grep -cF 'MEMCONV_VM=demo-vm ')
[ "$log_changes" -gt 0 ] || fail "no change records for demo-vm in the log"
if $have_python; then
        py '
import json, sys
r = json.load(sys.stdin)["records"]
assert len(r) == '"$log_changes"', "%d records, %d in the log" % (len(r), '"$log_changes"')
assert [x["seq"] for x in r] == list(range(1, len(r) + 1)), "seq does not run 1, 2, 3, ..."
kinds = {x["kind"] for x in r}
assert kinds == {"explicit", "implicit"}, kinds
assert all(x["result"] == "committed" for x in r)
' || fail "history --json of demo-vm disagrees with the daemon log"
        cp "$OUT" "$CTLDIR/history.json"
        expect 0 stats demo-vm --json
        json_valid "$OUT"
        # Stats count conversions (one per decision); history has one record per changed range.
        py '
import json, sys, collections
s = json.load(sys.stdin)["vms"][0]["stats"]
r = json.load(open("'"$CTLDIR/history.json"'"))["records"]
dec = collections.defaultdict(set)
size = collections.Counter()
for x in r:
    dec[(x["kind"], x["to"])].add(x["decision_id"])
    size[x["to"]] += x["size"]
for kind in ("explicit", "implicit"):
    for to in ("private", "shared"):
        assert s["%s_to_%s" % (kind, to)] == len(dec[(kind, to)]), (kind, to, s, len(dec[(kind, to)]))
assert s["bytes_to_private"] == size["private"] and s["bytes_to_shared"] == size["shared"], (s, size)
assert s["decision_latency"]["count"] > 0
' || fail "stats of demo-vm disagree with its history"
else
        [ "$(grep -c '"seq"' "$OUT")" = "$log_changes" ] || fail "history count differs from the log"
fi
expect 0 history demo-vm
out_has "explicit"
out_has "implicit"
out_has "$log_changes records."
expect 0 history demo-vm --no-legend
[ "$(wc -l < "$OUT")" = "$log_changes" ] || fail "history has $(wc -l < "$OUT") rows, the log $log_changes changes"
expect 0 history demo-vm --since 2 --limit 3 --no-legend
[ "$(awk '{ print $1 }' "$OUT" | tr '\n' ' ')" = "3 4 5 " ] || { cat "$OUT"; fail "history --since 2 --limit 3 is not seq 3 4 5"; }

# A reader that goes away early is not an error (SIGPIPE handled).
set -o pipefail
"$CTL" --admin-socket "$ADMIN" history demo-vm | head -n 2 > /dev/null || fail "history | head failed"
set +o pipefail

expect 0 stats
out_has "total"
out_has "demo-vm"
expect 0 stats --json
json_valid "$OUT"
expect 0 stats --prometheus
out_has "# TYPE memconvd_conversions_total counter"
out_has 'memconvd_conversions_total{vm="demo-vm",vm_id="'
out_has 'kind="explicit",direction="to_private"}'
out_has "# TYPE memconvd_decision_latency_seconds histogram"
out_has 'memconvd_decision_latency_seconds_bucket{vm="demo-vm",'
out_has 'le="+Inf"}'
out_has "memconvd_daemon_refused_total "
grep -qE '^memconvd_discard_latency_seconds_count\{vm="live",vm_id="[0-9]+"\} [0-9]+$' "$OUT" ||
        fail "no discard latency count for live"

# ---------------------------------------------------------------- history --follow
# The storm is held still (SIGSTOP) while the follower takes in the backlog,
# then let go for a moment: backlog and new records must form one gap-free
# sequence, and SIGINT must end the follower with status 0.
kill -STOP "$LIVE_PID"
sleep 0.2
ctl history live --no-legend
backlog=$(tail -n 1 "$OUT" | awk '{ print $1 }')
[ "$backlog" -gt 0 ] || fail "live has no history"
"$CTL" --admin-socket "$ADMIN" history live --follow --json > "$CTLDIR/follow.out" 2> "$CTLDIR/follow.err" &
follow_pid=$!
for _ in $(seq 1 1000); do
        [ "$(wc -l < "$CTLDIR/follow.out")" -ge "$backlog" ] && break
        sleep 0.01
done
[ "$(wc -l < "$CTLDIR/follow.out")" = "$backlog" ] ||
        fail "history --follow printed $(wc -l < "$CTLDIR/follow.out") of a backlog of $backlog: $(cat "$CTLDIR/follow.err")"
kill -CONT "$LIVE_PID"
for _ in $(seq 1 1000); do
        [ "$(wc -l < "$CTLDIR/follow.out")" -gt "$backlog" ] && break
        sleep 0.01
done
kill -STOP "$LIVE_PID"
sleep 0.3
kill -INT "$follow_pid"
wait "$follow_pid" || fail "history --follow did not end cleanly on SIGINT: $(cat "$CTLDIR/follow.err")"
kill -CONT "$LIVE_PID"
[ "$(wc -l < "$CTLDIR/follow.out")" -gt "$backlog" ] || fail "history --follow printed no new record"
if $have_python; then
        python3 -c '
import json, sys
seqs = [json.loads(l)["seq"] for l in open(sys.argv[1])]
assert seqs == list(range(1, len(seqs) + 1)), "follow seq has gaps"
' "$CTLDIR/follow.out" || fail "history --follow lines are not consecutive JSON records"
fi
# A follower whose reader goes away ends too (EPIPE), with status 0.
ctl history live --no-legend
recent=$(tail -n 1 "$OUT" | awk '{ print $1 }')
timeout 20 "$CTL" --admin-socket "$ADMIN" history live --follow --since "$recent" | head -n 3 > /dev/null
[ "${PIPESTATUS[0]}" = 0 ] || fail "history --follow | head did not end with status 0 when head did"

# ---------------------------------------------------------------- refusals change nothing
ctl list --no-legend; cut -c1-80 "$OUT" | awk '{ print $1, $2, $3, $4 }' > "$CTLDIR/before"
expect 1 forget live
err_has "is attached"
ctl list --no-legend; cut -c1-80 "$OUT" | awk '{ print $1, $2, $3, $4 }' > "$CTLDIR/after"
cmp -s "$CTLDIR/before" "$CTLDIR/after" || fail "a refused forget changed the VM list"
for cmd in show ranges history check forget; do
        expect 4 $cmd no-such-vm
        err_has 'no-such-vm'
        err_has "memconvctl list"
done
expect 4 stats no-such-vm
ctl list --no-legend; cut -c1-80 "$OUT" | awk '{ print $1, $2, $3, $4 }' > "$CTLDIR/after"
cmp -s "$CTLDIR/before" "$CTLDIR/after" || fail "requests for an unknown VM changed the VM list"
expect 1 check demo-vm
err_has "detached"

# ---------------------------------------------------------------- forget a detached VM
kill "$LIVE_PID"
wait "$LIVE_PID" 2>/dev/null
LIVE_PID=
for _ in $(seq 1 300); do
        ctl show live
        grep -q "State: detached" "$OUT" && break
        sleep 0.01
done
out_has "State: detached"
expect 0 forget live
out_has "Forgot VM live"
expect 4 show live
expect 0 list --no-legend
grep -q ' live ' "$OUT" && fail "live is still listed after forget"
grep -q ' demo-vm ' "$OUT" || fail "forgetting live took demo-vm with it"
expect 0 forget demo-vm --json
json_valid "$OUT"
expect 0 status
out_has "VMs: 0 attached, 0 detached"

stop_daemon
echo "PASS"
