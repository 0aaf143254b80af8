#!/usr/bin/env bash
# Installs dependencies, builds cairn and starts the server, cairnd, listening on
# 127.0.0.1:7420 (--listen HOST:PORT to change it). The data folder is the one given
# by --data DIR, else $CAIRN_DATA, else ./cairn-data in this checkout; a relative DIR
# is taken from where you ran this script. Other arguments go to cairnd (see
# `cairnd --help`). Stop it with Ctrl-C.
set -euo pipefail
caller=$PWD
data=${CAIRN_DATA:-}
args=()
while (($#)); do
  case "$1" in
    --data)
      (($# >= 2)) || { echo "run.sh: --data needs a folder" >&2; exit 2; }
      data=$2
      shift 2
      ;;
    --data=*)
      data=${1#--data=}
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done
if [[ -n "$data" && "$data" != /* ]]; then data=$caller/$data; fi

cd "$(dirname "$0")/.."
data=${data:-$PWD/cairn-data}
./scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target cairnd
exec ./build/server/cairnd --data "$data" "${args[@]}"
