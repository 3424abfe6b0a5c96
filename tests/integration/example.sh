#!/bin/bash
# The README's libmemconv example, compiled by make check, against a real daemon.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
start_daemon
out=$("$top_builddir/tests/examples/example-vmm" "$SOCK"); rc=$?
echo "$out"
[ "$rc" = 77 ] && skip "example cannot run here"
[ "$rc" = 0 ] || fail "example-vmm exited with $rc"
echo "$out" | grep -q "to private: handle_exit 0, guest sees 0" || fail "explicit conversion not applied"
echo "$out" | grep -q "outside RAM: handle_exit 0, guest sees -22" || fail "refusal not reported to the guest as -EINVAL"
log_has MEMCONV_EVENT=change MEMCONV_VM=example MEMCONV_GPA=0x100000 MEMCONV_SIZE=0x10000 MEMCONV_TO=private MEMCONV_SOURCE=map-gpa-range \
        || fail "no change record for the example's conversion"
log_has MEMCONV_EVENT=refused MEMCONV_VM=example MEMCONV_GPA=0x40000000 MEMCONV_CODE=out-of-range \
        || fail "no refusal record"
stop_daemon
echo "PASS"
