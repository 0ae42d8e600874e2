#!/usr/bin/env bash
# Scale: many repositories, key creation as keys accumulate, hot and cold reads, publish CPU,
# one very large publish — trustbridge-server + trustbridge-signer (SQLite stores, default
# cache budget) beside Go notary-server + notary-signer 0.7.0 (memory stores,
# ../shared/peers/notary-reference.sh) on this box, in one run. Not a test: it prints numbers,
# ratios and the targets of the Scale issue.
#
# Go notary is driven one request at a time where it creates keys (CreateKey, the first GET of
# a repository's keys): notary-signer 0.7.0's memory store and notary-server's checksum cache
# crash with "concurrent map writes" under concurrency. trustbridge gets 16 at once.
#
#   bench/scale.sh [GUNS=100000] [NOTARY_GUNS=GUNS] [BIG_TARGETS=100000] [SECONDS=10]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
guns=${1:-100000}
ref_guns=${2:-$guns}
big=${3:-100000}
secs=${4:-10}
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then export CARGO_TARGET_DIR=/work/.cargo-target; fi
target=${CARGO_TARGET_DIR:-target}
for b in notary-server notary-signer curl python3; do
  command -v "$b" >/dev/null || { echo "bench: $b missing (scripts/test.sh installs the peers)" >&2; exit 1; }
done
cargo build --release -q -p trustbridge-server -p trustbridge-signer -p trustbridge-certs -p trustbridge-e2e \
  --bin trustbridge-server --bin trustbridge-signer --bin trustbridge-certs --bin scale-load --bin publish-load
bin=$target/release

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for r in ref bigref; do "$root/../shared/peers/notary-reference.sh" stop "$dir/$r" >/dev/null 2>&1 || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/^VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }    # MiB now
hwm() { awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }    # MiB peak
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }                      # clock ticks used
hz=$(getconf CLK_TCK)
load=("$bin/scale-load")
wait_health() { for _ in $(seq 150); do curl -fsS --cacert "$2" "$1/_notary_server/health" >/dev/null 2>&1 && return; sleep 0.1; done; echo "bench: $1 never healthy" >&2; exit 1; }

# trustbridge: signer + server, SQLite stores.
start_tb() {  # NAME → sets tb_url tb_ca tbs_pid tbv_pid
  local d=$dir/$1 sp tp
  mkdir -p "$d"
  [ -f "$dir/certs/root-ca.crt" ] || "$bin/trustbridge-certs" "$dir/certs" >/dev/null
  ln -sfn "$dir/certs" "$d/certs"
  sp=$(port); tp=$(port)
  cat > "$d/signer.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$sp","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"keys.db","default_alias":"bench"}}
JSON
  cat > "$d/server.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$tp","tls_cert_file":"certs/server.crt","tls_key_file":"certs/server.key"},
 "trust_service":{"type":"remote","hostname":"127.0.0.1","port":"$sp","key_algorithm":"ecdsa","tls_ca_file":"certs/root-ca.crt",
   "tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"server.db"}}
JSON
  (cd "$d" && NOTARY_SIGNER_BENCH=bench exec "$bin/trustbridge-signer" --config signer.json >signer.log 2>&1) & tbs_pid=$!; pids+=($tbs_pid)
  (cd "$d" && exec "$bin/trustbridge-server" --config server.json >server.log 2>&1) & tbv_pid=$!; pids+=($tbv_pid)
  tb_url=https://127.0.0.1:$tp; tb_ca=$dir/certs/root-ca.crt
  wait_health "$tb_url" "$tb_ca"
}
start_ref() {  # NAME → sets ref_url ref_ca refs_pid refv_pid
  local rp rsp
  rp=$(port); rsp=$(port)
  NOTARY_SERVER_PORT=$rp NOTARY_SIGNER_PORT=$rsp NOTARY_SERVER_LOGLEVEL=error \
    "$root/../shared/peers/notary-reference.sh" start "$dir/$1" >/dev/null
  ref_url=https://127.0.0.1:$rp; ref_ca=$dir/$1/certs/root-ca.crt
  refs_pid=$(cat "$dir/$1/signer.pid"); refv_pid=$(cat "$dir/$1/server.pid")
}
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}' if b else 'n/a')" "$1" "$2"; }
first() { echo "$1" | awk '{print $1}'; }

start_tb tb
start_ref ref
echo "scale: $(nproc) cores; trustbridge $guns repositories, notary-server $ref_guns (memory stores)"

echo "key creation, one at a time (GET timestamp.key of new GUNs: a CreateKey each)"
tb_k1=$("${load[@]}" keys "$tb_url" "$tb_ca" keys.example/early 1000)
ref_k1=$("${load[@]}" keys "$ref_url" "$ref_ca" keys.example/early 1000)
echo "  with ~1k keys:   trustbridge $tb_k1   notary $ref_k1"

echo "populating: repositories with server-held snapshot and timestamp (2 CreateKeys + 1 publish each)"
tb_rss0=$(rss "$tbv_pid")
echo "  trustbridge: $("${load[@]}" populate "$tb_url" "$tb_ca" scale.example/r 0 "$guns" 16)"
echo "  notary:      $("${load[@]}" populate "$ref_url" "$ref_ca" scale.example/r 0 "$ref_guns" 1)"
tb_k2=$("${load[@]}" keys "$tb_url" "$tb_ca" keys.example/late 1000)
ref_k2=$("${load[@]}" keys "$ref_url" "$ref_ca" keys.example/late 1000)
echo "  with ~$((2 * guns / 1000))k keys: trustbridge $tb_k2   (notary at ~$((2 * ref_guns / 1000))k: $ref_k2)"
echo "  key creation cost (median), late/early: trustbridge $(ratio "$(first "$tb_k2")" "$(first "$tb_k1")")x (target <= 1.20x)   notary $(ratio "$(first "$ref_k2")" "$(first "$ref_k1")")x"

