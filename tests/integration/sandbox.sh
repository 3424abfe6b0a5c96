#!/bin/bash
# memconvd started as root drops every capability, sets no_new_privs and
# runs under its seccomp allow-list (memconvd(8), SECURITY) - in every
# thread: the event loop, the discard workers and the journal thread - and
# still does all its work under it: the reference VMM's real KVM guests
# convert through it, memconvctl inspects an attached VM (check maps its
# guest_memfd), a SIGHUP reload re-reads the configuration, resolves a group
# through NSS and dlopen()s a plugin it had not loaded, a restart replays the
# journal from a state directory opened without privilege, and SIGTERM ends
# it cleanly. SystemCallFilter=no and log, the command line overriding the
# file, and bad values (refused with a clear error, nothing started) too.
#
# That a call outside the list really kills is shown by tests/unit/test-sandbox,
# which loads the same filter in forked children.
. "${top_srcdir:-.}/tests/integration/lib.sh"
[ "$(id -u)" = 0 ] || skip "needs root: the test is that a root-started memconvd drops its capabilities"
grep -q '^Seccomp:' /proc/self/status || skip "this kernel has no seccomp"
need_kvm

CTL=$top_builddir/memconvctl
[ -x "$CTL" ] || fail "$CTL is not built"
PLUGINS=$(cd "$top_builddir" && pwd)/plugins/.libs
[ -f "$PLUGINS/explicit-only.so" ] && [ -f "$PLUGINS/rate-limit.so" ] || fail "the policy plugins are not built in $PLUGINS"

CONFDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-sbx.XXXXXX")
CONF=$CONFDIR/memconvd.conf
ADMIN=$CONFDIR/admin.sock
STATE=$CONFDIR/state
HELD_PID=
trap '[ -n "$HELD_PID" ] && kill -USR1 "$HELD_PID" 2>/dev/null; stop_daemon_quiet; rm -rf "$CONFDIR"' EXIT

# wait_for WHAT COMMAND...: until COMMAND succeeds; 10 s turn a hang into a failure
wait_for() {
        local what=$1 deadline=$((SECONDS + 10)); shift
        until "$@" > /dev/null 2>&1; do
                [ "$SECONDS" -le "$deadline" ] || fail "timed out waiting: $what"
                sleep 0.02
        done
}

ctl() { "$CTL" --admin-socket "$ADMIN" "$@"; }

# start MEMCONVD-OPTIONS...: start_daemon on our configuration and state, and
# wait until it serves; start_daemon takes the EXIT trap, which we extend
start() {
        start_daemon --config "$CONF" --admin-socket "$ADMIN" --state-dir "$STATE" --discard-threads=3 "$@"
        trap '[ -n "$HELD_PID" ] && kill -USR1 "$HELD_PID" 2>/dev/null; stop_daemon_quiet; rm -rf "$CONFDIR"' EXIT
        wait_for "the start-up record" log_has "listening for VMMs"
        wait_for "the admin socket" test -S "$ADMIN"
}

# stop: SIGTERM must end it with status 0 (stop_daemon); then drop its log
stop() {
        stop_daemon
        rm -rf "$TESTDIR"
}

# status_field PID TASK FIELD: a field of /proc/PID/task/TASK/status
status_field() { awk -v f="$3:" '$1 == f { print $2 }' "/proc/$1/task/$2/status"; }

# expect_sandboxed PID SECCOMP: every thread of PID has no capability left,
# no_new_privs, and seccomp mode SECCOMP (2 filter, 0 none); at least
# MIN_TASKS threads (loop, discard workers, journal)
expect_sandboxed() {
        local pid=$1 want=$2 n=0 t f v
        for t in $(ls "/proc/$pid/task"); do
                n=$((n + 1))
                for f in CapInh CapPrm CapEff CapBnd CapAmb; do
                        v=$(status_field "$pid" "$t" $f)
                        [ "$v" = 0000000000000000 ] || fail "thread $t of memconvd has $f $v, expected none"
                done
                v=$(status_field "$pid" "$t" NoNewPrivs)
                [ "$v" = 1 ] || fail "thread $t of memconvd has NoNewPrivs $v, expected 1"
                v=$(status_field "$pid" "$t" Seccomp)
                [ "$v" = "$want" ] || fail "thread $t of memconvd has Seccomp $v, expected $want"
        done
        [ "$n" -ge "$MIN_TASKS" ] || fail "memconvd has $n threads, expected at least $MIN_TASKS"
        echo "all $n threads of memconvd: no capabilities, NoNewPrivs 1, Seccomp $want"
}

