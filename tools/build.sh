#!/bin/bash
# Configure and build memconvd out of tree: tools/build.sh [BUILDDIR [configure options...]]
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}; shift || true
[ -x "$src/configure" ] || (cd "$src" && ./autogen.sh >/dev/null 2>&1)
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$src/configure" --enable-werror "$@" >/dev/null
make -j"$(nproc)" >/dev/null
make -j"$(nproc)" check TESTS= >/dev/null   # build the test programs too
echo "built in $build"
