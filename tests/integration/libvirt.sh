#!/bin/bash
# libvirt integration end to end: memconvd with RequireRegistration=yes and
# the explicit-only plugin; the real hook program registers a domain from its
# XML at "prepare begin" (with a policy in the domain's <metadata>); a VMM
# with that uuid may attach and gets the policy, one with another uuid is
# refused and nothing is created; "release end" forgets the domain.
. "${top_srcdir:-.}/tests/integration/lib.sh"
need_kvm
HOOK=$top_builddir/memconvd-libvirt-hook
CTL=$top_builddir/memconvctl
[ -x "$HOOK" ] || skip "built without libvirt support"
LVDIR=$(mktemp -d "${TMPDIR:-/tmp}/memconv-lv.XXXXXX")
trap 'rm -rf "$LVDIR"' EXIT
cat > "$LVDIR/memconvd.conf" <<CONF
[Policy]
PluginDirectory=$(cd "$top_builddir" && pwd)/plugins/.libs
Plugins=explicit-only
RequireRegistration=yes
CONF
start_daemon --config "$LVDIR/memconvd.conf" --admin-socket "$LVDIR/admin.sock"
trap 'stop_daemon_quiet; rm -rf "$LVDIR"' EXIT
printf 'admin-socket=%s\ntimeout-ms=2000\n' "$LVDIR/admin.sock" > "$LVDIR/hook.conf"
export MEMCONVD_LIBVIRT_HOOK_CONF=$LVDIR/hook.conf
UUID=5eb1f0a2-7c3d-4e5f-8a9b-0c1d2e3f4a5b
cat > "$TESTDIR/domain.xml" <<XML
<domain type='kvm'>
  <name>lv-guest</name>
  <uuid>$UUID</uuid>
  <metadata>
    <mc:policy xmlns:mc="http://memconvd.org/schemas/domain/1.0">explicit-only enforce=yes action=stop-vm</mc:policy>
  </metadata>
  <launchSecurity type='sev-snp'><policy>0x00030000</policy></launchSecurity>
</domain>
XML
ctl() { "$CTL" --admin-socket "$LVDIR/admin.sock" "$@"; }

# An unregistered domain may not attach: refused, nothing created.
"$VMM" --socket "$SOCK" --name stranger --scenario demo > "$TESTDIR/stranger.out" 2>&1 && fail "an unregistered VM attached"
grep -q "not registered by libvirt" "$TESTDIR/stranger.out" "$DAEMON_LOG" || fail "no clear refusal for the unregistered VM"
[ "$(ctl --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["vms"]))')" = 0 ] || fail "a VM was created"

# prepare begin: registered; the VMM attaches and gets the domain's policy.
"$HOOK" lv-guest prepare begin - < "$TESTDIR/domain.xml" || fail "the hook failed at prepare begin"
log_has "Domain lv-guest ($UUID) registered" || fail "no registration record"
"$HOOK" lv-guest start begin - < /dev/null || fail "the hook failed an operation it should ignore"
run_vmm lv-guest --uuid "$UUID" --scenario explicit
log_has "VM lv-guest: policy of explicit-only set to" "action=stop-vm" || fail "the domain's policy was not applied"
ctl policy show lv-guest | grep -q "action=stop-vm" || fail "policy show does not show the domain's policy"

# An implicit conversion is now refused with the domain's action.
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario implicit > "$TESTDIR/implicit.out" 2>&1 \
        && fail "implicit conversions passed despite explicit-only"
log_has "MEMCONV_EVENT=refused" "MEMCONV_CODE=policy-refused" || fail "no policy refusal record"

# release end: the domain and its VM instances are forgotten.
"$HOOK" lv-guest release end - < "$TESTDIR/domain.xml" || fail "the hook failed at release end"
ctl show "$UUID" > /dev/null 2>&1 && fail "the VM is still known after release"
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario demo > /dev/null 2>&1 \
        && fail "the released domain could still attach"
stop_daemon
echo "PASS"
