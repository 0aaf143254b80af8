#!/usr/bin/env bash
# Replication figures for docs/benchmarks.md ("Replication"), side by side in one run:
#   1. the primary's durable write rate alone, then with one replica attached;
#   2. the replica's lag (p50/p99 ms) at half that rate and at full rate;
#   3. bootstrap throughput (snapshot over loopback into the replica's folder) next to cp
#      of the same data file.
# BOOTSTRAP_ONLY=1 runs the last part alone; REPLICA_FLAGS adds flags to the replica's
# command line (--replica-apply-delay 2).
# Usage: bench/replication.sh BUILD_DIR [WORK_DIR] (WORK_DIR on the disk to measure;
# default a temporary folder under /var/tmp). REPLICA_DIR=/dev/shm/... puts the replica's
# folder elsewhere (on one machine a replica on the same disk doubles the fsyncs that
# disk serves; another folder stands for the replica's own disk). Loopback only; every
# process is stopped at the end.
set -euo pipefail
build=${1:?usage: bench/replication.sh BUILD_DIR [WORK_DIR]}
work=${2:-}
own_work=false
if [[ -z $work ]]; then
  work=$(mktemp -d /var/tmp/cairn-repl-bench.XXXXXX)
  own_work=true
fi
cairnd=$build/server/cairnd
lag=$build/bench/cairn-replica-lag
bench=$build/bench/cairn-bench
seconds=${SECONDS_PER_RUN:-8}
writers=${WRITERS:-16}
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ -n ${REPLICA_DIR:-} ]]; then rm -rf "$REPLICA_DIR"; fi
  if $own_work; then rm -rf "$work"; fi
}
trap cleanup EXIT

replica_dir=${REPLICA_DIR:-$work/replica}
folder() { if [[ $1 == replica ]]; then echo "$replica_dir"; else echo "$work/$1"; fi; }
start() {  # start NAME PORTFILE FLAGS...: a cairnd in $work/NAME; sets $port and $last_pid
  local name=$1 portfile=$2
  shift 2
  rm -f "$portfile"
  "$cairnd" --data "$(folder "$name")" --listen 127.0.0.1:0 --port-file "$portfile" "$@" \
    >"$work/$name.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
  for _ in $(seq 200); do [[ -s $portfile ]] && break; sleep 0.05; done
  port=$(cat "$portfile")
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
wait_caught_up() {  # wait_caught_up PRIMARY_PORT REPLICA_PORT
  local p r
  for _ in $(seq 600); do
    p=$("$build/client/cairn" --addr "127.0.0.1:$1" stats | grep -o '"last_commit":[0-9]*' | head -1)
    r=$("$build/client/cairn" --addr "127.0.0.1:$2" stats | grep -o '"last_commit":[0-9]*' | head -1)
    [[ $p == "$r" ]] && return 0
    sleep 0.1
  done
  return 1
}

echo "work folder: $work"
start primary "$work/p.port" --durability sync
pport=$port
ppid=$last_pid
"$build/client/cairn" --addr "127.0.0.1:$pport" create-collection lag >/dev/null

cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }  # user+system seconds
# One measurement: prints the driver's JSON line and the CPU seconds the primary (and the
# replica) spent during it.
run() {  # run LABEL REPLICA_PORT_OR_EMPTY RATE
  local p0 r0=0 out
  p0=$(cpu "$ppid")
  if [[ -n $2 ]]; then r0=$(cpu "$rpid"); fi
  out=$("$lag" --primary "127.0.0.1:$pport" ${2:+--replica "127.0.0.1:$2"} --writers "$writers" \
    --seconds "$seconds" --rate "$3")
  echo "$1 $out primary_cpu_s=$(echo "$(cpu "$ppid") - $p0" | bc)" \
    "${2:+replica_cpu_s=$(echo "$(cpu "$rpid") - $r0" | bc)}"
  last_rate=$(echo "$out" | grep -o '"writes_per_s":[0-9]*' | cut -d: -f2)
}

# A replica that has caught up, restarted so that its lag summary holds the next run alone.
fresh_replica() {
  # shellcheck disable=SC2086  # REPLICA_FLAGS: words
  start replica "$work/r.port" --durability sync --replica-of "127.0.0.1:$pport" ${REPLICA_FLAGS:-}
  wait_caught_up "$pport" "$port"
  stop "$last_pid"
  # shellcheck disable=SC2086
  start replica "$work/r.port" --durability sync --replica-of "127.0.0.1:$pport" ${REPLICA_FLAGS:-}
  rport=$port
  rpid=$last_pid
  wait_caught_up "$pport" "$rport"
}

if [[ -z ${BOOTSTRAP_ONLY:-} ]]; then
# Alone and with a replica, alternated (the machine's pace drifts), then the lag at half
# the median rate alone. A replica that is stopped for the runs alone is restarted (and
# catches up) before each run with it.
echo "== durable writes at full rate: alone / with one replica ($writers writers, ${seconds}s each)"
rates=()
for i in 1 2 3; do
  run "alone" "" 0
  rates+=("$last_rate")
  fresh_replica
  run "with-replica" "$rport" 0
  stop "$rpid"
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p)
half=$((median / 2))
echo "== half rate ($half writes/s, half the median rate alone) with one replica"
for i in 1 2; do
  fresh_replica
  run "half-rate" "$rport" "$half"
  stop "$rpid"
done

fi

echo "== bootstrap next to cp"
"$bench" --addr "127.0.0.1:$pport" --workload put --load --keys "${BOOT_KEYS:-300000}" \
  --value-size 1000 --requests 1 --json >/dev/null
sync
# cp of the data file (and its fsync: the bootstrap ends with one too), then a
# bootstrap of a new replica from it, three times alternated.
for i in 1 2 3; do
  rm -rf "$replica_dir" "$work/cp"
  mkdir -p "$work/cp"
  t0=$(date +%s.%N)
  cp "$work/primary/data.mdb" "$work/cp/data.mdb"
  sync "$work/cp/data.mdb"  # fsync of that file alone, as the bootstrap's
  t1=$(date +%s.%N)
  bytes=$(stat -c %s "$work/primary/data.mdb")
  echo "cp: $bytes bytes in $(echo "$t1 - $t0" | bc) s: $(echo "$bytes / ($t1 - $t0) / 1000000" | bc) MB/s"
  rm -rf "$work/cp"
  start replica "$work/r.port" --durability sync --replica-of "127.0.0.1:$pport"
  rpid=$last_pid
  for _ in $(seq 600); do grep -q "snapshot received" "$work/replica.log" && break; sleep 0.1; done
  grep -o "snapshot received.*" "$work/replica.log"
  stop "$rpid"
done
stop "$ppid"
