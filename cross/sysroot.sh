#!/bin/sh
# cross/sysroot.sh ARCH DIR PACKAGE...: Debian 12's ARCH builds of the
# packages, unpacked into DIR (a sysroot for a cross compiler and for
# qemu-user's -L). A multiarch `apt-get install` of some foreign
# architectures fails on Debian 12 (their indexes lag the native one), so the
# .debs are only downloaded and unpacked, never installed. Needs root once, to
# add the architecture to dpkg's list; a DIR already made is left as it is.
set -eu
arch=$1 dir=$2
shift 2
[ -f "$dir/.complete" ] && exit 0
if ! dpkg --print-foreign-architectures | grep -qx "$arch" ||
   [ -z "$(apt-cache madison "libc6:$arch" 2>/dev/null)" ]; then
  dpkg --add-architecture "$arch"
  # a mirror caught syncing fails one index for a while: retried once, then
  # apt-get download says clearly what it cannot find
  apt-get update -qq || { sleep 30; apt-get update -qq; } ||
    echo "apt-get update failed for some index (a mirror syncing?): going on with what it has" >&2
fi
mkdir -p "$dir/debs"
# apt's sandbox user cannot write into root's directories: download as root, quietly
(cd "$dir/debs" && apt-get download -qq -o APT::Sandbox::User=root $(printf " %s:$arch" "$@"))
for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir"; done
touch "$dir/.complete"
