#!/bin/bash
# TLS next to plaintext (docs/benchmarks.md, "TLS"): point reads, 50 connections,
# pipeline 16, with cairn-bench against cairnd --threads 1, alternating plaintext and
# TLS runs (A B A B ...), with the server's CPU time per request, which a shared machine
# disturbs less than the rate.
#   bench/tls.sh BUILD_DIR        (ROUNDS=N pairs, default 4)
# It makes a throwaway CA and server certificate with the openssl command line, and
# loads 100,000 keys into a fresh database first.
set -eu
B=$(realpath "${1:-build}")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
D=$W/data
cd "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key \
  -out ca.pem -days 2 -subj "/CN=bench CA" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout s.key -out s.csr \
  -subj "/CN=localhost" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" >ext
openssl x509 -req -in s.csr -CA ca.pem -CAkey ca.key -set_serial 7 -out s.pem -days 2 \
  -extfile ext 2>/dev/null
start() {
  rm -f $W/port
  $B/server/cairnd --data $D --listen 127.0.0.1:0 --port-file $W/port --threads 1 --durability nosync --log-level warn "$@" &
  PID=$!
  until [ -s $W/port ]; do sleep 0.05; done
  ADDR=127.0.0.1:$(cat $W/port)
}
cpu() { awk '{print $14+$15}' /proc/$PID/stat; }
stop() { kill $PID; wait $PID; }
run() {
  local name=$1; shift
  c0=$(cpu)
  out=$($B/bench/cairn-bench --addr $ADDR "$@" --workload get --connections 50 --pipeline 16 --duration 5 --json)
  c1=$(cpu)
  ops=$(echo "$out" | grep -o '"ops":[0-9]*' | cut -d: -f2)
  rps=$(echo "$out" | grep -o '"ops_per_sec":[0-9.]*' | cut -d: -f2)
  echo "$name rps=$rps server_us_per_req=$(echo "scale=3; ($c1-$c0)*10000/$ops" | bc)"
}
start; $B/bench/cairn-bench --addr $ADDR --load --requests 1 >/dev/null 2>&1; stop
for round in $(seq 1 ${ROUNDS:-4}); do
  start; run plain; stop
  start --tls-cert $W/s.pem --tls-key $W/s.key; run tls --tls-ca $W/ca.pem; stop
done
