#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# run.sh - a bounded load run of memconvd (see tests/load/README.md).
#
#   tests/load/run.sh [--vms 64] [--vcpus 4] [--seconds 30] [--output PATH] [--keep] [...]
#
# Starts a real memconvd on private sockets and --vms reference VMMs
# (tests/vmm/memconv-vmm, real KVM vCPUs) converting at once for --seconds,
# prints conversions/s, vCPU-visible latency p50/p99, daemon CPU per
# conversion and RSS, writes them as JSON (default build/load-results.json),
# and proves afterwards, for every VM, that every decision reached its vCPU
# exactly once and that the daemon's state equals the VMM's. Exit 0 pass,
# 1 a check failed, 77 skipped (no /dev/kvm). `tests/load/load.py --help`
# lists every option. Run it from the top of the build tree, or set
# top_builddir / top_srcdir.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=${top_srcdir:-$(cd "$here/../.." && pwd)}
top_builddir=${top_builddir:-$top_srcdir}
cd "$top_builddir"

[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "SKIP: /dev/kvm not available"; exit 77; }
command -v python3 > /dev/null || { echo "run.sh: python3 is needed" >&2; exit 1; }
make -s memconvd memconvctl tests/vmm/memconv-vmm

exec python3 "$here/load.py" --top . "$@"
