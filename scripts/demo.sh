#!/usr/bin/env bash
# The demo: kiln assembles the bundled example processor's code into reproducible layers and a
# multi-platform OCI image layout, twice, and shows that nothing changes between the runs.
set -euo pipefail
cd "$(dirname "$0")/.."

kiln=${KILN_BIN:-.build/debug/kiln}
example=examples/acme-processors
out=demo-out
rm -rf "$out"
mkdir -p "$out"

echo "== 1. One layer from the shared library, twice, with different file times"
"$kiln" layer create --from "$example/code/libs/runtime_common" --prefix /tool/libs/runtime_common -o "$out/lib-1.tar.gz"
touch -d '2001-02-03 04:05:06' "$example/code/libs/runtime_common/health.py"
"$kiln" layer create --from "$example/code/libs/runtime_common" --prefix /tool/libs/runtime_common -o "$out/lib-2.tar.gz" >/dev/null
cmp "$out/lib-1.tar.gz" "$out/lib-2.tar.gz" && echo "   byte-identical: the file's mtime does not reach the layer"

echo
echo "== 2. A linux/amd64 + linux/arm64 image of the processor's protocol code, as an OCI layout"
"$kiln" image create --from "$example/tools/llm/litellm/1/protocol" --prefix /tool/protocol \
    --platform linux/amd64,linux/arm64 --workdir /tool --env TZ=UTC \
    --cmd python --cmd=-m --cmd protocol.ws -o "oci:$out/layout:litellm"
first=$("$kiln" image create --from "$example/tools/llm/litellm/1/protocol" --prefix /tool/protocol \
    --platform linux/amd64,linux/arm64 --workdir /tool --env TZ=UTC \
    --cmd python --cmd=-m --cmd protocol.ws -o "oci:$out/layout:litellm" --json)
echo "   rebuilt: $first"

if command -v skopeo >/dev/null; then
    echo
    echo "== 3. skopeo (not kiln) reads it back"
    skopeo inspect --raw "oci:$out/layout:litellm" | head -c 400; echo
    skopeo --override-arch arm64 inspect "oci:$out/layout:litellm" | grep -E '"(Architecture|Digest)"'
fi

if command -v docker-registry >/dev/null; then
    echo
    echo "== 4. Push it to a throwaway local registry, twice: the second push sends nothing"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$out/registry"
    printf 'version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' \
        "$PWD/$out/registry/data" "$port" > "$out/registry/config.yml"
    docker-registry serve "$out/registry/config.yml" > "$out/registry/log" 2>&1 &
    registry_pid=$!
    trap 'kill $registry_pid 2>/dev/null' EXIT
    for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
    "$kiln" push "$out/layout:litellm" "127.0.0.1:$port/acme/llm-litellm:v1"
    "$kiln" push "$out/layout:litellm" "127.0.0.1:$port/acme/llm-litellm:v1"
    echo "   resolve: $("$kiln" resolve "127.0.0.1:$port/acme/llm-litellm:v1")"
fi

echo
echo "== Store: ${KILN_CACHE_DIR:-~/.cache/kiln}"
"$kiln" store verify
