#!/usr/bin/env bash
# Installs dependencies, builds cairn and runs it on a local data folder
# (default ./cairn-data; pass another as the first argument).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target cairn-demo
exec ./build/examples/cairn-demo "${1:-./cairn-data}"
