#!/usr/bin/env bash
# scripts/run.sh picks the data folder from --data DIR (or --data=DIR), else
# $CAIRN_DATA, else ./cairn-data in the checkout, and passes cairnd one --data.
# The script runs in a copy of the checkout's layout whose install-deps.sh and cmake do
# nothing and whose build/server/cairnd is the real one, so only the argument handling
# is under test.
#   run_test.sh SOURCE_DIR CAIRND
set -euo pipefail
src=$1 cairnd=$2
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

root=$tmp/checkout
mkdir -p "$root/scripts" "$root/build/server" "$tmp/bin" "$tmp/cwd"
cp "$src/scripts/run.sh" "$root/scripts/run.sh"
printf '#!/bin/sh\nexit 0\n' >"$root/scripts/install-deps.sh"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/cmake"
chmod +x "$root/scripts/install-deps.sh" "$tmp/bin/cmake"
ln -s "$cairnd" "$root/build/server/cairnd"

# run_case NAME EXPECTED_DATA_DIR [ENV=VALUE...] -- [ARGS...]: starts run.sh from
# $tmp/cwd, waits for cairnd's port file, checks that it opened a database in the
# expected folder and nowhere else, and stops it.
n=0
run_case() {
  local name=$1 want=$2
  shift 2
  local envs=()
  while [[ "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift
  n=$((n + 1))
  local portfile=$tmp/port$n log=$tmp/log$n
  (cd "$tmp/cwd" && exec env PATH="$tmp/bin:$PATH" "${envs[@]}" "$root/scripts/run.sh" "$@" \
    --listen 127.0.0.1:0 --port-file "$portfile" >"$log" 2>&1) &
  pid=$!
  for _ in $(seq 200); do
    [[ -s "$portfile" ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ ! -s "$portfile" ]]; then
    echo "FAIL $name: cairnd did not start"; cat "$log"; exit 1
  fi
  kill -TERM "$pid"; wait "$pid" || true; pid=
  if [[ ! -f "$want/data.mdb" ]]; then
    echo "FAIL $name: no database in $want"; cat "$log"; exit 1
  fi
  rm -rf "$want"
  for other in "$root/cairn-data" "$tmp/cwd/rel" "$tmp/env-data" "$tmp/flag-data"; do
    if [[ -e "$other" ]]; then
      echo "FAIL $name: a database appeared in $other too"; exit 1
    fi
  done
  echo "ok $name"
}

run_case "default folder" "$root/cairn-data" --
run_case "--data DIR" "$tmp/flag-data" -- --data "$tmp/flag-data"
run_case "--data=DIR" "$tmp/flag-data" -- "--data=$tmp/flag-data"
run_case "relative --data, from the caller's folder" "$tmp/cwd/rel" -- --data rel
run_case "CAIRN_DATA" "$tmp/env-data" "CAIRN_DATA=$tmp/env-data" --
run_case "--data wins over CAIRN_DATA" "$tmp/flag-data" "CAIRN_DATA=$tmp/env-data" -- \
  --data "$tmp/flag-data"
echo "run.sh test passed"
