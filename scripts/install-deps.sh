#!/usr/bin/env bash
# Installs what kiln needs to build and test on Debian/Ubuntu, only when something is missing.
# Build: zlib, libarchive and OpenSSL headers (pkg-config). Tests: the tools that check kiln's
# output (tar, gzip, umoci, skopeo, GNU time, setpriv), the registry they push to, and what the
# registry tests put around it (nginx as a capped TLS front, htpasswd, openssl for certificates,
# python3 for the test token server).
set -euo pipefail

packages=()
need_lib() { pkg-config --exists "$1" 2>/dev/null || packages+=("$2"); }
need_tool() { command -v "$1" >/dev/null 2>&1 || packages+=("$2"); }

need_tool pkg-config pkg-config
if command -v pkg-config >/dev/null 2>&1; then
    need_lib zlib zlib1g-dev
    need_lib libarchive libarchive-dev
    need_lib libcrypto libssl-dev
else
    packages+=(zlib1g-dev libarchive-dev libssl-dev)
fi
need_tool tar tar
need_tool gzip gzip
need_tool umoci umoci
need_tool skopeo skopeo
need_tool setpriv util-linux
need_tool docker-registry docker-registry
need_tool nginx nginx
need_tool htpasswd apache2-utils
need_tool openssl openssl
need_tool python3 python3
need_tool curl curl
[ -x /usr/bin/time ] || packages+=(time)

if [ ${#packages[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "kiln needs: ${packages[*]}" >&2
    echo "install them with: sudo apt-get install -y ${packages[*]}" >&2
    exit 1
fi
echo "installing: ${packages[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${packages[@]}" >/dev/null
