#!/usr/bin/env bash
# Builds the root filesystem of a local stand-in for the official node:20-bookworm-slim image,
# for machines that cannot reach Docker Hub: a minimal Debian (debootstrap --variant=minbase,
# from the mirror and release apt already uses) plus this machine's node, npm and node headers,
# a `node` user (uid/gid 1000, as in the official image) and this machine's CA bundle and apt
# clock settings, so npm and apt-get inside a build reach what the machine reaches.
#
#   scripts/node-base-rootfs.sh OUT.tar        then: docker import OUT.tar local/node-base
#
# The import must set ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt (a tarball
# carries no image config); test/helpers/project-image.ts does, and caches OUT.tar.
# Needs root (debootstrap). Takes ~30 s with a nearby mirror; the tarball is ~190 MB.
#
# Environment: DEBIAN_MIRROR, DEBIAN_SUITE (default: from the apt sources and /etc/os-release).
set -euo pipefail

(($# == 1)) || { echo "usage: $0 OUT.tar" >&2; exit 2; }
out=$1

suite=${DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[[ -n $suite ]] || { echo "node-base-rootfs: no VERSION_CODENAME in /etc/os-release; set DEBIAN_SUITE" >&2; exit 1; }

# The first Debian archive URI that serves $suite, from deb822 .sources files or sources.list.
detect_mirror() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f $file ]] || continue
    awk -v suite="$suite" '
      function flush() { if (deb && uri != "" && has_suite) { print uri; found = 1; exit } deb = 0; uri = ""; has_suite = 0 }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/ { deb = ($0 ~ /[[:space:]]deb([[:space:]]|$)/) }
      /^URIs:/ { uri = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
      END { if (!found) flush() }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $file ]] || continue
    awk -v suite="$suite" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i == suite) { print $(i - 1); exit } }' "$file"
  done
}
mirror=${DEBIAN_MIRROR:-$(detect_mirror | head -n 1)}
[[ -n $mirror ]] || { echo "node-base-rootfs: no apt source for $suite found; set DEBIAN_MIRROR" >&2; exit 1; }

node_bin=$(readlink -f "$(command -v node)")
node_prefix=$(dirname "$(dirname "$node_bin")")
npm_dir="$node_prefix/lib/node_modules/npm"
headers="$node_prefix/include/node"
for needed in "$npm_dir/bin/npm-cli.js" "$headers/node.h" /etc/ssl/certs/ca-certificates.crt; do
  [[ -e $needed ]] || { echo "node-base-rootfs: $needed is missing" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/node-base-rootfs.XXXXXX")
root="$work/root"
cleanup() {
  # debootstrap mounts /proc and /sys in the target; an interrupted run leaves them there.
  awk -v prefix="$work/" 'index($5, prefix) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
    while IFS= read -r mountpoint; do umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

echo "node-base-rootfs: debootstrap --variant=minbase $suite from $mirror" >&2
debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# node, npm and the headers node-gyp compiles native modules against (no download from nodejs.org).
install -D -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules" "$root/usr/local/include" "$root/usr/local/etc"
cp -a "$npm_dir" "$root/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
cp -a "$headers" "$root/usr/local/include/node"
echo 'nodedir=/usr/local' >"$root/usr/local/etc/npmrc"

# What this machine trusts (a TLS-inspecting egress proxy, for example) and its apt clock policy.
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
apt-config dump | grep -E '^Acquire::Check-(Valid-Until|Date) ' >"$root/etc/apt/apt.conf.d/99machine-clock" || true

chroot "$root" groupadd --gid 1000 node
chroot "$root" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/var/log/*.log "$root"/var/log/apt/*

mkdir -p "$(dirname "$out")"
tar --numeric-owner -C "$root" -cf "$out.partial" .
mv "$out.partial" "$out"
echo "node-base-rootfs: wrote $out ($(du -h "$out" | cut -f1))" >&2
