#!/bin/bash
# Socket activation as systemd does it: systemd-socket-activate owns both
# listening sockets, named "vmm" and "admin" (FileDescriptorName=), and
# starts memconvd on the first connection; memconvd must serve the passed
# sockets (not bind its own), a VMM converts through it, memconvctl reaches
# it, and an unexpected extra fd is closed with a warning.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
ACT=$(command -v systemd-socket-activate) || skip "systemd-socket-activate not installed"
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-sa.XXXXXX")
DAEMON_LOG=$TESTDIR/daemon.log
SOCK=$TESTDIR/vmm.sock
trap 'kill $ACTPID 2>/dev/null; wait 2>/dev/null; rm -rf "$TESTDIR"' EXIT

"$ACT" --seqpacket -l "$SOCK" -l "$TESTDIR/admin.sock" -l "$TESTDIR/stray.sock" --fdname=vmm:admin:stray \
        "$(cd "$top_builddir" && pwd)/memconvd" --socket "$TESTDIR/unused-vmm.sock" \
        --admin-socket "$TESTDIR/unused-admin.sock" --state-dir "$TESTDIR/state" \
        --log-target=stderr --log-level=debug 2> "$DAEMON_LOG" &
ACTPID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && [ -S "$TESTDIR/admin.sock" ] && break; sleep 0.01; done
[ -S "$SOCK" ] || fail "systemd-socket-activate did not listen"

run_vmm activated --scenario explicit
"$top_builddir/memconvctl" --admin-socket "$TESTDIR/admin.sock" list | grep -q activated || fail "memconvctl cannot reach the activated admin socket"
[ ! -e "$TESTDIR/unused-vmm.sock" ] && [ ! -e "$TESTDIR/unused-admin.sock" ] || fail "memconvd bound its own sockets despite activation"
log_has "Closing unexpected socket-activation fd" "stray" || fail "the stray fd was not refused"
log_has "MEMCONV_EVENT=change" "MEMCONV_VM=activated" || fail "no conversions through the activated socket"
kill -TERM $ACTPID; wait $ACTPID
grep -q "memconvd stopping" "$DAEMON_LOG" || fail "memconvd did not stop cleanly"
echo "PASS"
