#!/bin/bash
# check-install.sh BUILDDIR - what a packager gets from `make install DESTDIR=...`:
# every program, library, plugin, header, pkg-config file, man page, systemd
# unit, sysusers/tmpfiles entry and the libvirt hook in its place; the
# installed header and .pc file build a VMM and a policy plugin out of tree
# (through PKG_CONFIG_SYSROOT_DIR, as a packager's build root does); the
# installed daemon starts from its installed plugin directory; `make
# uninstall` leaves no file behind.
set -euo pipefail
build=$(cd "${1:?usage: check-install.sh BUILDDIR}" && pwd)
src=$(cd "$(dirname "$0")/.." && pwd)
dest=$(mktemp -d "${TMPDIR:-/tmp}/memconv-install.XXXXXX")
trap 'rm -rf "$dest"' EXIT
fail() { echo "check-install: $*" >&2; exit 1; }

make -C "$build" -s install DESTDIR="$dest" > "$dest.log" 2>&1 || { tail -n 30 "$dest.log"; fail "make install failed"; }
rm -f "$dest.log"
var() { sed -n "s|^$1 = ||p" "$build/Makefile" | head -n 1; }
prefix=$(var prefix)
sbindir=${prefix}/sbin
libdir=${prefix}/lib
includedir=${prefix}/include
mandir=${prefix}/share/man
unitdir=$(var systemdsystemunitdir)
hookdir=$(var libvirthookdir | sed "s|\${sysconfdir}|$(var sysconfdir | sed "s|\${prefix}|$prefix|")|")

expect=(
        "$sbindir/memconvd" "$sbindir/memconvctl"
        "$libdir/libmemconv.so.0" "$libdir/pkgconfig/libmemconv.pc"
        "$includedir/memconv.h" "$includedir/memconv-policy.h"
        "$libdir/memconvd/plugins/explicit-only.so" "$libdir/memconvd/plugins/rate-limit.so"
        "$mandir/man8/memconvd.8" "$mandir/man8/memconvctl.8" "$mandir/man5/memconvd.conf.5"
        "$mandir/man3/libmemconv.3" "$mandir/man7/memconv-protocol.7"
        "$unitdir/memconvd.service" "$unitdir/memconvd.socket" "$unitdir/memconvd-admin.socket"
)
if [ -n "$(var LIBVIRT_LIBS)" ]; then
        expect+=("$libdir/memconvd/plugins/libvirt.so" "$hookdir/memconvd-libvirt-hook"
                 "$mandir/man8/memconvd-libvirt-hook.8")
fi
missing=0
for f in "${expect[@]}"; do
        [ -e "$dest$f" ] || { echo "missing: $f"; missing=1; }
done
ls "$dest"/usr/lib/sysusers.d/memconvd.conf "$dest"/usr/lib/tmpfiles.d/memconvd.conf > /dev/null 2>&1 ||
        find "$dest" -path '*sysusers.d/memconvd.conf' | grep -q . || { echo "missing: sysusers.d/memconvd.conf"; missing=1; }
find "$dest" -path '*tmpfiles.d/memconvd.conf' | grep -q . || { echo "missing: tmpfiles.d/memconvd.conf"; missing=1; }
[ "$missing" = 0 ] || fail "files are missing from the installed tree"
! find "$dest$libdir/memconvd/plugins" -name '*.la' | grep -q . || fail "libtool archives of plugins were installed"
grep -q "^ExecStart=$sbindir/memconvd" "$dest$unitdir/memconvd.service" || fail "memconvd.service does not run $sbindir/memconvd"

# A VMM and a plugin built against the installed tree only.
export PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_LIBDIR=$dest$libdir/pkgconfig
cat > "$dest/vmm.c" <<'C'
#include <memconv.h>
int main(void)
{
        mc_client *c = NULL;
        return mc_client_connect("/nonexistent/vmm.sock", &c) < 0 ? 0 : 1;
}
C
cc -o "$dest/vmm" "$dest/vmm.c" $(pkg-config --cflags --libs libmemconv) || fail "a VMM does not build against the installed libmemconv"
LD_LIBRARY_PATH=$dest$libdir "$dest/vmm" || fail "the out-of-tree VMM did not run"
cat > "$dest/noop.c" <<'C'
#include <errno.h>
#include <memconv-policy.h>
static int init(const struct mc_policy_setting *s, size_t n, void **st, char *e, size_t el)
{ (void) s; (void) e; (void) el; *st = 0; return n ? -EINVAL : 0; }
static void done(void *st) { (void) st; }
static int vm_set(void *st, uint64_t id, const struct mc_policy_setting *s, size_t n, char *e, size_t el)
{ (void) st; (void) id; (void) s; (void) n; (void) e; (void) el; return 0; }
static void check(void *st, const struct mc_policy_request *r, struct mc_policy_result *res)
{ (void) st; (void) r; res->verdict = MC_POLICY_ALLOW; }
static void gone(void *st, uint64_t id) { (void) st; (void) id; }
static void describe(void *st, uint64_t id, char *b, size_t l) { (void) st; (void) id; if (l) b[0] = 0; }
/* Built as a plugin of the original ABI: without the optional entry points. */
static const struct mc_policy_plugin p = { MC_POLICY_ABI_VERSION, MC_POLICY_PLUGIN_SIZE_V1_0, "noop",
                                           init, done, vm_set, check, gone, describe, 0, 0 };
const struct mc_policy_plugin *memconv_policy_plugin_v1(void) { return &p; }
C
mkdir -p "$dest/plugins"
cc -shared -fPIC -Wall -Werror -I"$dest$includedir" -o "$dest/plugins/noop.so" "$dest/noop.c" ||
        fail "a plugin does not build against the installed memconv-policy.h"
# The installed daemon, its installed plugins and an out-of-tree one in one chain.
cp "$dest$libdir/memconvd/plugins/explicit-only.so" "$dest/plugins/"
printf '[Policy]\nPluginDirectory=%s\nPlugins=noop explicit-only\n' "$dest/plugins" > "$dest/memconvd.conf"
LD_LIBRARY_PATH=$dest$libdir "$dest$sbindir/memconvd" --config "$dest/memconvd.conf" --socket "$dest/vmm.sock" \
        --admin-socket "$dest/admin.sock" --state-dir "$dest/state" --log-target=stderr 2> "$dest/daemon.log" &
pid=$!
for _ in $(seq 300); do
        LD_LIBRARY_PATH=$dest$libdir "$dest$sbindir/memconvctl" --admin-socket "$dest/admin.sock" status > /dev/null 2>&1 && break
        sleep 0.01
done
LD_LIBRARY_PATH=$dest$libdir "$dest$sbindir/memconvctl" --admin-socket "$dest/admin.sock" policy show > "$dest/policy.out" 2>&1 || true
kill "$pid" 2> /dev/null; wait "$pid" || { cat "$dest/daemon.log"; fail "the installed daemon did not run"; }
grep -q "Policy chain: noop explicit-only" "$dest/daemon.log" || { cat "$dest/daemon.log"; fail "the installed daemon did not load both plugins"; }

make -C "$build" -s uninstall DESTDIR="$dest" > /dev/null 2>&1 || fail "make uninstall failed"
left=$(find "$dest$prefix" "$dest$unitdir" -type f 2> /dev/null | grep -v -e "^$dest/vmm" -e "^$dest/plugins" || true)
[ -z "$left" ] || { echo "$left"; fail "make uninstall left files behind"; }
echo "check-install: OK (${#expect[@]} files in place; a VMM and a v1.0 plugin build against the installed tree; uninstall clean)"
