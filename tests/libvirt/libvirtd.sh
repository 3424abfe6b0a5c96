#!/bin/bash
# The libvirt plugin against a real libvirtd (qemu:///system, over its
# read-only socket), not the in-process test driver: a domain is defined in
# libvirt, the real hook registers it, its VM attaches through the plugin,
# and memconvctl list names the domain with the state libvirtd reports; a
# VM libvirt never prepared is refused. The daemon runs with its system-call
# filter on, so this also proves the filter admits libvirt's client.
# Needs a running libvirtd with the QEMU driver (.ci/run starts one); skipped
# without. The domain it defines is undefined again at the end.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
HOOK=$top_builddir/memconvd-libvirt-hook
CTL=$top_builddir/memconvctl
URI=${MEMCONV_TEST_LIBVIRT_URI:-qemu:///system}
[ -x "$HOOK" ] && [ -e "$top_builddir/plugins/.libs/libvirt.so" ] || skip "built without libvirt support"
command -v virsh > /dev/null || skip "virsh is not installed"
# AddressSanitizer intercepts the xdr_* functions and forwards them to glibc's,
# which breaks libvirt's RPC client (built on libtirpc) inside the daemon: a
# call through a NULL xdr op in virNetMessageEncodeHeader. Not a memconvd bug;
# the plugin's code runs under ASan in libvirt.sh (test driver, no RPC).
ldd "$MEMCONVD" 2> /dev/null | grep -q libasan && skip "ASan build: its xdr interceptors break libvirt's RPC client"
virsh -c "$URI" version > /dev/null 2>&1 || skip "no libvirtd answers on $URI"

LVDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-lvd.XXXXXX")
NAME=memconv-test-$$
UUID=$(python3 -c 'import uuid; print(uuid.uuid4())' 2> /dev/null || cat /proc/sys/kernel/random/uuid)
cleanup() {
        stop_daemon_quiet
        virsh -c "$URI" undefine "$NAME" > /dev/null 2>&1
        rm -rf "$LVDIR"
}
cat > "$LVDIR/domain.xml" <<XML
<domain type='qemu'>
  <name>$NAME</name>
  <uuid>$UUID</uuid>
  <memory unit='MiB'>64</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <launchSecurity type='sev-snp'><policy>0x00030000</policy></launchSecurity>
</domain>
XML
# libvirt may refuse launchSecurity on a host without SEV: define it without.
sed '/launchSecurity/d' "$LVDIR/domain.xml" > "$LVDIR/define.xml"
virsh -c "$URI" define "$LVDIR/define.xml" > "$LVDIR/define.out" 2>&1 || { cat "$LVDIR/define.out"; fail "libvirt cannot define a domain"; }

cat > "$LVDIR/memconvd.conf" <<CONF
[Policy]
PluginDirectory=$(cd "$top_builddir" && pwd)/plugins/.libs
Plugins=libvirt

[Plugin libvirt]
uri=$URI
refresh-sec=1
CONF
start_daemon --config "$LVDIR/memconvd.conf" --admin-socket "$LVDIR/admin.sock"
trap cleanup EXIT
printf 'admin-socket=%s\ntimeout-ms=2000\n' "$LVDIR/admin.sock" > "$LVDIR/hook.conf"
export MEMCONVD_LIBVIRT_HOOK_CONF=$LVDIR/hook.conf
ctl() { "$CTL" --admin-socket "$LVDIR/admin.sock" "$@"; }

"$VMM" --socket "$SOCK" --name stranger --scenario demo > "$LVDIR/stranger.out" 2>&1 && fail "an unregistered VM attached"
log_has "Refusing VM stranger" "policy plugin libvirt" || fail "no refusal record for the unregistered VM"

"$HOOK" "$NAME" prepare begin - < "$LVDIR/domain.xml" || fail "the hook failed at prepare begin"
run_vmm vm-real --uuid "$UUID" --scenario explicit
for _ in $(seq 500); do
        ctl --json show vm-real > "$LVDIR/show.json" || fail "show failed"
        grep -q "\"domain\": *\"$NAME (shut off)\"" "$LVDIR/show.json" && break
        sleep 0.02
done
grep -q "\"domain\": *\"$NAME (shut off)\"" "$LVDIR/show.json" ||
        { cat "$LVDIR/show.json"; ctl policy show vm-real; fail "the VM is not named by libvirtd's view of its domain"; }
ctl list | grep -q "$NAME (shut off)" || fail "list does not name the domain"
ctl policy show vm-real | grep -q "failures=0" || { ctl policy show vm-real; fail "the plugin failed to reach libvirtd"; }
kill -0 "$DAEMON_PID" || fail "memconvd died (its system-call filter and libvirt's client disagree?)"
"$HOOK" "$NAME" release end - < "$LVDIR/domain.xml" || fail "the hook failed at release end"
stop_daemon
echo "PASS"
