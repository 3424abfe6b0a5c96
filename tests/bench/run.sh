#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh - the memconvd benchmark suite in one command (see tests/bench/README.md).
#
#   tests/bench/run.sh [--output PATH] [--runs N] [--quick] [--only floor,conversions,rangemap,journal,restart]
#                      [--restart-records 10000,100000,1000000]
#
# Builds what is missing (memconvd, memconvctl, libmemconv, the bench programs), then runs
# tests/bench/bench.py, which starts its own memconvd on private sockets, prints the
# table and writes the results JSON (default build/bench-results.json).
# Needs /dev/kvm (exit 77 without it), python3, taskset. About 5-8 minutes on 2 cores.
# Run it from the top of the build tree, or set top_builddir / top_srcdir.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
cd "$top_builddir"

[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not available"; exit 77; }
command -v python3 > /dev/null || { echo "run.sh: python3 is needed" >&2; exit 1; }

warn=$(sed -n 's/^WARN_CFLAGS = //p' Makefile)
cc=${CC:-gcc}
flags="-std=gnu11 -O2 -g $warn -include config.h -I. -I$top_srcdir/lib -Iproto"
if grep -q 'tests/bench/memconv-bench' Makefile 2> /dev/null; then
        make -s memconvd memconvctl libmemconv.la libmemconv-core.la tests/bench/memconv-bench tests/bench/bench-rangemap
else
        # Until Makefile.am builds them: the same flags by hand.
        make -s memconvd memconvctl libmemconv.la libmemconv-core.la
        if [ ! tests/bench/memconv-bench -nt "$here/memconv-bench.c" ] || [ ! tests/bench/memconv-bench -nt .libs/libmemconv.so ]; then
                mkdir -p tests/bench
                $cc $flags -o tests/bench/memconv-bench "$here/memconv-bench.c" \
                        -L.libs -lmemconv -Wl,-rpath,"$PWD/.libs" -lpthread
        fi
        if [ ! tests/bench/bench-rangemap -nt "$here/bench-rangemap.c" ] || [ ! tests/bench/bench-rangemap -nt .libs/libmemconv-core.a ]; then
                $cc $flags -o tests/bench/bench-rangemap "$here/bench-rangemap.c" \
                        .libs/libmemconv-core.a -lprotobuf-c -lpthread
        fi
fi
# The restart section's journal generator.
make -s tests/bench/gen-journal || exit 1

exec python3 "$here/bench.py" --top . "$@"