cat > "$CONF" <<EOF
[Daemon]
SystemCallFilter=no
[Sockets]
AdminGroup=$(id -gn)
[Policy]
PluginDirectory=$PLUGINS
Plugins=explicit-only
EOF

# ---------------------------------------------------------------- bad values: refused, nothing started
for bad in maybe "" kill; do
        out=$(timeout 10 "$MEMCONVD" --config "$CONF" --socket "$CONFDIR/bad.sock" --system-call-filter="$bad" 2>&1)
        [ $? = 1 ] || fail "--system-call-filter='$bad' did not make memconvd exit with status 1"
        grep -qF -- "--system-call-filter takes yes, no or log, not '$bad'" <<<"$out" || fail "no clear error for '$bad': $out"
        [ ! -e "$CONFDIR/bad.sock" ] || fail "memconvd bound its socket despite a bad option"
done
sed 's/^SystemCallFilter=no$/SystemCallFilter=sometimes/' "$CONF" > "$CONFDIR/bad.conf"
out=$(timeout 10 "$MEMCONVD" --config "$CONFDIR/bad.conf" --socket "$CONFDIR/bad.sock" --log-target=stderr 2>&1)
[ $? = 1 ] || fail "SystemCallFilter=sometimes did not make memconvd exit with status 1"
grep -qF "$CONFDIR/bad.conf:2: invalid value for SystemCallFilter=: 'sometimes'" <<<"$out" || fail "no clear error for SystemCallFilter=sometimes: $out"
[ ! -e "$CONFDIR/bad.sock" ] || fail "memconvd bound its socket despite a bad configuration"

# ---------------------------------------------------------------- the file says no, the command line wins
MIN_TASKS=5 # the event loop, three discard workers, the journal thread
start
# An AddressSanitizer build runs without the filter (its leak checker needs clone() and ptrace() at
# exit) and must say so; tests/unit/test-sandbox still loads the filter there.
ASAN=false
if ldd "$MEMCONVD" 2>/dev/null | grep -q libasan; then
        ASAN=true
        echo "note: AddressSanitizer build: memconvd must run without the filter and say so"
fi
log_has "Sandbox: dropped all capabilities" "bounding set emptied" "no_new_privs set" "system call filter off (SystemCallFilter=no)" ||
        fail "no start-up record of the capability drop with the filter off"
expect_sandboxed "$DAEMON_PID" 0
stop

start --system-call-filter=log
if $ASAN; then
        log_has "Sandbox: dropped all capabilities" "system call filter NOT installed: built with AddressSanitizer" ||
                fail "no start-up record that the AddressSanitizer build runs without the filter"
        expect_sandboxed "$DAEMON_PID" 0
else
        log_has "Sandbox: dropped all capabilities" "system call filter on:" "others are allowed and logged by the kernel" ||
                fail "no start-up record of the filter in log mode"
        expect_sandboxed "$DAEMON_PID" 2
fi
stop

# ---------------------------------------------------------------- the default: filter on, everything still works
sed -i '/^SystemCallFilter=/d' "$CONF"
start --summary-interval=100
if $ASAN; then
        SECCOMP=0
else
        SECCOMP=2
        log_has "Sandbox: dropped all capabilities (permitted set was 0x" "bounding set emptied" "no_new_privs set" \
                "system call filter on:" "system calls allowed, any other kills the daemon" ||
                fail "no start-up record of the capability drop and the filter"
fi
expect_sandboxed "$DAEMON_PID" $SECCOMP

