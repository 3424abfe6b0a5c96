#!/bin/bash
# What memconvd sends to the systemd journal: run it with --log-target=journal
# in a private mount namespace whose /run/systemd/journal/socket is a test
# sink, have a real guest convert memory, and check the structured records
# (message ids, priorities, MEMCONV_* fields) that arrived.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
[ "$(id -u)" = 0 ] || skip "needs root for a private mount namespace"
unshare -m true 2>/dev/null || skip "unshare -m not permitted here"
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-it.XXXXXX")
trap 'rm -rf "$TESTDIR"' EXIT
SINK=$top_builddir/tests/integration/journal-sink

unshare -m --propagation private bash -c '
        set -e
        mount -t tmpfs tmpfs /run
        mkdir -p /run/systemd/journal
        "$1" /run/systemd/journal/socket "$2/journal.txt" & sink=$!
        for _ in $(seq 100); do [ -S /run/systemd/journal/socket ] && break; sleep 0.01; done
        "$3" --socket "$2/vmm.sock" --state-dir "$2/state" --log-target=journal --log-level=debug --summary-interval=50 2> "$2/stderr.txt" & d=$!
        for _ in $(seq 300); do [ -S "$2/vmm.sock" ] && break; sleep 0.01; done
        "$4" --socket "$2/vmm.sock" --name journaled --scenario demo > "$2/vmm.out" 2>&1
        sleep 0.2
        kill -TERM $d; wait $d
        kill -TERM $sink; wait $sink || true
' _ "$SINK" "$TESTDIR" "$MEMCONVD" "$VMM" || { cat "$TESTDIR/vmm.out" 2>/dev/null; fail "journal run failed"; }

J=$TESTDIR/journal.txt
[ -s "$J" ] || fail "nothing reached the journal socket"
[ ! -s "$TESTDIR/stderr.txt" ] || { cat "$TESTDIR/stderr.txt"; fail "records went to stderr despite --log-target=journal"; }
has() { local l; l=$(grep -F -- "$1" "$J"); shift; for p in "$@"; do l=$(printf '%s\n' "$l" | grep -F -- "$p"); done; [ -n "$l" ]; }
has "MESSAGE_ID=4b0c5f1e8a6d4c2f9e37b1d05a8c6e21" "PRIORITY=7" "MEMCONV_EVENT=change" "MEMCONV_VM=journaled" \
    "MEMCONV_GPA=0x" "MEMCONV_FROM=shared" "MEMCONV_TO=private" "MEMCONV_KIND=explicit" || fail "no change record in the journal"
has "MEMCONV_EVENT=change" "MEMCONV_KIND=implicit" "MEMCONV_SOURCE=memory-fault" || fail "no implicit change record"
has "MESSAGE_ID=9d2e6a4c1b7f4e80a5c3d6b9e1f24a57" "PRIORITY=6" "MEMCONV_EVENT=summary" "MEMCONV_CHANGES=" || fail "no summary record"
has "MESSAGE_ID=c7a1e3f5d9b24c6e8a0f2b4d6c8e1a35" "MEMCONV_EVENT=refused" "MEMCONV_CODE=" || fail "no refusal record"
has "MESSAGE=memconvd stopping" "PRIORITY=6" || fail "no shutdown record"
echo "$(grep -c 'MEMCONV_EVENT=change' "$J") change records reached the journal socket"
echo "PASS"
