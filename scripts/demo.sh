#!/usr/bin/env bash
# The demo: the build-and-pin lane on the bundled example monorepo (examples/monorepo), against
# a throwaway registry on 127.0.0.1. It builds a small two-platform base image from Debian's
# busybox-static packages (no Docker Hub needed), then runs the lane three times:
#   1. everything is built, pushed and pinned;
#   2. nothing changed: every processor is a cache hit and no registry.yaml changes;
#   3. one shared library changed: exactly the processors that copy it are rebuilt.
# The example is copied to demo-out/monorepo, so the repository's own files stay as they are.
set -euo pipefail
cd "$(dirname "$0")/.."

kiln=${KILN_BIN:-.build/debug/kiln}
out=demo-out
rm -rf "$out"
mkdir -p "$out"
export CI=${CI:-}

echo "== 0. A loopback registry and a busybox base image (linux/amd64 + linux/arm64)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
registry=127.0.0.1:$port
mkdir -p "$out/registry"
printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n' \
    "$PWD/$out/registry/data" "$registry" >"$out/registry/config.yml"
docker-registry serve "$out/registry/config.yml" >"$out/registry/log" 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null' EXIT
for _ in $(seq 100); do curl -fs "http://$registry/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

fixtures=${KILN_CACHE_DIR:-cache}/fixtures/busybox
bash Tests/Fixtures/busybox-rootfs.sh "$fixtures"
printf 'FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\nCMD ["sh"]\n' >"$out/base.Dockerfile"
base=$registry/fixtures/busybox:1
"$kiln" build -f "$out/base.Dockerfile" --platform linux/amd64,linux/arm64 -t "$base" "$fixtures"

repo=$out/monorepo
cp -r examples/monorepo "$repo"
git -C "$repo" init -q
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid add -A
git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -qm "before the lane"
lane=(--root "$repo" --registry "$registry" --build-arg "BASE_IMAGE=$base")

commit() {
    git -C "$repo" -c user.name=demo -c user.email=demo@example.invalid commit -qam "$1" || true
}

echo
echo "== 1. kiln plan: what the first run must build, and why"
"$kiln" plan "${lane[@]}" 2>/dev/null

echo
echo "== 2. First run: build, push and pin everything"
time "$kiln" build --push --pin "${lane[@]}"
echo "-- the pins it wrote:"
git -C "$repo" --no-pager diff --stat
git -C "$repo" --no-pager diff -U0 -- '*.yaml' | grep -E '^[-+] ' || true
commit "pin: first build"

echo
echo "== 3. Second run, nothing changed: all hits, nothing uploaded, no file touched"
time "$kiln" build --push --pin "${lane[@]}" 2>/dev/null
if git -C "$repo" diff --quiet; then echo "-- git diff: empty (every registry.yaml byte-identical)"; else echo "-- unexpected diff!"; exit 1; fi

echo
echo "== 4. Change one shared library (code/libs/textkit), then plan and run again"
echo "# tweak" >>"$repo/code/libs/textkit/normalize.py"
"$kiln" plan "${lane[@]}" 2>/dev/null | grep -E '^[a-z]|because'
time "$kiln" build --push --pin "${lane[@]}" 2>/dev/null | grep -E '^[a-z]'
echo "-- the pin diff (only the processors that copy textkit):"
git -C "$repo" --no-pager diff -U0 -- '*.yaml' | grep -E '^(\+\+\+|[-+] )' || true
commit "pin: textkit changed"

echo
echo "== 5. kiln verify: every pin exists in the registry and matches its inputs"
"$kiln" verify "${lane[@]}" 2>/dev/null | grep -E '^[a-z]'

echo
echo "== Store: ${KILN_CACHE_DIR:-~/.cache/kiln}"
"$kiln" store verify
