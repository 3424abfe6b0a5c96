#!/bin/bash
# Install what building and testing memconvd needs on Debian 12 (as root,
# or through sudo). Idempotent: does nothing when everything is present.
set -euo pipefail
PKGS=(build-essential autoconf automake libtool pkg-config
      libsystemd-dev libprotobuf-c-dev protobuf-c-compiler libcunit1-dev
      linux-libc-dev groff-base man-db valgrind python3
      libvirt-dev libxml2-dev clang libclang-rt-14-dev libseccomp-dev)
missing=()
for p in "${PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
echo "Installing: ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
