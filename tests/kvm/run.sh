#!/bin/bash
# tests/kvm/run.sh - memconvd against real private memory: KVM's
# sw-protected VMs in a nested guest under QEMU's TCG.
#
# 1. prepare: Debian bookworm-backports' linux-source-6.12 and the matching
#    unsigned kernel image and headers, read through a private apt
#    configuration (nothing under /etc/apt changes); kvm.ko and kvm-amd.ko
#    rebuilt with Debian's config + CONFIG_KVM_SW_PROTECTED_VM, Debian's
#    compiler and Module.symvers, to load on Debian's own vmlinuz. Cached
#    in $MEMCONV_KVM_CACHE (default ${XDG_CACHE_HOME:-/var/cache}/memconvd-kvm)
#    under a key hashed from the package version, this script and the
#    config options; a change of any of them rebuilds.
# 2. an initramfs: busybox-static, those modules, memconvd, memconvctl, the
#    reference VMM, their shared libraries, and guest-test.sh as the driver
#    (rebuilt every run: it follows the build tree).
# 3. boot it: qemu-system-x86_64 -accel tcg -cpu max (svm + npt), -smp 2.
# 4. the console's "KVMTEST: PASS|FAIL name" lines are the results.
#
# Exit: 0 all passed, 1 a failure (or the environment could not be
# prepared or booted: the reason is printed), 77 skipped - only when
# qemu-system-x86_64 is not installed and cannot be installed.
# Environment: top_builddir, top_srcdir (default: this tree),
# MEMCONV_KVM_CACHE, MEMCONV_KVM_TIMEOUT (seconds for the boot, default 1500),
# MEMCONV_KVM_OUT (where console.log goes, default $top_builddir/tests/kvm).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
CACHE=${MEMCONV_KVM_CACHE:-${XDG_CACHE_HOME:-/var/cache}/memconvd-kvm}
OUT=${MEMCONV_KVM_OUT:-$top_builddir/tests/kvm}
TIMEOUT=${MEMCONV_KVM_TIMEOUT:-1500}
SUITE=bookworm-backports
SERIES=6.12
FLAVOUR=amd64
CONFIG_CHANGES="--enable KVM_SW_PROTECTED_VM --disable MODULE_SIG_ALL --set-str MODULE_SIG_KEY '' --set-str SYSTEM_TRUSTED_KEYS ''"
export DEBIAN_FRONTEND=noninteractive

die() { echo "kvm: ERROR: $*" >&2; exit 1; }
note() { echo "kvm: $*"; }
t_start=$(date +%s)

