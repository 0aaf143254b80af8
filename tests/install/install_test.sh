#!/usr/bin/env bash
# Installs libcairn from the build tree into a temporary prefix, builds the
# examples/users_service application against the installed package (find_package),
# and runs it against a real cairnd.
#   install_test.sh BUILD_DIR SOURCE_DIR CAIRND
set -euo pipefail
build=$1 src=$2 cairnd=$3
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/cairn/cairnConfig.cmake"
test -x "$tmp/prefix/bin/cairn"
cmake -S "$src/examples/users_service" -B "$tmp/app" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/app" >/dev/null

"$cairnd" --data "$tmp/data" --listen 127.0.0.1:0 --port-file "$tmp/port" >"$tmp/log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  [[ -s "$tmp/port" ]] && break
  sleep 0.1
done
[[ -s "$tmp/port" ]] || { echo "cairnd did not start"; cat "$tmp/log"; exit 1; }
port=$(cat "$tmp/port")

out=$("$tmp/app/users_service" "127.0.0.1:$port")
echo "$out"
expected="signup ada: ok
signup bob: ok
signup eve with ada's email: taken
find ada@example.com: u1
ada's logins: 2"
[[ "$out" == "$expected" ]] || { echo "unexpected output; wanted:"; echo "$expected"; exit 1; }
# The installed command line reaches the same server.
n=$(CAIRN_ADDR="127.0.0.1:$port" "$tmp/prefix/bin/cairn" count users)
[[ "$n" == "2" ]] || { echo "cairn count users printed '$n'"; exit 1; }
echo "install test passed"
