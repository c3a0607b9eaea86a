#!/usr/bin/env bash
# Installs kiln for the kiln GitHub action (action.yml), or on any Debian/Ubuntu machine:
#   VERSION=0.1.0 RELEASES=https://github.com/OWNER/kiln/releases/download/v0.1.0 scripts/action-install.sh
# The release archive is checked against its .sha256 before anything is unpacked. Without
# VERSION the action's own checkout is built (make release; needs Swift 6.1+ on the runner).
# What the binary needs (libarchive, zlib, OpenSSL's libcrypto, the CA bundle) and, with
# RUN_STEPS=true, what RUN steps need (buildah, runc to give each step its own namespaces, strace)
# are installed only when missing.
set -euo pipefail
install_dir=${INSTALL_DIR:-/usr/local/bin}
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

packages=()
have_library() {
    { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q "$1" \
        || compgen -G "/usr/lib/*/$1" >/dev/null || compgen -G "/lib/*/$1" >/dev/null
}
have_library libarchive.so.13 || packages+=(libarchive13)
have_library libz.so.1 || packages+=(zlib1g)
have_library libcrypto.so.3 || packages+=(libssl3)
[ -e /etc/ssl/certs/ca-certificates.crt ] || packages+=(ca-certificates)
if [ "${RUN_STEPS:-true}" = true ]; then
    command -v buildah >/dev/null || packages+=(buildah)
    command -v runc >/dev/null || packages+=(runc)
    command -v strace >/dev/null || packages+=(strace)
fi
if [ ${#packages[@]} -gt 0 ]; then
    echo "kiln: installing ${packages[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -n "${VERSION:-}" ]; then
    : "${RELEASES:?RELEASES must say where the release assets of VERSION are}"
    name="kiln-${VERSION#v}-linux-$(dpkg --print-architecture).tar.gz"
    curl -fsSL --retry 3 -o "$work/$name" "$RELEASES/$name"
    curl -fsSL --retry 3 -o "$work/$name.sha256" "$RELEASES/$name.sha256"
    (cd "$work" && sha256sum --quiet -c "$name.sha256")
    archive="$work/$name"
else
    source=${ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}
    make -C "$source" release >&2
    archive=$(ls "$source"/dist/kiln-*-linux-"$(dpkg --print-architecture)".tar.gz | tail -n 1)
fi
tar -xzf "$archive" -C "$work" kiln
$sudo install -m 0755 "$work/kiln" "$install_dir/kiln"
"$install_dir/kiln" version
