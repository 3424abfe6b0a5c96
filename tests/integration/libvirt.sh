#!/bin/bash
# libvirt integration end to end. First memconvd with RequireRegistration=yes and
# the explicit-only plugin; the real hook program registers a domain from its
# XML at "prepare begin" (with a policy in the domain's <metadata>); a VMM
# with that uuid may attach and gets the policy, one with another uuid is
# refused and nothing is created; "release end" forgets the domain. Then the
# same gate as the "libvirt" policy plugin, which also names each VM's domain
# as libvirt's test driver reports it, and refuses bad settings.
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
start_daemon --config "$LVDIR/memconvd.conf" --admin-socket "$LVDIR/admin.sock" --state-dir "$LVDIR/state"
trap 'stop_daemon_quiet; rm -rf "$LVDIR"' EXIT
printf 'admin-socket=%s\ntimeout-ms=2000\n' "$LVDIR/admin.sock" > "$LVDIR/hook.conf"
export MEMCONVD_LIBVIRT_HOOK_CONF=$LVDIR/hook.conf
UUID=5eb1f0a2-7c3d-4e5f-8a9b-0c1d2e3f4a5b
cat > "$LVDIR/domain.xml" <<XML
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
"$HOOK" lv-guest prepare begin - < "$LVDIR/domain.xml" || fail "the hook failed at prepare begin"
log_has "Domain lv-guest ($UUID) registered" || fail "no registration record"
"$HOOK" lv-guest start begin - < /dev/null || fail "the hook failed an operation it should ignore"
# The registration survives a daemon restart (libvirt does not prepare the domain twice).
stop_daemon
start_daemon --config "$LVDIR/memconvd.conf" --admin-socket "$LVDIR/admin.sock" --state-dir "$LVDIR/state"
trap 'stop_daemon_quiet; rm -rf "$LVDIR"' EXIT
ctl status > /dev/null || fail "the restarted daemon does not answer"
log_has "Restored 1 libvirt domain registration(s)" || fail "the registration was not restored"
run_vmm lv-guest --uuid "$UUID" --scenario explicit
log_has "VM lv-guest: policy of explicit-only set to" "action=stop-vm" || fail "the domain's policy was not applied"
ctl policy show lv-guest | grep -q "action=stop-vm" || fail "policy show does not show the domain's policy"

# An implicit conversion is now refused with the domain's action.
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario implicit > "$TESTDIR/implicit.out" 2>&1 \
        && fail "implicit conversions passed despite explicit-only"
log_has "MEMCONV_EVENT=refused" "MEMCONV_CODE=policy-refused" || fail "no policy refusal record"

# release end: the domain and its VM instances are forgotten.
"$HOOK" lv-guest release end - < "$LVDIR/domain.xml" || fail "the hook failed at release end"
ctl show "$UUID" > /dev/null 2>&1 && fail "the VM is still known after release"
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario demo > /dev/null 2>&1 \
        && fail "the released domain could still attach"
# ... and stays forgotten after a restart.
stop_daemon
start_daemon --config "$LVDIR/memconvd.conf" --admin-socket "$LVDIR/admin.sock" --state-dir "$LVDIR/state"
trap 'stop_daemon_quiet; rm -rf "$LVDIR"' EXIT
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario demo > /dev/null 2>&1 \
        && fail "the released domain could attach after a restart"
# A registration that cannot be written (its temporary file's name is taken
# by a directory, which stops root too) is refused and changes nothing.
mkdir "$LVDIR/state/.domains.registry.tmp"
"$HOOK" lv-guest prepare begin - < "$LVDIR/domain.xml" 2> "$LVDIR/hook.err" && fail "a registration that could not be saved succeeded"
grep -q "cannot write the registration" "$LVDIR/hook.err" || { cat "$LVDIR/hook.err"; fail "no clear error for an unsaved registration"; }
"$VMM" --socket "$SOCK" --name lv-guest --uuid "$UUID" --scenario demo > /dev/null 2>&1 \
        && fail "an unsaved registration let the VM attach"
rmdir "$LVDIR/state/.domains.registry.tmp"
stop_daemon

