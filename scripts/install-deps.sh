#!/usr/bin/env bash
# Installs what kiln needs to build and test on Debian/Ubuntu, only when something is missing.
# Build: zlib, libarchive and OpenSSL headers (pkg-config). Tests: the tools that check kiln's
# output (tar, gzip, umoci, skopeo, GNU time, setpriv), the registry they push to, and what the
# registry tests put around it (nginx as a capped TLS front, htpasswd, openssl for certificates,
# python3 for the test token server), buildah for the Dockerfile differential tests and RUN steps,
# runc to run each RUN step in its own namespaces (buildah --isolation oci), strace to record
# what each RUN step touches, qemu-user-static for arm64 RUN steps (the tests
# register it with binfmt_misc), and arm64 package lists so those tests can fetch
# busybox-static:arm64 with apt-get download, debootstrap for the release test's bare Debian, and
# Chromium's headless shell to check that kiln bench's report page renders, and cmark-gfm to
# render the step summary and pin pull request as GitHub would (no markup from outside text), and
# sudo to check that the action hands kiln only the environment it reads.
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
python3 -c 'import yaml' 2>/dev/null || packages+=(python3-yaml)
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
need_tool git git
need_tool curl curl
need_tool cmark-gfm cmark-gfm
need_tool strace strace
need_tool buildah buildah
need_tool runc runc
need_tool sudo sudo
need_tool qemu-aarch64-static qemu-user-static
need_tool debootstrap debootstrap
need_tool chromium-headless-shell chromium-headless-shell
[ -x /usr/bin/time ] || packages+=(time)
needs_arm64=false
dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64 || needs_arm64=true
# securesystemslib from PyPI (with a cryptography new enough for it): the in-toto project's own
# verifier of the DSSE envelopes kiln signs.
needs_securesystemslib=false
/usr/bin/python3 -c 'import securesystemslib.dsse, cryptography' 2>/dev/null || needs_securesystemslib=true
install_securesystemslib() {
    /usr/bin/python3 -m pip install -q --break-system-packages 'securesystemslib[crypto]==1.1.0'
}

if [ ${#packages[@]} -eq 0 ] && [ "$needs_arm64" = false ]; then
    [ "$needs_securesystemslib" = false ] || [ "$(id -u)" -ne 0 ] || install_securesystemslib
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    [ ${#packages[@]} -eq 0 ] || echo "kiln needs: ${packages[*]} (sudo apt-get install -y ${packages[*]})" >&2
    [ "$needs_arm64" = false ] || echo "the tests need arm64 package lists: sudo dpkg --add-architecture arm64 && sudo apt-get update" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ "$needs_arm64" = true ]; then
    dpkg --add-architecture arm64
fi
apt-get update -qq
if [ ${#packages[@]} -gt 0 ]; then
    echo "installing: ${packages[*]}" >&2
    apt-get install -y -qq "${packages[@]}" >/dev/null
fi
[ "$needs_securesystemslib" = false ] || install_securesystemslib
