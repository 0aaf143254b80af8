#!/usr/bin/env bash
# Installs cairn's build and test dependencies from Debian's packages.
# Idempotent: packages already installed are skipped, and apt is not touched
# at all when nothing is missing. Run as root (or with sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  liblmdb-dev lmdb-utils
  libflatbuffers-dev flatbuffers-compiler
  libasio-dev
  libxxhash-dev
  libbenchmark-dev
  libgtest-dev libgmock-dev
  libcli11-dev
  libspdlog-dev libfmt-dev
  libssl-dev openssl
)
# Extra packages for benchmarks and comparisons: ./scripts/install-deps.sh --bench
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(redis-server redis-tools python3 linux-perf gnuplot-nox)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
