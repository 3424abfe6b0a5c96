#!/bin/bash
# Socket activation as systemd does it: systemd-socket-activate owns both
# listening sockets, named "vmm" and "admin" (FileDescriptorName=), and
# starts memconvd on the first connection; memconvd must serve the passed
# sockets (not bind its own), a VMM converts through it, memconvctl reaches
# it, and an unexpected extra fd is closed with a warning. Built with libvirt,
# the daemon runs the libvirt plugin (on libvirt's test driver): the real hook
# registers a domain through the activated admin socket, exactly that domain
# attaches, another VM is refused, and list names the domain.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
ACT=$(command -v systemd-socket-activate) || skip "systemd-socket-activate not installed"
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-sa.XXXXXX")
DAEMON_LOG=$TESTDIR/daemon.log
SOCK=$TESTDIR/vmm.sock
trap 'kill $ACTPID 2>/dev/null; wait 2>/dev/null; rm -rf "$TESTDIR"' EXIT
HOOK=$top_builddir/memconvd-libvirt-hook
PLUGDIR=$(cd "$top_builddir" && pwd)/plugins/.libs
with_libvirt=false
[ -x "$HOOK" ] && [ -e "$PLUGDIR/libvirt.so" ] && with_libvirt=true
if $with_libvirt; then
        printf '[Policy]\nPluginDirectory=%s\nPlugins=libvirt\n[Plugin libvirt]\nuri=test:///default\n' "$PLUGDIR" \
                > "$TESTDIR/memconvd.conf"
else
        : > "$TESTDIR/memconvd.conf"
fi

"$ACT" --seqpacket -l "$SOCK" -l "$TESTDIR/admin.sock" -l "$TESTDIR/stray.sock" --fdname=vmm:admin:stray \
        "$(cd "$top_builddir" && pwd)/memconvd" --config "$TESTDIR/memconvd.conf" --socket "$TESTDIR/unused-vmm.sock" \
        --admin-socket "$TESTDIR/unused-admin.sock" --state-dir "$TESTDIR/state" \
        --log-target=stderr --log-level=debug 2> "$DAEMON_LOG" &
ACTPID=$!
for _ in $(seq 300); do [ -S "$SOCK" ] && [ -S "$TESTDIR/admin.sock" ] && break; sleep 0.01; done
[ -S "$SOCK" ] || fail "systemd-socket-activate did not listen"

if $with_libvirt; then
        # test:///default's one domain, "test", is running with this uuid.
        UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
        printf "<domain type='test'><name>test</name><uuid>%s</uuid></domain>\n" "$UUID" > "$TESTDIR/domain.xml"
        printf 'admin-socket=%s\ntimeout-ms=5000\n' "$TESTDIR/admin.sock" > "$TESTDIR/hook.conf"
        MEMCONVD_LIBVIRT_HOOK_CONF=$TESTDIR/hook.conf "$HOOK" test prepare begin - < "$TESTDIR/domain.xml" ||
                fail "the hook could not register through the activated admin socket"
        "$VMM" --socket "$SOCK" --name intruder --scenario explicit > "$TESTDIR/intruder.out" 2>&1 &&
                fail "a VM libvirt did not register attached"
        log_has "Refusing VM intruder" "policy plugin libvirt" || fail "no refusal of the unregistered VM"
        run_vmm activated --uuid "$UUID" --scenario explicit
        for _ in $(seq 500); do
                "$top_builddir/memconvctl" --admin-socket "$TESTDIR/admin.sock" list | grep activated | grep -q "test (running)" && break
                sleep 0.02
        done
        "$top_builddir/memconvctl" --admin-socket "$TESTDIR/admin.sock" list | grep activated | grep -q "test (running)" ||
                fail "list does not name the activated VM's libvirt domain"
        [ "$("$top_builddir/memconvctl" --admin-socket "$TESTDIR/admin.sock" --json list | grep -c '"id"')" = 1 ] ||
                fail "more than the registered VM exists"
else
        echo "(built without libvirt: no hook and plugin in this run)"
        run_vmm activated --scenario explicit
fi
"$top_builddir/memconvctl" --admin-socket "$TESTDIR/admin.sock" list | grep -q activated || fail "memconvctl cannot reach the activated admin socket"
[ ! -e "$TESTDIR/unused-vmm.sock" ] && [ ! -e "$TESTDIR/unused-admin.sock" ] || fail "memconvd bound its own sockets despite activation"
log_has "Closing unexpected socket-activation fd" "stray" || fail "the stray fd was not refused"
log_has "MEMCONV_EVENT=change" "MEMCONV_VM=activated" || fail "no conversions through the activated socket"
kill -TERM $ACTPID; wait $ACTPID
grep -q "memconvd stopping" "$DAEMON_LOG" || fail "memconvd did not stop cleanly"
echo "PASS"
