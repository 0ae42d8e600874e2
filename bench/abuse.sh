#!/usr/bin/env bash
# Hostile load: how much slower do reads get while thousands of idle keep-alive connections
# and a slowloris client sit on the server? trustbridge-server vs Go notary-server 0.7.0 vs
# nginx (same bytes, same certificate), in one run. Not a test: it prints numbers and ratios.
#   1. wrk -t2 -c32 GET timestamp.json on each, quiet;
#   2. the same while IDLE TLS clients (one request each, then silent, keep-alive) and a
#      slowloris (SLOW connections sending one header byte every second) hold connections;
#   3. RSS of each server before and during.
# trustbridge runs with max_connections below IDLE, so its cap is hit and idle connections
# are closed first (trustbridge.http); notary-server has no cap; nginx is given room for all.
#
#   bench/abuse.sh [SECONDS=10] [IDLE=5000] [SLOW=200]   (as root the first time: nginx-light)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-10}
idle=${2:-5000}
slow=${3:-200}
cap=$((idle / 2))
ulimit -n "$(ulimit -Hn)"  # the python client and each server hold thousands of sockets
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then export CARGO_TARGET_DIR=/work/.cargo-target; fi
target=${CARGO_TARGET_DIR:-target}
for b in notary notary-server notary-signer wrk curl python3; do
  command -v "$b" >/dev/null || { echo "bench: $b missing (scripts/test.sh installs the peers)" >&2; exit 1; }
done
if ! command -v nginx >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "bench: nginx missing; run as root to apt-get install nginx-light" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
cargo build --release -q -p trustbridge-server -p trustbridge-signer -p trustbridge-certs \
  --bin trustbridge-server --bin trustbridge-signer --bin trustbridge-certs
bin=$target/release

dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  "$root/../shared/peers/notary-reference.sh" stop "$dir/ref" >/dev/null 2>&1 || true
  [ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

mkdir -p "$dir/tb"
"$bin/trustbridge-certs" "$dir/tb/certs" >/dev/null
sp=$(port); tp=$(port); rp=$(port); rsp=$(port); np=$(port)
cat > "$dir/tb/signer.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$sp","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"keys.db","default_alias":"bench"}}
JSON
cat > "$dir/tb/server.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$tp","tls_cert_file":"certs/server.crt","tls_key_file":"certs/server.key"},
 "trust_service":{"type":"remote","hostname":"127.0.0.1","port":"$sp","key_algorithm":"ecdsa","tls_ca_file":"certs/root-ca.crt",
   "tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"server.db"},
 "trustbridge":{"http":{"max_connections":$cap}}}
JSON
NOTARY_SIGNER_BENCH=bench "$bin/trustbridge-signer" --config "$dir/tb/signer.json" >"$dir/tb/signer.log" 2>&1 & pids+=($!)
"$bin/trustbridge-server" --config "$dir/tb/server.json" >"$dir/tb/server.log" 2>&1 & tb_pid=$!; pids+=($tb_pid)
tb_ca=$dir/tb/certs/root-ca.crt
for _ in $(seq 100); do curl -fsS --cacert "$tb_ca" "https://127.0.0.1:$tp/_notary_server/health" >/dev/null 2>&1 && break; sleep 0.1; done

NOTARY_SERVER_PORT=$rp NOTARY_SIGNER_PORT=$rsp NOTARY_SERVER_LOGLEVEL=error \
  "$root/../shared/peers/notary-reference.sh" start "$dir/ref" >/dev/null
ref_ca=$dir/ref/certs/root-ca.crt
ref_pid=$(cat "$dir/ref/server.pid")

gun=bench.example/abuse/app
publish() {  # URL CA TRUSTDIR
  local n=(notary -s "$1" --tlscacert "$2" -d "$3")
  export NOTARY_ROOT_PASSPHRASE=bench NOTARY_TARGETS_PASSPHRASE=bench NOTARY_SNAPSHOT_PASSPHRASE=bench
  echo one > "$dir/t1"
  "${n[@]}" init "$gun" >/dev/null
  "${n[@]}" key rotate "$gun" snapshot -r >/dev/null
  "${n[@]}" add "$gun" v1 "$dir/t1" >/dev/null
  "${n[@]}" publish "$gun" >/dev/null
}
publish "https://127.0.0.1:$tp" "$tb_ca" "$dir/tb/trust"
publish "https://127.0.0.1:$rp" "$ref_ca" "$dir/ref/trust"

