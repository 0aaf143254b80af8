#!/usr/bin/env bash
# Builds the libFuzzer harnesses of fuzz/ with clang in build-fuzz/ (ASan + UBSan, coverage
# in every library), writes their seed corpora from the tests' inputs, and runs each
# harness for SECONDS seconds (default 10) on its corpus. Fails if any harness finds a
# crash, a leak, a timeout or a broken property; the input that did it is left in
# build-fuzz/artifacts/. docs/security.md, "Fuzzing".
#
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
#   scripts/fuzz.sh --campaign RUNS [HARNESS...]   one harness after another, RUNS executions
#                                                  each, nice'd, one job; logs in
#                                                  build-fuzz/campaign/
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

campaign=0
if [[ "${1:-}" == "--campaign" ]]; then
  campaign=1
  runs="${2:?--campaign needs a number of runs}"
  shift 2
else
  seconds="${1:-10}"
  shift || true
fi
harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  harnesses=(frame_fuzz json_fuzz document_fuzz keycodec_fuzz token_fuzz)
  # Added by their own parts when present (fuzz/scram_fuzz.cc).
  [[ -f fuzz/scram_fuzz.cc ]] && harnesses+=(scram_fuzz)
fi

for cc in clang clang++; do
  command -v "$cc" > /dev/null || { echo "fuzz: $cc not found (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
jobs="${CAIRN_FUZZ_BUILD_JOBS:-$(nproc)}"

echo "== fuzz build (clang, ASan + UBSan + libFuzzer) in build-fuzz"
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCAIRN_WERROR=ON -DCAIRN_FUZZ=ON -DCAIRN_BUILD_TESTS=OFF -DCAIRN_BUILD_BENCH=OFF \
  "${launcher[@]}" > /dev/null
cmake --build build-fuzz -j "$jobs" --target cairn_fuzzers cairn_fuzz_corpus

mkdir -p build-fuzz/artifacts
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
for h in "${harnesses[@]}"; do
  bin="$root/build-fuzz/fuzz/$h"
  seeds="$root/build-fuzz/corpus/$h"
  # The corpus grows in work/ (kept between runs); the seeds stay as written.
  work="$root/build-fuzz/work/$h"
  mkdir -p "$work" "$seeds"
  args=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$root/build-fuzz/artifacts/$h-"
        -print_final_stats=1)
  [[ -f "fuzz/dict/$h.dict" ]] && args+=(-dict="$root/fuzz/dict/$h.dict")
  # What the harness found once (each a regression test too) seeds every run after.
  findings=()
  [[ -d "fuzz/findings/$h" ]] && findings=("$root/fuzz/findings/$h")
  if ((campaign)); then
    mkdir -p build-fuzz/campaign
    echo "== $h: $runs runs (log: build-fuzz/campaign/$h.log)"
    if ! (cd build-fuzz/campaign && nice -n 19 "$bin" "${args[@]}" -runs="$runs" -jobs=1 \
            -workers=1 "$work" "$seeds" "${findings[@]}" > "$h.out" 2>&1); then
      failed+=("$h")
    fi
    mv -f "build-fuzz/campaign/fuzz-0.log" "build-fuzz/campaign/$h.log" 2>/dev/null || true
    grep -E "cov:" "build-fuzz/campaign/$h.log" 2>/dev/null | tail -n 1 || true
  else
    echo "== $h: ${seconds}s"
    if ! "$bin" "${args[@]}" -max_total_time="$seconds" "$work" "$seeds" "${findings[@]}" \
         > "build-fuzz/$h.log" 2>&1; then
      failed+=("$h")
      tail -n 40 "build-fuzz/$h.log"
    fi
    { grep -E "cov:" "build-fuzz/$h.log" | tail -n 1; grep -E "^Done" "build-fuzz/$h.log"; } || true
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build-fuzz/artifacts/)" >&2
  exit 1
fi
echo "== fuzz: no findings"
