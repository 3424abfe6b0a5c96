#!/bin/bash
# The journal's file system fills up (a 192 KiB tmpfs as the state directory,
# in a private mount namespace): memconvd reports the failed appends, claims
# no durability it does not have (no Committed, and a Detach answered with an
# error saying the last changes are not durable), keeps serving VMMs, and the
# guest's conversions and data are unaffected. Once space is back, a new VM
# is journaled and confirmed again.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
[ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
unshare -m true 2>/dev/null || skip "unshare -m not permitted here"
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-nospc.XXXXXX")
trap 'rm -rf "$TESTDIR"' EXIT
DAEMON_LOG=$TESTDIR/daemon.log

unshare -m --propagation private bash -c '
        set -u
        T=$1 MEMCONVD=$2 VMM=$3 CTL=$4
        mkdir -p "$T/state" && mount -t tmpfs -o size=192k tmpfs "$T/state" || exit 2
        "$MEMCONVD" --config /dev/null --socket "$T/vmm.sock" --state-dir "$T/state" --log-target=stderr \
                --log-level=info 2> "$T/daemon.log" &
        d=$!
        for _ in $(seq 300); do [ -S "$T/admin.sock" ] && break; sleep 0.01; done
        # A storm far larger than 192 KiB of journal: the guest checks its data throughout.
        "$VMM" --socket "$T/vmm.sock" --name full --vcpus 2 --scenario storm --iterations 400 > "$T/full.out" 2>&1
        echo "vmm-full=$?" > "$T/rc"
        df -k "$T/state" | tail -n 1 > "$T/df"
        # Space is back (forgetting the VM deletes its journal): a new VM is journaled again.
        "$CTL" --admin-socket "$T/admin.sock" forget full > "$T/forget.out" 2>&1
        for _ in $(seq 100); do [ -e "$T/state/vm-1.journal" ] || break; sleep 0.02; done
        "$VMM" --socket "$T/vmm.sock" --name after --scenario demo > "$T/after.out" 2>&1
        echo "vmm-after=$?" >> "$T/rc"
        ls -l "$T/state" > "$T/ls"
        kill -TERM $d; wait $d
        echo "daemon=$?" >> "$T/rc"
' _ "$TESTDIR" "$MEMCONVD" "$VMM" "$top_builddir/memconvctl" || fail "the namespace run failed"

cat "$TESTDIR/rc"; cat "$TESTDIR/df"
grep -q "vmm-full=0" "$TESTDIR/rc" || { cat "$TESTDIR/full.out"; fail "the guest's storm failed while the journal was full"; }
grep -q "append failed.*stay unconfirmed.*No space left on device" "$DAEMON_LOG" || fail "no report of the failed appends"
grep -q "detached, but the journal could not be written" "$TESTDIR/full.out" "$DAEMON_LOG" ||
        grep -q "VM full (.*) detached" "$DAEMON_LOG" || fail "the VMM was not detached"
grep -q "vmm-after=0" "$TESTDIR/rc" || { cat "$TESTDIR/after.out"; fail "the daemon stopped serving VMMs"; }
grep -q "vm-2.journal" "$TESTDIR/ls" || fail "the new VM was not journaled once space was back"
grep -q "daemon=0" "$TESTDIR/rc" || fail "memconvd did not stop cleanly"
echo "failed appends reported: $(grep -c 'append failed' "$DAEMON_LOG")"
echo "PASS"
