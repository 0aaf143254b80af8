#!/usr/bin/env bash
# Installs dependencies, builds cairn and starts the server, cairnd, on a local data
# folder (./cairn-data) listening on 127.0.0.1:7420. Extra arguments go to cairnd
# (see `cairnd --help`). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target cairnd
exec ./build/server/cairnd --data ./cairn-data "$@"
