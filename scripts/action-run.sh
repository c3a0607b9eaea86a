#!/usr/bin/env bash
# The lane step of the kiln GitHub action (action.yml): its inputs come as INPUT_* variables
# (never spliced into a script), become kiln's flags, and kiln writes the step's outputs, summary
# and annotations itself ($GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY). kiln runs as root (through sudo
# on a hosted runner: buildah's containers need it) with only the environment it reads, listed
# below: no blanket `sudo -E`, so the runner's other variables never reach kiln, and kiln passes
# none of its own to buildah or a step. The store stays the runner user's ~/.cache/kiln, which
# actions/cache saves.
set -euo pipefail
command=${INPUT_COMMAND:-build}
arguments=("$command")
pin=${INPUT_PIN:-true}
push=${INPUT_PUSH:-true}
case "$command" in
    build)
        if [ "${INPUT_CHECK:-false}" = true ]; then
            arguments+=(--check)
            pin=false
        else
            [ "$push" = true ] && arguments+=(--push)
            [ "$push" = true ] || pin=false
            [ "$pin" = true ] && arguments+=(--pin)
        fi
        [ -n "${INPUT_PLATFORMS:-}" ] && arguments+=(--platforms "$INPUT_PLATFORMS")
        ;;
    assemble)
        [ "$pin" = true ] && arguments+=(--pin)
        ;;
    verify)
        pin=false
        [ -n "${INPUT_PLATFORMS:-}" ] && arguments+=(--platforms "$INPUT_PLATFORMS")
        ;;
    *)
        echo "::error::the kiln action's command is build, assemble or verify, not '$command'"
        exit 2
        ;;
esac
if [ -n "${INPUT_SUMMARY:-}" ] && [ "$pin" = true ]; then arguments+=(--summary "$INPUT_SUMMARY"); fi
[ -n "${INPUT_ROOT:-}" ] && arguments+=(--root "$INPUT_ROOT")
for ref in $(printf '%s' "${INPUT_REFS:-}" | tr ',\n' '  '); do
    arguments+=(--ref "$ref")
done
# Extra flags, split on white space (no quoting): e.g. "--jobs 8 --budget 8m".
read -r -a extra <<<"${INPUT_ARGS:-}"
export KILN_CACHE_DIR=${KILN_CACHE_DIR:-${HOME:-/root}/.cache/kiln}
kiln=${KILN:-kiln}
# What kiln reads from its environment (docs/lane.md, "GitHub Actions"); credentials go by
# environment, never on a command line.
wanted=(PATH HOME TERM COLUMNS LINES TMPDIR XDG_CACHE_HOME XDG_RUNTIME_DIR SSL_CERT_FILE SOURCE_DATE_EPOCH
    DOCKER_CONFIG KILN_CACHE_DIR KILN_RUNTIME_DIR KILN_BINFMT_DIR KILN_REGISTRY_USER KILN_REGISTRY_PASSWORD
    CI GITHUB_ACTIONS GITHUB_ACTOR GITHUB_TOKEN GITHUB_OUTPUT GITHUB_STEP_SUMMARY GITHUB_REPOSITORY
    GITHUB_REPOSITORY_OWNER GITHUB_RUN_ID GITHUB_RUN_ATTEMPT GITHUB_SERVER_URL GITHUB_SHA
    HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy)
kept=()
for name in "${wanted[@]}"; do [ -n "${!name+set}" ] && kept+=("$name"); done
if { [ "$(id -u)" -ne 0 ] || [ "${KILN_ACTION_SUDO:-}" = always ]; } && command -v sudo >/dev/null; then
    exec sudo --preserve-env="$(IFS=,; echo "${kept[*]}")" "$(command -v "$kiln")" "${arguments[@]}" "${extra[@]}"
fi
exec "$kiln" "${arguments[@]}" "${extra[@]}"
