#!/usr/bin/env bash
# Installs cairn from the build tree into a temporary prefix, builds the
# examples/users_service application against the installed package (find_package),
# and runs it, the installed cairn and cairn-bench against the installed cairnd. Then
# checks that the package names a missing Asio at configure time.
#   install_test.sh BUILD_DIR SOURCE_DIR BENCH_BUILT(ON|OFF)
set -euo pipefail
build=$1 src=$2 bench=$3
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
test -f "$tmp/prefix/lib/cmake/cairn/cairnConfig.cmake"
for program in cairnd cairn; do
  test -x "$tmp/prefix/bin/$program" || { echo "bin/$program was not installed"; exit 1; }
done
if [[ "$bench" == ON ]]; then
  test -x "$tmp/prefix/bin/cairn-bench" || { echo "bin/cairn-bench was not installed"; exit 1; }
fi
cairnd=$tmp/prefix/bin/cairnd
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
if [[ "$bench" == ON ]]; then
  CAIRN_ADDR="127.0.0.1:$port" "$tmp/prefix/bin/cairn-bench" --workload get --keys 50 \
    --requests 100 --connections 2 --load --json >"$tmp/bench.json" ||
    { echo "the installed cairn-bench failed"; cat "$tmp/bench.json"; exit 1; }
fi

# Without Asio (<asio.hpp> hidden from find_path by an empty find root), configuring a
# consumer must fail in CMake, naming what is missing, rather than in the compiler.
mkdir -p "$tmp/empty-root"
if cmake -S "$src/examples/users_service" -B "$tmp/app-noasio" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
     -DCMAKE_FIND_ROOT_PATH="$tmp/empty-root" -DCMAKE_FIND_ROOT_PATH_MODE_INCLUDE=ONLY \
     >"$tmp/noasio.log" 2>&1; then
  echo "find_package(cairn) succeeded without <asio.hpp>"; cat "$tmp/noasio.log"; exit 1
fi
grep -q "asio.hpp" "$tmp/noasio.log" && grep -q "libasio-dev" "$tmp/noasio.log" ||
  { echo "the configure error does not name Asio:"; cat "$tmp/noasio.log"; exit 1; }
echo "install test passed"
