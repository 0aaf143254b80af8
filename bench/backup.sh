#!/usr/bin/env bash
# Backup figures for docs/benchmarks.md ("Backup"), side by side in one run: `cairn
# backup FILE` of a running cairnd (the snapshot streamed over loopback, every chunk
# checked, written and fsynced, FILE.partial renamed) next to `cp` of the same data.mdb
# followed by `sync` of the copy, alternated ROUNDS times on the same disk, with the
# page cache warm for both; also `cairn backup -` into /dev/null (the stream alone).
# Usage: bench/backup.sh BUILD_DIR [WORK_DIR]   (WORK_DIR: on the disk to measure;
# default a temporary folder under /var/tmp). RECORDS (default 500000) documents of
# about 1 KB with one index; CAIRND=path runs another cairnd (one with the Snapshot
# stream). Loopback only; the server is stopped at the end.
set -euo pipefail
build=${1:?usage: bench/backup.sh BUILD_DIR [WORK_DIR]}
work=${2:-$(mktemp -d /var/tmp/cairn-backup-bench.XXXXXX)}
cairnd=${CAIRND:-$build/server/cairnd}
cairn=$build/client/cairn
records=${RECORDS:-500000}
rounds=${ROUNDS:-5}
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -f "$work/b.cairnbak" "$work/copy.mdb"
}
trap cleanup EXIT

echo "work folder: $work"
rm -f "$work/port"
"$cairnd" --data "$work/data" --listen 127.0.0.1:0 --port-file "$work/port" \
  --durability nosync >"$work/cairnd.log" 2>&1 &
pid=$!
for _ in $(seq 200); do [[ -s $work/port ]] && break; sleep 0.05; done
export CAIRN_ADDR=127.0.0.1:$(cat "$work/port")

"$cairn" create-collection items >/dev/null
"$cairn" create-index items by_g g >/dev/null
pad=$(printf 'x%.0s' $(seq 900))
awk -v n="$records" -v pad="$pad" \
  'BEGIN { for (i = 0; i < n; i++) printf "{\"id\":\"k%07d\",\"g\":%d,\"pad\":\"%s\"}\n", i, i % 1000, pad }' |
  "$cairn" load items - --batch 1000 >/dev/null
mb=$(stat -c %s "$work/data/data.mdb" | awk '{printf "%.1f", $1 / 1e6}')
echo "data.mdb: $mb MB, $records records"

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
backup_s=() cp_s=() stream_s=()
cat "$work/data/data.mdb" >/dev/null  # warm for both
for r in $(seq "$rounds"); do
  rm -f "$work/b.cairnbak" "$work/copy.mdb"
  backup_s+=("$(secs "$cairn" backup "$work/b.cairnbak")")
  cp_s+=("$(secs sh -c "cp '$work/data/data.mdb' '$work/copy.mdb' && sync '$work/copy.mdb'")")
  stream_s+=("$(secs sh -c "'$cairn' backup - >/dev/null")")
done
size=$(stat -c %s "$work/b.cairnbak")
"$cairn" verify-backup "$work/b.cairnbak" >/dev/null
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${backup_s[@]}") c=$(median "${cp_s[@]}") s=$(median "${stream_s[@]}")
data=$(stat -c %s "$work/data/data.mdb")
awk -v b="$b" -v c="$c" -v s="$s" -v size="$size" -v data="$data" -v rounds="$rounds" 'BEGIN {
  printf "median of %d rounds:\n", rounds
  printf "  cairn backup FILE    %6.2f s  %7.1f MB/s (backup file %.1f MB)\n", b, size / 1e6 / b, size / 1e6
  printf "  cp + sync data.mdb   %6.2f s  %7.1f MB/s (%.1f MB)\n", c, data / 1e6 / c, data / 1e6
  printf "  cairn backup - >/dev/null %6.2f s  %7.1f MB/s\n", s, size / 1e6 / s
  printf "  backup / cp: %.2f (in MB/s of what each wrote)\n", (size / b) / (data / c)
}'