echo "memory after populating (RSS, MiB)"
echo "  trustbridge-server $(rss "$tbv_pid") (idle before: $tb_rss0; target < 150 at 100k)   trustbridge-signer $(rss "$tbs_pid")"
echo "  trustbridge cache: $(curl -fsS --cacert "$tb_ca" "$tb_url/metrics" | awk '/^trustbridge_cache_(bytes|budget_bytes|views) / {printf "%s=%s ", substr($1, 19), $2}')"
echo "  notary-server      $(rss "$refv_pid")   notary-signer $(rss "$refs_pid")"

echo "GET timestamp.json, 32 at a time for ${secs}s"
for mode in hot cold; do
  t=$("${load[@]}" get "$tb_url" "$tb_ca" scale.example/r "$guns" "$secs" 32 "$mode")
  r=$("${load[@]}" get "$ref_url" "$ref_ca" scale.example/r "$ref_guns" "$secs" 32 "$mode")
  echo "  $mode: trustbridge $t"
  echo "  $mode: notary      $r"
done
echo "  (targets: cold p99 < 10 ms at 100k; hot at least as fast as bench/server.sh's reads)"
# The control room writes the DCT reads it counted every usage_flush_seconds (10 s): let that
# happen before the publish window, and show what it cost.
a=$(cpu "$tbv_pid"); sleep 12; b=$(cpu "$tbv_pid")
echo "  trustbridge-server CPU in the 12 s after the reads (writing their DCT usage rows): $(( (b - a) * 1000 / hz )) ms"
echo "  memory after the reads (RSS, MiB): trustbridge-server $(rss "$tbv_pid") (target < 150 at 100k)   notary-server $(rss "$refv_pid")"

echo "publish CPU: 16 publishers for ${secs}s, server-held snapshot + timestamp (server + signer CPU per publish)"
publish_cpu() {  # URL CA SERVER_PID SIGNER_PID → "ms_per_publish publishes"
  local a b out n
  a=$(( $(cpu "$3") + $(cpu "$4") ))
  out=$("$bin/publish-load" "$1" "$2" 16 "$secs")
  b=$(( $(cpu "$3") + $(cpu "$4") ))
  n=$(echo "$out" | sed -n 's/.*(\([0-9]*\) publishes.*/\1/p')
  python3 -c "import sys; t,n,hz=map(float,sys.argv[1:]); print(f'{t/hz*1000/max(n,1):.3f} {int(n)}')" "$((b - a))" "$n" "$hz"
}
tb_pc=$(publish_cpu "$tb_url" "$tb_ca" "$tbv_pid" "$tbs_pid")
ref_pc=$(publish_cpu "$ref_url" "$ref_ca" "$refv_pid" "$refs_pid")
echo "  trustbridge $(first "$tb_pc") ms CPU per publish ($(echo "$tb_pc" | awk '{print $2}') publishes)"
echo "  notary      $(first "$ref_pc") ms CPU per publish ($(echo "$ref_pc" | awk '{print $2}') publishes)"
echo "  trustbridge/notary CPU per publish: $(ratio "$(first "$tb_pc")" "$(first "$ref_pc")") (target <= 0.20)"

echo "one publish of a $big-target repository (fresh servers: peak RSS above idle)"
start_tb tbbig
start_ref bigref
tb_idle=$(rss "$tbv_pid"); ref_idle=$(rss "$refv_pid")
tb_big=$("${load[@]}" big "$tb_url" "$tb_ca" big.example/app "$big")
ref_big=$("${load[@]}" big "$ref_url" "$ref_ca" big.example/app "$big")
tb_peak=$(hwm "$tbv_pid"); ref_peak=$(hwm "$refv_pid")
echo "  trustbridge $tb_big; server peak $tb_peak MiB, idle $tb_idle MiB: +$(python3 -c "print(f'{$tb_peak-$tb_idle:.1f}')") MiB (target < 60)"
echo "  notary      $ref_big; server peak $ref_peak MiB, idle $ref_idle MiB: +$(python3 -c "print(f'{$ref_peak-$ref_idle:.1f}')") MiB"
# The control room's summary of the new trust runs right after (summary_seconds): its peak
# belongs to the publish too.
sleep 5
tb_peak=$(hwm "$tbv_pid")
echo "  trustbridge with the summary that follows: peak $tb_peak MiB: +$(python3 -c "print(f'{$tb_peak-$tb_idle:.1f}')") MiB; RSS after $(rss "$tbv_pid") MiB"

echo "GET of that targets.json ($big targets), 8 at a time, 32 in all (peak RSS above the RSS before)"
big_get() {  # URL CA SERVER_PID → "seconds, peak above"
  local before t0 t1
  before=$(rss "$3")
  echo 5 > "/proc/$3/clear_refs"   # resets VmHWM to the current RSS
  t0=$(date +%s.%N)
  seq 32 | xargs -P 8 -I{} curl -fsS -o /dev/null --cacert "$2" "$1/v2/big.example/app/_trust/tuf/targets.json"
  t1=$(date +%s.%N)
  python3 -c "import sys; t0,t1,b,p=map(float,sys.argv[1:]); print(f'{t1-t0:.2f} s, peak +{p-b:.1f} MiB (RSS before {b:.1f})')" "$t0" "$t1" "$before" "$(hwm "$3")"
}
echo "  trustbridge $(big_get "$tb_url" "$tb_ca" "$tbv_pid")"
echo "  notary      $(big_get "$ref_url" "$ref_ca" "$refv_pid")"