# Conversions from real KVM guests on two vCPUs; explicit-only refuses the implicit ones.
run_vmm scen --vcpus 2 --scenario explicit --scenario selftest --scenario data
log_has MEMCONV_EVENT=change MEMCONV_VM=scen MEMCONV_KIND=explicit MEMCONV_TO=private || fail "no explicit change record"
log_has MEMCONV_EVENT=summary MEMCONV_VM=scen || fail "no summary record"

# An attached VM for memconvctl: show, ranges, check (mmap + mincore of its guest_memfd), history.
"$VMM" --socket "$SOCK" --name held --scenario explicit --hold > "$TESTDIR/held.out" 2>&1 &
HELD_PID=$!
deadline=$((SECONDS + 10))
until grep -q "vmm: holding" "$TESTDIR/held.out" 2>/dev/null; do
        if ! kill -0 "$HELD_PID" 2>/dev/null; then
                wait "$HELD_PID"; rc=$?; HELD_PID=
                [ "$rc" = 77 ] && skip "the reference VMM cannot run here"
                cat "$TESTDIR/held.out" >&2; fail "the held VMM exited with $rc"
        fi
        [ "$SECONDS" -le "$deadline" ] || fail "timed out waiting for the held VMM"
        sleep 0.02
done
ctl status > "$CONFDIR/out" || fail "memconvctl status failed"
grep -q "VMs: 1 attached, 1 detached" "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "status does not count the VMs"; }
ctl list --no-legend > "$CONFDIR/out" || fail "memconvctl list failed"
grep -q held "$CONFDIR/out" && grep -q scen "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "list lacks a VM"; }
ctl show held > "$CONFDIR/out" || fail "memconvctl show failed"
grep -q "State: attached" "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "show held: not attached"; }
ctl ranges held > /dev/null || fail "memconvctl ranges failed"
ctl check held > "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "memconvctl check found problems or failed"; }
grep -q "no problems found" "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "check did not report a clean VM"; }
ctl history held > "$CONFDIR/out" || fail "memconvctl history failed"
grep -q committed "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "history of held has no committed change"; }
ctl stats --json > /dev/null || fail "memconvctl stats failed"
kill -USR1 "$HELD_PID"
wait "$HELD_PID"; rc=$?; HELD_PID=
[ "$rc" = 0 ] || { cat "$TESTDIR/held.out" >&2; fail "the held VMM exited with $rc"; }

# SIGHUP: read the file again (AdminGroup= resolved through NSS), dlopen() rate-limit.so for the first
# time; asking to change the filter is refused until a restart.
sed -i 's/^Plugins=explicit-only$/Plugins=rate-limit/' "$CONF"
sed -i 's/^\[Daemon\]$/[Daemon]\nSystemCallFilter=no/' "$CONF"
kill -HUP "$DAEMON_PID"
wait_for "the reload" log_has "Configuration reloaded"
log_has "Policy chain: rate-limit" || fail "the reload did not load rate-limit"
log_has "Reload:" "system call filter" "change only on restart" || fail "no notice that the filter changes only on restart"
kill -0 "$DAEMON_PID" 2>/dev/null || fail "memconvd died in the reload"
expect_sandboxed "$DAEMON_PID" $SECCOMP
ctl policy show scen > "$CONFDIR/out" || fail "memconvctl policy show failed"
grep -q rate-limit "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "the reloaded chain is not in effect"; }
# The implicit conversions explicit-only refused now pass.
run_vmm after --vcpus 2 --scenario explicit --scenario implicit
log_has MEMCONV_EVENT=change MEMCONV_VM=after MEMCONV_KIND=implicit || fail "no implicit change after the reload"
stop

# ---------------------------------------------------------------- a restart replays the journal under the filter
sed -i '/^SystemCallFilter=/d' "$CONF"
start
log_has "Restored 3 VM(s) from $STATE" || fail "the journals were not replayed"
expect_sandboxed "$DAEMON_PID" $SECCOMP
ctl history held > "$CONFDIR/out" || fail "memconvctl history after the restart failed"
grep -q committed "$CONFDIR/out" || { cat "$CONFDIR/out"; fail "the replayed history of held is empty"; }
run_vmm again --scenario explicit
stop
echo "PASS"
