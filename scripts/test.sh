#!/usr/bin/env bash
# Installs dependencies, builds cairn twice (optimized, and with AddressSanitizer +
# UndefinedBehaviorSanitizer) and runs every test under ctest in both builds; then builds
# the libFuzzer harnesses (clang, build-fuzz/) and runs each briefly on its seeds.
# Warnings are errors here. This is what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
jobs=$(nproc)

echo "== optimized build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCAIRN_WERROR=ON
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs"

echo "== sanitizer build (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCAIRN_SANITIZE=ON -DCAIRN_WERROR=ON \
  -DCAIRN_BUILD_BENCH=OFF
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs"

echo "== fuzz harnesses (clang; about 10 s each)"
./scripts/fuzz.sh "${CAIRN_FUZZ_SECONDS:-10}"
echo "== all tests passed"
