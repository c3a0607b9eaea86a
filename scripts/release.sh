#!/usr/bin/env bash
# Builds the release binary: Swift's runtime linked in (--static-swift-stdlib), so a machine
# needs only Debian/Ubuntu's libarchive, zlib and OpenSSL libraries (and ca-certificates for TLS):
#
#   apt-get install -y libarchive13 zlib1g libssl3 ca-certificates
#
# Writes dist/kiln-VERSION-linux-ARCH.tar.gz (the kiln binary alone, packed reproducibly) and
# dist/kiln-VERSION-linux-ARCH.tar.gz.sha256 (sha256sum's format, so `sha256sum -c` checks it).
set -euo pipefail
cd "$(dirname "$0")/.."

swift=${SWIFT:-swift}
version=$(sed -n 's/.*static let current = "\(.*\)".*/\1/p' Sources/KilnCore/KilnVersion.swift)
case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch=$(uname -m) ;;
esac
name="kiln-$version-linux-$arch"

"$swift" build -c release --product kiln --static-swift-stdlib
binary=$("$swift" build -c release --product kiln --static-swift-stdlib --show-bin-path)/kiln

mkdir -p dist
staging=$(mktemp -d dist/.staging.XXXXXX)
trap 'rm -rf "$staging"' EXIT
install -m 0755 "$binary" "$staging/kiln"
strip "$staging/kiln" 2>/dev/null || true
# The same binary gives the same archive: names sorted, fixed owner and time, no gzip name/time.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$staging" -cf - kiln | gzip -n -9 \
    >"$staging/$name.tar.gz"
(cd "$staging" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
mv -f "$staging/$name.tar.gz" "dist/$name.tar.gz"
mv -f "$staging/$name.tar.gz.sha256" "dist/$name.tar.gz.sha256"
echo "dist/$name.tar.gz"
