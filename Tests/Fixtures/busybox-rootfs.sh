#!/usr/bin/env bash
# Makes DIR/rootfs-amd64 and DIR/rootfs-arm64: a tiny root file system per architecture from
# Debian's busybox-static packages (real binaries for each), with an /etc/passwd and /etc/group
# naming an 'app' user so --chown by name has something to resolve. The packages are fetched
# with apt-get download, which needs arm64 enabled: dpkg --add-architecture arm64 && apt-get update.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
# Test suites run in parallel and each may ask for the fixture: one makes it, the others wait.
exec 9>.lock
flock 9
for arch in amd64 arm64; do
    [ -d "rootfs-$arch" ] && continue
    deb=$(ls busybox-static_*_"$arch".deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        if ! apt-get download "busybox-static:$arch" >/dev/null 2>download.log; then
            echo "cannot download busybox-static:$arch ($(tail -n 1 download.log)); run: dpkg --add-architecture arm64 && apt-get update" >&2
            exit 1
        fi
        deb=$(ls busybox-static_*_"$arch".deb | head -n 1)
    fi
    work=$(mktemp -d "partial-$arch.XXXXXX")
    dpkg-deb -x "$deb" "$work/pkg"
    root="$work/root"
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/home/app" "$root/root"
    cp "$work/pkg/bin/busybox" "$root/bin/busybox"
    chmod 0755 "$root/bin/busybox"
    for tool in sh ls cat echo env id stat test true wc sha256sum find; do ln -s busybox "$root/bin/$tool"; done
    printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\napp:x:1001:\nstaff:x:50:app\nnogroup:x:65534:\n' >"$root/etc/group"
    chmod 1777 "$root/tmp"
    chown 1000:1001 "$root/home/app"
    mv "$root" "rootfs-$arch"
    rm -rf "$work"
done
