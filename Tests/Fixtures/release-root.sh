#!/usr/bin/env bash
# Makes DIR/root: a fresh Debian bookworm (debootstrap --variant=minbase) holding nothing but
# what the release binary's install line asks for (libarchive13 zlib1g libssl3 ca-certificates,
# and curl, which the install line itself runs),
# for the test that runs dist/kiln-*.tar.gz there. Kept between runs; made once under a lock.
# The mirror is this machine's Debian mirror (apt-get indextargets), else deb.debian.org.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
exec 9>.lock
flock 9
[ -x root/usr/bin/apt-get ] && [ -e root/.kiln-release-root-2 ] && exit 0
command -v debootstrap >/dev/null || { echo "the release test needs debootstrap (apt-get install -y debootstrap)" >&2; exit 1; }
mirror=$(apt-get indextargets 2>/dev/null | sed -n 's|^URI: \(.*\)/dists/bookworm/main/.*|\1|p' | head -n 1)
mirror=${mirror:-http://deb.debian.org/debian}
rm -rf root partial
if ! debootstrap --variant=minbase --include=libarchive13,zlib1g,libssl3,ca-certificates,curl bookworm partial "$mirror" \
    >debootstrap.log 2>&1; then
    echo "debootstrap of bookworm from $mirror failed: $(tail -n 3 debootstrap.log)" >&2
    exit 1
fi
rm -rf partial/var/cache/apt/archives/*.deb
touch partial/.kiln-release-root-2
mv partial root