# ------------------------------------------------------------ host packages
need_pkgs() {
        local missing=() p
        for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
        [ ${#missing[@]} = 0 ] && return 0
        note "installing ${missing[*]}"
        [ "$(id -u)" = 0 ] || return 1
        apt-get install -y -q "${missing[@]}" > "$CACHE/apt-install.log" 2>&1 ||
                { apt-get update -q >> "$CACHE/apt-install.log" 2>&1 && apt-get install -y -q "${missing[@]}" >> "$CACHE/apt-install.log" 2>&1; }
}
mkdir -p "$CACHE" || die "cannot create the cache directory $CACHE"
if ! command -v qemu-system-x86_64 > /dev/null; then
        need_pkgs qemu-system-x86 || true
        command -v qemu-system-x86_64 > /dev/null || { echo "SKIP: qemu-system-x86_64 is not installable (see $CACHE/apt-install.log)"; exit 77; }
fi
need_pkgs busybox-static dwarves gcc-12 make bc bison flex libelf-dev libssl-dev cpio xz-utils kmod ||
        die "cannot install the kernel build packages (see $CACHE/apt-install.log)"

# ------------------------------------------------------------ the kernel
APT=$CACHE/apt
mkdir -p "$APT/lists/partial" "$APT/archives/partial" "$APT/etc" "$APT/debs"
echo "deb http://deb.debian.org/debian $SUITE main" > "$APT/etc/sources.list"
touch "$APT/status"
aptopt=(-o Dir::Etc::SourceList="$APT/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o Dir::State::Lists="$APT/lists" -o Dir::State::Status="$APT/status" -o Dir::Cache="$APT"
        -o Dir::Cache::Archives="$APT/archives" -o APT::Sandbox::User=root)
ver=
if apt-get "${aptopt[@]}" update -q > "$APT/update.log" 2>&1; then
        ver=$(apt-cache "${aptopt[@]}" policy "linux-source-$SERIES" | sed -n 's/^ *Candidate: //p')
        [ "$ver" = "(none)" ] && ver=
fi
if [ -z "$ver" ]; then
        # Offline: the newest kernel already built.
        last=$(ls -td "$CACHE"/kernel-*/ 2>/dev/null | head -n 1)
        [ -n "$last" ] && [ -f "$last/ok" ] || die "cannot read $SUITE (see $APT/update.log) and no kernel is cached"
        ver=$(cat "$last/version")
        note "$SUITE unreachable: using the cached kernel $ver"
fi
key=$( { echo "$ver $FLAVOUR $CONFIG_CHANGES"; sed -n '/^# BEGIN kernel build/,/^# END kernel build/p' "$0"; } | sha256sum | cut -c1-16)
KDIR=$CACHE/kernel-$key
if [ -f "$KDIR/ok" ]; then
        note "kernel: cached $KDIR ($ver)"
else
# BEGIN kernel build
        note "kernel: building $KDIR (linux-source-$SERIES $ver + CONFIG_KVM_SW_PROTECTED_VM)"
        tb=$(date +%s)
        rm -rf "$KDIR" && mkdir -p "$KDIR/x" "$KDIR/modules" || die "cannot create $KDIR"
        # 6.12.95-1~bpo12+1 -> 6.12.95+deb12
        abi=$(echo "$ver" | sed -E 's/^([0-9.]+)-.*~bpo([0-9]+)\+.*/\1+deb\2/')
        krel=$abi-$FLAVOUR
        ( cd "$APT/debs" && rm -f ./*.deb &&
          apt-get "${aptopt[@]}" download "linux-source-$SERIES=$ver" "linux-image-$krel-unsigned=$ver" \
                "linux-headers-$krel=$ver" "linux-headers-$abi-common=$ver" ) > "$KDIR/download.log" 2>&1 ||
                die "cannot download the $ver kernel packages (see $KDIR/download.log)"
        for d in "$APT"/debs/*.deb; do dpkg-deb -x "$d" "$KDIR/x" || die "cannot unpack $d"; done
        tar -xJf "$KDIR/x/usr/src/linux-source-$SERIES.tar.xz" -C "$KDIR" || die "cannot unpack linux-source-$SERIES"
        src=$KDIR/linux-source-$SERIES
        cp "$KDIR/x/boot/config-$krel" "$src/.config" && cp "$KDIR/x/usr/src/linux-headers-$krel/Module.symvers" "$src/" ||
                die "the $krel image or headers lack config or Module.symvers"
        cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ ]*\) .*/\1/p' "$src/.config")
        command -v "$cc" > /dev/null || die "Debian's kernel compiler $cc is not installed"
        kmake=(make -C "$src" -j"$(nproc)" CC="$cc" KERNELRELEASE="$krel")
        ( cd "$src" && eval "scripts/config $CONFIG_CHANGES" &&
          "${kmake[@]}" olddefconfig && grep -q '^CONFIG_KVM_SW_PROTECTED_VM=y' .config &&
          grep -q '^CONFIG_DEBUG_INFO_BTF=y' .config &&
          "${kmake[@]}" modules_prepare && "${kmake[@]}" M=arch/x86/kvm modules ) > "$KDIR/build.log" 2>&1 ||
                { tail -n 30 "$KDIR/build.log"; die "the KVM module build failed (see $KDIR/build.log)"; }
        m=$KDIR/x/lib/modules/$krel/kernel
        cp "$src/arch/x86/kvm/kvm.ko" "$src/arch/x86/kvm/kvm-amd.ko" "$KDIR/modules/" &&
        xz -dc "$m/virt/lib/irqbypass.ko.xz" > "$KDIR/modules/irqbypass.ko" &&
        xz -dc "$m/drivers/crypto/ccp/ccp.ko.xz" > "$KDIR/modules/ccp.ko" &&
        cp "$KDIR/x/boot/vmlinuz-$krel" "$KDIR/vmlinuz" || die "cannot collect the kernel and modules"
        echo "$ver" > "$KDIR/version"
        rm -rf "$src" "$KDIR/x"
        touch "$KDIR/ok"
        note "kernel: built in $(( $(date +%s) - tb )) s"
# END kernel build
fi
# Older kernels of other keys are not needed any more.
for d in "$CACHE"/kernel-*; do [ "$d" = "$KDIR" ] || rm -rf "$d"; done

# ------------------------------------------------------------ the initramfs
for b in memconvd memconvctl; do [ -x "$top_builddir/$b" ] || die "$top_builddir/$b is not built (make)"; done
vmmbin=$top_builddir/tests/vmm/.libs/memconv-vmm
[ -x "$vmmbin" ] || vmmbin=$top_builddir/tests/vmm/memconv-vmm
file -b "$vmmbin" 2>/dev/null | grep -q ELF || head -c 4 "$vmmbin" | grep -q ELF || die "no reference VMM binary in $top_builddir/tests/vmm (make)"
mkdir -p "$OUT" || die "cannot create $OUT"
ROOT=$(mktemp -d "${TMPDIR:-/tmp}/memconv-kvm-root.XXXXXX") || die "mktemp"
trap 'rm -rf "$ROOT"' EXIT
mkdir -p "$ROOT"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,tmp,run,modules} || die "initramfs layout"
cp /bin/busybox "$ROOT/bin/busybox" || die "busybox-static is missing"
for a in $("$ROOT/bin/busybox" --list); do [ -e "$ROOT/bin/$a" ] || ln -s busybox "$ROOT/bin/$a"; done
cp "$top_builddir/memconvd" "$top_builddir/memconvctl" "$ROOT/bin/" && cp "$vmmbin" "$ROOT/bin/memconv-vmm" &&
        cp "$KDIR"/modules/*.ko "$ROOT/modules/" && cp "$here/guest-test.sh" "$ROOT/bin/guest-test.sh" ||
        die "cannot fill the initramfs"
libdirs="$top_builddir/.libs"
for b in "$ROOT"/bin/memconvd "$ROOT"/bin/memconvctl "$ROOT"/bin/memconv-vmm; do
        LD_LIBRARY_PATH=$libdirs ldd "$b" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }'
done | sort -u | while read -r l; do
        [ -f "$l" ] || { echo "kvm: ERROR: library $l not found" >&2; exit 1; }
        mkdir -p "$ROOT$(dirname "$l")" && cp -L "$l" "$ROOT$l"
done || die "cannot copy the shared libraries"
[ -e "$ROOT/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$ROOT/lib64/"
# The explicit-only policy plugin, for the policy scenario.
mkdir -p "$ROOT/lib/memconvd/plugins" && cp "$top_builddir/plugins/.libs/explicit-only.so" "$ROOT/lib/memconvd/plugins/" ||
        die "no policy plugin in $top_builddir/plugins/.libs (make)"
# libmemconv from the build tree lands under its build path: put it in /lib.
find "$ROOT" -name 'libmemconv.so*' -path "*/.libs/*" -exec mv {} "$ROOT/lib/" \;
cat > "$ROOT/init" <<'INIT'
#!/bin/sh
export PATH=/bin LD_LIBRARY_PATH=/lib:/lib/x86_64-linux-gnu
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
echo "KVMTEST: BOOTED $(uname -r) $(nproc) CPUs"
for m in irqbypass ccp kvm kvm-amd; do
        insmod /modules/$m.ko || { echo "KVMTEST: FAIL setup: insmod $m.ko failed"; echo "KVMTEST: END"; poweroff -f; }
done
grep -q svm /proc/cpuinfo || echo "KVMTEST: FAIL setup: no svm in the guest's CPU"
[ -c /dev/kvm ] || { echo "KVMTEST: FAIL setup: no /dev/kvm after loading kvm-amd"; dmesg | tail -n 20; echo "KVMTEST: END"; poweroff -f; }
echo "kvm_amd: npt=$(cat /sys/module/kvm_amd/parameters/npt) tdp_mmu=$(cat /sys/module/kvm/parameters/tdp_mmu)"
/bin/guest-test.sh
sync
poweroff -f
INIT
chmod +x "$ROOT/init"
( cd "$ROOT" && find . | cpio -o -H newc --quiet | gzip -1 ) > "$OUT/initramfs.gz" || die "cannot write the initramfs"
t_prep=$(date +%s)
note "prepared in $(( t_prep - t_start )) s; booting (TCG, timeout ${TIMEOUT} s)"

# ------------------------------------------------------------ boot
LOG=$OUT/console.log
timeout "$TIMEOUT" qemu-system-x86_64 -accel tcg,thread=${MEMCONV_KVM_TCG_THREAD:-single} -machine q35 -cpu max -smp 2 -m 2048 \
        -kernel "$KDIR/vmlinuz" -initrd "$OUT/initramfs.gz" \
        -append "console=ttyS0 panic=-1 quiet loglevel=4" -nographic -no-reboot -monitor none \
        < /dev/null > "$LOG" 2>&1
qrc=$?
t_end=$(date +%s)
# Drop carriage returns and the escape sequences the firmware prints.
sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' "$LOG" > "$LOG.txt" && mv "$LOG.txt" "$LOG"
grep -v '^KVMTEST:' "$LOG" | grep -E '^(race|killed|private|policy|kvm_amd|---|vmm: real|memconvd exit|vcpu[0-9]: KVM_EXIT)' | head -n 60
grep '^KVMTEST:' "$LOG"
note "boot + scenarios took $(( t_end - t_prep )) s, whole run $(( t_end - t_start )) s; console: $LOG"
grep -q 'KVMTEST: BOOTED' "$LOG" || { tail -n 40 "$LOG"; die "the nested guest did not boot (qemu exit $qrc)"; }
grep -q '^KVMTEST: END' "$LOG" || { tail -n 40 "$LOG"; die "the nested run did not finish (qemu exit $qrc; 124 = timeout after ${TIMEOUT} s)"; }
pass=$(grep -c '^KVMTEST: PASS' "$LOG")
failn=$(grep -c '^KVMTEST: FAIL' "$LOG")
note "$pass passed, $failn failed"
[ "$failn" = 0 ] && [ "$pass" -ge 8 ] || exit 1
exit 0
