#!/bin/bash
# The event loop's polling before it sleeps (PollUSec=, --poll; memconvd(8)
# POLLING), with a real daemon and the reference VMM converting real memory:
#  - bad values (and bad --request-ring / RequestRing= switches) are refused
#    with a clear error and nothing started;
#  - with --poll=0 the loop never polls: after a storm of conversions every
#    polling counter is still 0;
#  - PollUSec=100000 from the file is in force (status shows it) and the
#    loop polls between the storm's messages;
#  - a reload to PollUSec=0 turns it off at once: the window is 0 and the
#    counters stay where they were through another storm;
#  - a reload with a bad value is refused and the running value is kept.
# Every storm is checked: the VMM's guest verifies its data and the daemon's
# map equals the VMM's record, so polling never changes what is converted.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
command -v python3 >/dev/null || skip "python3 is needed to read memconvctl's JSON"
CTL=$top_builddir/memconvctl

refuse_option poll "0..1000000 us" 1000001 -1 abc ""
refuse_key Daemon PollUSec=2000000 "is out of range (0..1000000)"
echo "bad polling windows refused: 4 options, 1 configuration key"

# The request rings the loop polls too (memconvd(8), REQUEST RINGS): their switch.
refuse_option request-ring "yes or no" maybe 2 ""
bad=$(mktemp -d "${TMPDIR:-/tmp}/memconv-bad.XXXXXX")
printf '[Daemon]\nRequestRing=maybe\n' > "$bad/bad.conf"
out=$(timeout 10 "$MEMCONVD" --config "$bad/bad.conf" --socket "$bad/bad.sock" --log-target=stderr 2>&1)
rc=$?
[ $rc = 1 ] || fail "RequestRing=maybe did not make memconvd exit with status 1 (status $rc)"
grep -qF "$bad/bad.conf:2: invalid value for RequestRing=: 'maybe'" <<<"$out" || fail "no clear error for RequestRing=maybe: $out"
[ ! -e "$bad/bad.sock" ] || fail "memconvd bound its socket despite RequestRing=maybe"
rm -rf "$bad"
echo "bad request-ring switches refused: 3 options, 1 configuration key"

# polling: "max window hits misses polled conversions" from memconvctl status
polling() {
        "$CTL" --admin-socket "$TESTDIR/admin.sock" --json status | python3 -c '
import json, sys
s = json.load(sys.stdin)
p, t = s["polling"], s["totals"]
print(p["max_usec"], p["window_usec"], p["hits"], p["misses"], p["poll_usec"],
      t["explicit_to_private"] + t["explicit_to_shared"] + t["implicit_to_private"] + t["implicit_to_shared"])'
}

# storm NAME: a two-vCPU storm whose map must equal the VMM's record
storm() {
        run_vmm "$1" --vcpus 2 --scenario storm --iterations 300 --seed 5 --state-out "$TESTDIR/$1.state"
        "$CTL" --admin-socket "$TESTDIR/admin.sock" --json ranges "$1" > "$TESTDIR/$1.ranges" ||
                fail "memconvctl ranges $1 failed"
        python3 - "$top_srcdir/tests/integration" "$TESTDIR/$1.ranges" "$TESTDIR/$1.state" <<'PY' ||
import sys
sys.path.insert(0, sys.argv[1])
import vmmstate
if vmmstate.same_map(sys.argv[2], sys.argv[3]) is None:
    sys.exit(1)
PY
                fail "storm $1: the daemon's map differs from the VMM's record"
}

# --------------------------------------------------------------- off: never polls
start_daemon --poll=0
storm off
read -r max win hits misses us conv <<<"$(polling)"
echo "--poll=0: max $max us, window $win us, $hits hits, $misses misses, $us us polled, $conv conversions"
[ "$conv" -gt 0 ] || fail "the storm converted nothing"
[ "$max $win $hits $misses $us" = "0 0 0 0 0" ] || fail "the loop polled with --poll=0"
"$CTL" --admin-socket "$TESTDIR/admin.sock" status | grep -q "Polling: *off" || fail "status does not say polling is off"
stop_daemon
rm -rf "$TESTDIR"

# --------------------------------------------------------------- from the file; then reloads
CONF=$(mktemp "${TMPDIR:-/tmp}/memconv-poll.XXXXXX")
printf '[Daemon]\nPollUSec=100000\n' > "$CONF"
start_daemon --config "$CONF"
trap 'stop_daemon_quiet; rm -f "$CONF"' EXIT   # start_daemon set its own
storm on
read -r max win hits misses us conv <<<"$(polling)"
echo "PollUSec=100000: window $win us, $hits hits, $misses misses, $us us polled, $conv conversions"
[ "$max" = 100000 ] || fail "PollUSec=100000 from the file is not in force (max $max)"
[ "$win" -le 100000 ] || fail "the window ($win us) is above the maximum"
[ $((hits + misses)) -gt 0 ] && [ "$us" -gt 0 ] || fail "the loop never polled between $conv conversions"
"$CTL" --admin-socket "$TESTDIR/admin.sock" status | grep -q "Polling: *up to 100000 us" ||
        fail "status does not show the window"

# reload_to VALUE: rewrite the file and SIGHUP; succeeds when the reload is
# logged as done, fails when it is logged as refused
reload_to() {
        local done_before failed_before
        done_before=$(log_count "Configuration reloaded")
        failed_before=$(log_count "Reload failed")
        printf '[Daemon]\nPollUSec=%s\n' "$1" > "$CONF"
        kill -HUP "$DAEMON_PID"
        for _ in $(seq 200); do
                [ "$(log_count "Configuration reloaded")" -gt "$done_before" ] && return 0
                [ "$(log_count "Reload failed")" -gt "$failed_before" ] && return 1
                sleep 0.05
        done
        fail "memconvd did not answer the reload to PollUSec=$1"
}

reload_to 0 || fail "the reload to PollUSec=0 was refused"
read -r max win hits0 misses0 us0 conv0 <<<"$(polling)"
[ "$max $win" = "0 0" ] || fail "after a reload to PollUSec=0: max $max, window $win"
storm off2
read -r max win hits misses us conv <<<"$(polling)"
echo "reloaded to PollUSec=0: $((conv - conv0)) more conversions, hits $hits0 -> $hits, misses $misses0 -> $misses"
[ "$conv" -gt "$conv0" ] || fail "the second storm converted nothing"
[ "$hits $misses $us" = "$hits0 $misses0 $us0" ] || fail "the loop still polled after a reload to PollUSec=0"

! reload_to 5000000 || fail "a reload with PollUSec=5000000 was accepted"
log_has "PollUSec=5000000 is out of range (0..1000000)" || fail "no clear error for a reload with PollUSec=5000000"
read -r max win _ <<<"$(polling)"
[ "$max" = 0 ] || fail "a refused reload changed the window to $max"
echo "reload with PollUSec=5000000 refused; the running value (0) is kept"
stop_daemon
echo "PASS"