# ------------------------------------------------------------------ the libvirt plugin
# The same gate as a policy plugin, and memconvctl list naming each VM's
# domain as libvirt itself reports it, over a read-only connection to
# libvirt's test driver (test:///default: one running domain, "test").
PLUGDIR=$(cd "$top_builddir" && pwd)/plugins/.libs
[ -e "$PLUGDIR/libvirt.so" ] || fail "the libvirt plugin was not built"
cat > "$LVDIR/plugin.conf" <<CONF
[Policy]
PluginDirectory=$PLUGDIR
Plugins=libvirt

[Plugin libvirt]
uri=test:///default
refresh-sec=1
CONF
start_daemon --config "$LVDIR/plugin.conf" --admin-socket "$LVDIR/admin.sock"
trap 'stop_daemon_quiet; rm -rf "$LVDIR"' EXIT
"$VMM" --socket "$SOCK" --name stranger --scenario demo > "$TESTDIR/stranger.out" 2>&1 && fail "the plugin let an unregistered VM attach"
grep -q "policy plugin libvirt" "$TESTDIR/stranger.out" "$DAEMON_LOG" || { cat "$TESTDIR/stranger.out"; fail "no clear refusal from the plugin"; }
log_has "Refusing VM stranger" "not registered by libvirt" || fail "the plugin's refusal was not logged"
[ "$(ctl --json list | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["vms"]))')" = 0 ] || fail "a refused VM was created"

TEST_UUID=6695eb01-f6a4-8304-79aa-97f2502e193f
cat > "$LVDIR/test-domain.xml" <<XML
<domain type='test'>
  <name>test</name>
  <uuid>$TEST_UUID</uuid>
</domain>
XML
"$HOOK" test prepare begin - < "$LVDIR/test-domain.xml" || fail "the hook failed at prepare begin"
run_vmm vm-of-test --uuid "$TEST_UUID" --scenario explicit
# libvirt's own view: the domain's name and state (the first walk may still be running)
for _ in $(seq 1000); do
        ctl --json list > "$LVDIR/list.json" || fail "list failed"
        grep -q '"domain": *"test (running)"' "$LVDIR/list.json" && break
        sleep 0.01
done
grep -q '"domain": *"test (running)"' "$LVDIR/list.json" || { cat "$LVDIR/list.json"; fail "list does not name the VM's libvirt domain"; }
ctl list | grep "vm-of-test" | grep -q "test (running)" || { ctl list; fail "the list table has no DOMAIN"; }
ctl show vm-of-test | grep -q "Domain:.*test (running)" || fail "show does not name the domain"
ctl policy show vm-of-test | grep -q "uri=test:///default require-registration=yes" || fail "policy show lacks the plugin's settings"
# registered by the hook, unknown to libvirt: named by its registration
OTHER_UUID=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
sed -e "s/$TEST_UUID/$OTHER_UUID/" -e "s/<name>test</<name>lv-only</" "$LVDIR/test-domain.xml" > "$LVDIR/other.xml"
"$HOOK" lv-only prepare begin - < "$LVDIR/other.xml" || fail "the hook failed at prepare begin"
run_vmm vm-of-other --uuid "$OTHER_UUID" --scenario explicit
ctl --json show vm-of-other | grep -q '"domain": *"lv-only"' || fail "a registered VM libvirt does not know has no domain name"
# the plugin takes no per-VM settings: refused, nothing changed
ctl policy set vm-of-test libvirt uri=x > "$LVDIR/set.out" 2>&1 && fail "a per-VM setting of the libvirt plugin was accepted"
grep -q "no per-VM settings" "$LVDIR/set.out" || { cat "$LVDIR/set.out"; fail "no clear refusal of a per-VM setting"; }
ctl policy show vm-of-test | grep -q "uri=test:///default" || fail "a refused setting changed the policy"
stop_daemon

# A bad setting stops start-up with the plugin's reason.
sed -e 's/refresh-sec=1/refresh-sec=0/' "$LVDIR/plugin.conf" > "$LVDIR/bad.conf"
"$MEMCONVD" --config "$LVDIR/bad.conf" --socket "$LVDIR/bad.sock" --state-dir "$LVDIR/bad-state" --log-target=stderr \
        > "$LVDIR/bad.out" 2>&1 && fail "memconvd started with refresh-sec=0"
grep -q "refresh-sec=0" "$LVDIR/bad.out" || { cat "$LVDIR/bad.out"; fail "the start-up error does not name the bad setting"; }
[ ! -S "$LVDIR/bad.sock" ] || fail "a socket was left behind by a failed start"
echo "PASS"
