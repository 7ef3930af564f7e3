#!/bin/bash
# The workers bench (README.md, "Workers"): the echo baseline, then eligd with workers = 1, 2 and 2 with
# steering = hash, in one run. Needs release builds (cargo build --release -p elig-server -p elig-benches
# -p elig-client --bins) and a snapshot in S (e.g. from `cargo bench -p elig-benches --bench lookup`).
set -u
cd "$(dirname "$0")/.."
B=target/release
S=${S:-/tmp/s1m-j}
D=15; W=3
rm -rf /tmp/eb/certs; $B/eligd certs --out /tmp/eb/certs >/dev/null
cat > /tmp/eb/elig.toml <<T
server = "127.0.0.1:4433"
ca = "/tmp/eb/certs/ca.pem"
cert = "/tmp/eb/certs/central.pem"
key = "/tmp/eb/certs/central.key"
T
conf() { # workers steering
cat > /tmp/eb/eligd.toml <<T
listen = "127.0.0.1:4433"
snapshot_dir = "$S"
delta_log = "/tmp/eb/deltas.log"
lock_memory = false
workers = $1
[tls]
ca = "/tmp/eb/certs/ca.pem"
cert = "/tmp/eb/certs/server.pem"
key = "/tmp/eb/certs/server.key"
[udp]
steering = "$2"
T
}
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
bench() { # label, pin-prefix, args...
  local label=$1; shift; local pin=$1; shift
  local t0=$(ticks $EPID); local s0=$(date +%s.%N)
  out=$( { /usr/bin/time -f "BENCHCPU %U %S %e" $pin $B/elig-bench --config /tmp/eb/elig.toml --snapshot $S --duration ${D}s --warmup ${W}s "$@" ; } 2>&1 )
  local t1=$(ticks $EPID); local s1=$(date +%s.%N)
  local wall=$(echo "$s1 - $s0" | bc)
  local ecpu=$(echo "scale=2; ($t1 - $t0) / 100 / $wall" | bc)
  local bcpu=$(echo "$out" | awk '/BENCHCPU/ {printf "%.2f", ($2+$3)/$4}')
  echo "== $label: eligd cores $ecpu (over the whole run incl. key drawing), bench cores $bcpu"
  echo "$out" | grep -E "^requests|^items|latency|item  |failed" | head -8
}
start() { # workers steering pin
  conf $1 $2
  rm -f /tmp/eb/deltas.log
  RUST_LOG=warn,elig_server::quic::server=info $3 $B/eligd serve --config /tmp/eb/eligd.toml > /tmp/eb/eligd.log 2>&1 &
  EPID=$!
  for i in $(seq 1 200); do sleep 0.3; grep -q "eligd listening" /tmp/eb/eligd.log && break; done
  grep "eligd listening" /tmp/eb/eligd.log | tail -1
  sleep 1
}
stop() { kill $EPID; wait $EPID 2>/dev/null; }
date -u
echo "== echo c64"; $B/echo --concurrency 64 --duration $D --warmup $W 2>&1 | tail -4
echo "== echo c1"; $B/echo --concurrency 1 --duration $D --warmup $W 2>&1 | tail -4
for v in "1 connection_id" "2 connection_id" "2 hash"; do
  set -- $v
  start $1 $2 ""
  bench "workers=$1 $2 c64 conn1" "" --concurrency 64
  bench "workers=$1 $2 c64 conn4" "" --concurrency 64 --connections 4
  if [ "$2" = connection_id ]; then
    bench "workers=$1 $2 c1" "" --concurrency 1
    bench "workers=$1 $2 bulk10000 conn1" "" --mode bulk --bulk-items 10000
    bench "workers=$1 $2 bulk10000 c2 conn2" "" --mode bulk --bulk-items 10000 --concurrency 2 --connections 2
  fi
  stop
done
start 1 connection_id "taskset -c 0"
bench "PINNED eligd cpu0 workers=1, bench cpu1: c64 conn1" "taskset -c 1" --concurrency 64
bench "PINNED c1" "taskset -c 1" --concurrency 1
bench "PINNED bulk" "taskset -c 1" --mode bulk --bulk-items 10000
stop
date -u