mkdir -p "$dir/nginx/www/v2/$gun/_trust/tuf"
curl -fsS --cacert "$tb_ca" "https://127.0.0.1:$tp/v2/$gun/_trust/tuf/timestamp.json" -o "$dir/nginx/www/v2/$gun/_trust/tuf/timestamp.json"
cat > "$dir/nginx/nginx.conf" <<CONF
worker_processes 2;
worker_rlimit_nofile 20000;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log error;
events { worker_connections 16384; }
http {
  access_log off;
  default_type "text/plain; charset=utf-8";
  keepalive_requests 1000000;
  keepalive_timeout 3600s;
  client_header_timeout 3600s;
  server {
    listen 127.0.0.1:$np ssl http2;
    ssl_certificate $dir/tb/certs/server.crt;
    ssl_certificate_key $dir/tb/certs/server.key;
    root $dir/nginx/www;
  }
}
CONF
nginx -c "$dir/nginx/nginx.conf"
ngx_pids() { pgrep -f "nginx: worker process" | tr '\n' ' '; }
ngx_rss() { local t=0; for p in $(ngx_pids); do t=$((t + $(rss "$p"))); done; echo $t; }

# The abusers: IDLE keep-alive TLS clients (one request answered, then silent) and SLOW
# slowloris connections (a header byte a second), held until killed.
cat > "$dir/abuse.py" <<'PY'
import asyncio, ssl, sys
host, port, ca, idle, slow = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
held = []
async def one_idle(sem):
    async with sem:
        try:
            r, w = await asyncio.open_connection(host, port, ssl=ctx)
            w.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            await w.drain()
            await r.read(1024)
            held.append(w)
        except Exception:
            pass
async def one_slow():
    try:
        r, w = await asyncio.open_connection(host, port, ssl=ctx)
        w.write(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        while True:
            w.write(b"X")
            await w.drain()
            await asyncio.sleep(1)
    except Exception:
        pass
async def main():
    sem = asyncio.Semaphore(200)
    await asyncio.gather(*(one_idle(sem) for _ in range(idle)))
    print(f"{len(held)} idle connections open", flush=True)
    await asyncio.gather(*(one_slow() for _ in range(slow)))
asyncio.run(main())
PY

echo "abuse: wrk -t2 -c32 -d${secs}s keep-alive HTTPS GET timestamp.json, quiet and while $idle idle keep-alive + $slow slowloris connections are held; $(nproc) cores"
echo "  (trustbridge max_connections=$cap: its cap is hit; notary-server has none; nginx 32768)"
rate() { wrk -t2 -c32 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
for name in trustbridge notary nginx; do
  case $name in
    trustbridge) url="https://127.0.0.1:$tp"; ca=$tb_ca; p=$tp ;;
    notary) url="https://127.0.0.1:$rp"; ca=$ref_ca; p=$rp ;;
    nginx) url="https://127.0.0.1:$np"; ca=$tb_ca; p=$np ;;
  esac
  mem() { case $name in trustbridge) rss "$tb_pid" ;; notary) rss "$ref_pid" ;; nginx) ngx_rss ;; esac; }
  quiet=$(rate "$url/v2/$gun/_trust/tuf/timestamp.json")
  m0=$(mem)
  python3 "$dir/abuse.py" 127.0.0.1 "$p" "$ca" "$idle" "$slow" > "$dir/abuse-$name.log" 2>&1 &
  ab=$!
  for _ in $(seq 600); do grep -q "idle connections open" "$dir/abuse-$name.log" && break; sleep 0.1; done
  sleep 2
  held=$(awk '/idle connections open/ {print $1}' "$dir/abuse-$name.log")
  loaded=$(rate "$url/v2/$gun/_trust/tuf/timestamp.json")
  m1=$(mem)
  kill "$ab" 2>/dev/null || true; wait "$ab" 2>/dev/null || true
  python3 - "$name" "$quiet" "${loaded:-0}" "$m0" "$m1" "${held:-0}" <<'PY'
import sys
name, quiet, loaded, m0, m1, held = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), *sys.argv[4:]
print(f"  {name:12s} quiet {quiet:9.0f}/s   under abuse {loaded:9.0f}/s   ratio {loaded/quiet if quiet else 0:5.0%}"
      f"   RSS {m0} -> {m1} MiB   idle connections it accepted {held}")
PY
  sleep 1
done
