#!/bin/bash
# run.sh - build the fuzz targets with libFuzzer (clang, ASan+UBSan) and run them.
#
# Usage: tests/fuzz/run.sh [--merge] [--seed] [--jobs N] SECONDS [TARGET...]
#   SECONDS   how long each target runs (0: only build and replay the corpus)
#   TARGET    fuzz-message fuzz-admin fuzz-journal fuzz-planner fuzz-config
#             fuzz-domain-xml (default: all)
#   --merge   afterwards, merge the inputs that found new coverage into
#             tests/fuzz/corpus/TARGET (otherwise the corpus is left alone:
#             each run works on a copy)
#   --seed    first regenerate the seed files with gen-corpus (same names,
#             same contents; files added by --merge are kept)
#   --jobs N  run N targets at once (default 1)
# Environment: top_builddir (holds config.h and proto/memconv.pb-c.c; default
# the current directory if it has config.h, else the source tree),
# top_srcdir, CC (default clang), FUZZ_OUT (default $top_builddir/tests/fuzz/out).
# Crashes land in $FUZZ_OUT/TARGET/artifacts, logs in $FUZZ_OUT/TARGET/log.
# Exit status: 0 if no target found anything, 1 otherwise, 2 on usage/build errors.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
if [ -z "${top_builddir:-}" ]; then
        if [ -f ./config.h ]; then top_builddir=$(pwd); else top_builddir=$top_srcdir; fi
fi
CC=${CC:-clang}
FUZZ_OUT=${FUZZ_OUT:-$top_builddir/tests/fuzz/out}
all_targets="fuzz-message fuzz-admin fuzz-journal fuzz-planner fuzz-config"
# fuzz-domain-xml (the libvirt hook's input) when libxml2 is there
pkg-config --exists libxml-2.0 2> /dev/null && all_targets="$all_targets fuzz-domain-xml"

merge=0 seed=0 jobs=1 pos=()
while [ $# -gt 0 ]; do
        case $1 in
        --merge) merge=1 ;;
        --seed) seed=1 ;;
        --jobs) jobs=${2:-}; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
        *) pos+=("$1") ;;
        esac
        shift
done
set -- "${pos[@]}"
[ $# -ge 1 ] && [[ $1 =~ ^[0-9]+$ ]] && [[ $jobs =~ ^[1-9][0-9]*$ ]] ||
        { echo "usage: run.sh [--merge] [--seed] [--jobs N] SECONDS [TARGET...]" >&2; exit 2; }
seconds=$1; shift
targets=${*:-$all_targets}

[ -f "$top_builddir/config.h" ] || { echo "run.sh: no config.h in $top_builddir (configure first, or set top_builddir)" >&2; exit 2; }
[ -f "$top_builddir/proto/memconv.pb-c.c" ] || make -C "$top_builddir" proto/memconv.pb-c.c >/dev/null ||
        { echo "run.sh: cannot generate proto/memconv.pb-c.c" >&2; exit 2; }

bin=$FUZZ_OUT/bin
mkdir -p "$bin"
echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' > "$bin/probe.c"
$CC -fsanitize=fuzzer "$bin/probe.c" -o "$bin/probe" 2>/dev/null ||
        { echo "run.sh: $CC cannot link -fsanitize=fuzzer (Debian: apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
cflags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
        -include $top_builddir/config.h -I$top_srcdir/lib -I$top_builddir/proto
        $(pkg-config --cflags libprotobuf-c)"
core="$top_srcdir/lib/rangemap.c $top_srcdir/lib/planner.c $top_srcdir/lib/frame.c
      $top_srcdir/lib/message.c $top_srcdir/lib/journal.c $top_builddir/proto/memconv.pb-c.c"
libs=$(pkg-config --libs libprotobuf-c)

if [ $seed = 1 ]; then
        gcc -std=gnu11 -include "$top_builddir/config.h" -I"$top_srcdir/lib" -I"$top_builddir/proto" \
                "$here/gen-corpus.c" $core $libs -o "$bin/gen-corpus" || exit 2
        "$bin/gen-corpus" "$here/corpus" || exit 2
fi

# target_src TARGET: its source file and what it needs beyond the core
target_src() {
        case $1 in
        fuzz-config)
                echo "$here/$1.c -I$top_srcdir/daemon -I$top_srcdir/plugins $top_srcdir/daemon/conffile.c $top_srcdir/daemon/log.c
                      $top_srcdir/daemon/policy.c $top_srcdir/daemon/sandbox.c
                      $(pkg-config --cflags --libs libsystemd libseccomp) -lpthread -ldl" ;;
        fuzz-domain-xml)
                echo "$top_srcdir/tests/libvirt/$1.c -I$top_srcdir/plugins/libvirt
                      $top_srcdir/plugins/libvirt/domain-xml.c $(pkg-config --cflags --libs libxml-2.0)" ;;
        *)
                echo "$here/$1.c" ;;
        esac
}

for t in $targets; do
        src=$(target_src "$t")
        [ -f "${src%% *}" ] || { echo "run.sh: no target $t" >&2; exit 2; }
        # shellcheck disable=SC2086
        $CC $cflags -I"$here" $src $core $libs -o "$bin/$t" || { echo "run.sh: cannot build $t" >&2; exit 2; }
done

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_one TARGET: fuzz it for $seconds on a copy of its corpus
run_one() {
        local t=$1 out=$FUZZ_OUT/$1 max_len=4096
        [ "$t" = fuzz-journal ] && max_len=65536
        rm -rf "$out/work" "$out/artifacts"
        mkdir -p "$out/work" "$out/artifacts"
        cp "$here/corpus/$t"/* "$out/work/" 2>/dev/null
        # libFuzzer takes -max_total_time=0 as "no limit": 0 seconds means replay only.
        local limit=-max_total_time="$seconds"
        [ "$seconds" = 0 ] && limit=-runs=0
        "$bin/$t" "$limit" -max_len=$max_len -timeout=10 -rss_limit_mb=2048 \
                -print_final_stats=1 -artifact_prefix="$out/artifacts/" "$out/work" > "$out/log" 2>&1
        local rc=$?
        if [ $merge = 1 ] && [ $rc = 0 ]; then
                "$bin/$t" -merge=1 -max_len=$max_len "$here/corpus/$t" "$out/work" >> "$out/log" 2>&1
        fi
        return $rc
}

# report TARGET RC: one line of figures from the log
report() {
        local t=$1 rc=$2 log=$FUZZ_OUT/$1/log execs rate cov ft corp
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
        ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n1 | cut -d' ' -f2)
        corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n1 | cut -d' ' -f2)
        printf '%-14s %s  %ss  execs %s  exec/s %s  cov %s  ft %s  corpus %s\n' "$t" \
                "$([ "$rc" = 0 ] && echo ok || echo FOUND)" "$seconds" "${execs:-?}" "${rate:-?}" \
                "${cov:-?}" "${ft:-?}" "${corp:-?}"
        if [ "$rc" != 0 ]; then
                grep -E 'ERROR|runtime error|invariant violated|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/    /'
        fi
}

failed=0
set -- $targets
while [ $# -gt 0 ]; do
        pids=() names=()
        for _ in $(seq 1 "$jobs"); do
                [ $# -gt 0 ] || break
                run_one "$1" & pids+=($!) names+=("$1")
                shift
        done
        for i in "${!pids[@]}"; do
                wait "${pids[$i]}"; rc=$?
                [ $rc = 0 ] || failed=1
                report "${names[$i]}" $rc
        done
done
exit $failed
