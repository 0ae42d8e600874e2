#!/usr/bin/env bash
# Reads and publishes: trustbridge-server vs Go notary-server 0.7.0 vs nginx, on this box, in
# one run. Not a test: it prints numbers and ratios.
#   * GET timestamp.json and root.json of a published repository, wrk -t2 -c32 keep-alive HTTPS,
#     against trustbridge-server (+ trustbridge-signer), notary-server (+ notary-signer, both
#     memory stores, ../shared/peers/notary-reference.sh) and nginx serving the same bytes;
#   * 16 concurrent publishers (tests/src/bin/publish-load.rs), server-managed snapshot and
#     timestamp, against both Notary servers; then both again on PostgreSQL (loopback), as
#     deployed with several replicas.
# Targets (from the Server issue): reads >= 70% of nginx's rate, publishes >= 5x notary-server.
#
#   bench/server.sh [SECONDS=10] [PUBLISHERS=16]     (as root the first time: installs nginx-light)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=${1:-10}
pubs=${2:-16}
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then export CARGO_TARGET_DIR=/work/.cargo-target; fi
target=${CARGO_TARGET_DIR:-target}
for b in notary notary-server notary-signer wrk curl; do
  command -v "$b" >/dev/null || { echo "bench: $b missing (scripts/test.sh installs the peers)" >&2; exit 1; }
done
if ! command -v nginx >/dev/null; then
  [ "$(id -u)" -eq 0 ] || { echo "bench: nginx missing; run as root to apt-get install nginx-light" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
cargo build --release -q -p trustbridge-server -p trustbridge-signer -p trustbridge-certs -p trustbridge-e2e \
  --bin trustbridge-server --bin trustbridge-signer --bin trustbridge-certs --bin publish-load
bin=$target/release

dir=$(mktemp -d)
pids=()
pgdb=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for d in $pgdb ${pgdb:+${pgdb}_tb}; do
    psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
  done
  "$root/../shared/peers/notary-reference.sh" stop "$dir/ref" >/dev/null 2>&1 || true
  [ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# trustbridge: signer + server, SQLite stores.
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
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"server.db"}}
JSON
NOTARY_SIGNER_BENCH=bench "$bin/trustbridge-signer" --config "$dir/tb/signer.json" >"$dir/tb/signer.log" 2>&1 & pids+=($!)
"$bin/trustbridge-server" --config "$dir/tb/server.json" >"$dir/tb/server.log" 2>&1 & pids+=($!)
tb_ca=$dir/tb/certs/root-ca.crt
for _ in $(seq 100); do curl -fsS --cacert "$tb_ca" "https://127.0.0.1:$tp/_notary_server/health" >/dev/null 2>&1 && break; sleep 0.1; done

# Go notary-server + notary-signer (memory).
NOTARY_SERVER_PORT=$rp NOTARY_SIGNER_PORT=$rsp NOTARY_SERVER_LOGLEVEL=error \
  "$root/../shared/peers/notary-reference.sh" start "$dir/ref" >/dev/null
ref_ca=$dir/ref/certs/root-ca.crt

# One published repository on each (real notary client, server-managed snapshot).
gun=bench.example/reads/app
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

# nginx serving trustbridge's bytes at the same paths, with the same certificate.
mkdir -p "$dir/nginx/www/v2/$gun/_trust/tuf"
for f in timestamp root; do
  curl -fsS --cacert "$tb_ca" "https://127.0.0.1:$tp/v2/$gun/_trust/tuf/$f.json" -o "$dir/nginx/www/v2/$gun/_trust/tuf/$f.json"
done
cat > "$dir/nginx/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log error;
events { worker_connections 1024; }
http {
  access_log off;
  default_type "text/plain; charset=utf-8";
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$np ssl http2;
    ssl_certificate $dir/tb/certs/server.crt;
    ssl_certificate_key $dir/tb/certs/server.key;
    root $dir/nginx/www;
  }
}
CONF
nginx -c "$dir/nginx/nginx.conf"

echo "reads: wrk -t2 -c32 -d${secs}s keep-alive HTTPS, $(nproc) cores, everything on this box"
rate() { wrk -t2 -c32 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
declare -A r
for f in timestamp root; do
  r[tb_$f]=$(rate "https://127.0.0.1:$tp/v2/$gun/_trust/tuf/$f.json")
  r[ref_$f]=$(rate "https://127.0.0.1:$rp/v2/$gun/_trust/tuf/$f.json")
  r[ngx_$f]=$(rate "https://127.0.0.1:$np/v2/$gun/_trust/tuf/$f.json")
  python3 - "$f" "${r[tb_$f]}" "${r[ref_$f]}" "${r[ngx_$f]}" <<'PY'
import sys
f, tb, ref, ngx = sys.argv[1], *map(float, sys.argv[2:])
print(f"  GET {f}.json  trustbridge {tb:9.0f}/s   notary-server {ref:9.0f}/s   nginx {ngx:9.0f}/s"
      f"   trustbridge/nginx {tb/ngx:5.0%}   trustbridge/notary {tb/ref:5.2f}x")
PY
done

echo "publishes: $pubs concurrent publishers, ${secs}s, server-managed snapshot + timestamp"
tbp=$("$bin/publish-load" "https://127.0.0.1:$tp" "$tb_ca" "$pubs" "$secs")
refp=$("$bin/publish-load" "https://127.0.0.1:$rp" "$ref_ca" "$pubs" "$secs")
echo "  trustbridge-server:   $tbp"
echo "  notary-server 0.7.0:  $refp"
python3 - "$tbp" "$refp" <<'PY'
import sys
tb, ref = (float(a.split()[0]) for a in sys.argv[1:])
print(f"  ratio trustbridge/notary: {tb/ref:.2f}x")
PY

# notary-server as deployed: a SQL store (PostgreSQL on loopback, notary's server schema,
# written here from the reference §6), same signer. Skipped when PostgreSQL is not there.
if psql -h 127.0.0.1 -U postgres -d postgres -qc 'SELECT 1' >/dev/null 2>&1; then
  pgdb="tb_bench_$$"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $pgdb" >/dev/null
  psql -h 127.0.0.1 -U postgres -d "$pgdb" -q -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE tuf_files (id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL,
  deleted_at timestamp NULL, gun varchar(255) NOT NULL, role varchar(255) NOT NULL, version integer NOT NULL,
  data bytea NOT NULL, sha256 char(64) DEFAULT NULL, UNIQUE (gun, role, version));
CREATE INDEX tuf_files_sha256_idx ON tuf_files(sha256);
CREATE TABLE change_category (category VARCHAR(20) PRIMARY KEY);
INSERT INTO change_category VALUES ('update'), ('deletion');
CREATE TABLE changefeed (id serial PRIMARY KEY, created_at timestamp DEFAULT CURRENT_TIMESTAMP,
  gun varchar(255) NOT NULL, version integer NOT NULL, sha256 CHAR(64) DEFAULT NULL,
  category VARCHAR(20) NOT NULL DEFAULT 'update' REFERENCES change_category);
CREATE INDEX idx_changefeed_gun ON changefeed (gun);
SQL
  pp=$(port)
  cat > "$dir/ref/server-pg.json" <<JSON
{"server":{"http_addr":"127.0.0.1:$pp","tls_cert_file":"certs/notary-server.crt","tls_key_file":"certs/notary-server.key"},
 "trust_service":{"type":"remote","hostname":"127.0.0.1","port":"$rsp","key_algorithm":"ecdsa","tls_ca_file":"certs/root-ca.crt",
   "tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"},
 "logging":{"level":"error"},"storage":{"backend":"postgres","db_url":"postgres://postgres@127.0.0.1:5432/$pgdb?sslmode=disable"}}
JSON
  (cd "$dir/ref" && exec notary-server -config server-pg.json >server-pg.log 2>&1) & pids+=($!)
  for _ in $(seq 100); do curl -fsS --cacert "$ref_ca" "https://127.0.0.1:$pp/_notary_server/health" >/dev/null 2>&1 && break; sleep 0.1; done
  pgp=$("$bin/publish-load" "https://127.0.0.1:$pp" "$ref_ca" "$pubs" "$secs")
  echo "  notary-server 0.7.0 (PostgreSQL store): $pgp"
  python3 - "$tbp" "$pgp" <<'PY'
import sys
tb, ref = (float(a.split()[0]) for a in sys.argv[1:])
print(f"  ratio trustbridge(SQLite)/notary(PostgreSQL): {tb/ref:.2f}x")
PY
  # trustbridge-server on PostgreSQL too (its own database, created by the server), same
  # trustbridge-signer: the like-for-like deployment comparison.
  tbpgdb="${pgdb}_tb"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $tbpgdb" >/dev/null
  tpp=$(port)
  sed -e "s/127.0.0.1:$tp/127.0.0.1:$tpp/" \
      -e "s|\"storage\":{[^}]*}|\"storage\":{\"backend\":\"postgres\",\"db_url\":\"postgres://postgres@127.0.0.1:5432/$tbpgdb?sslmode=disable\"}|" \
      "$dir/tb/server.json" > "$dir/tb/server-pg.json"
  (cd "$dir/tb" && exec "$bin/trustbridge-server" --config server-pg.json >server-pg.log 2>&1) & pids+=($!)
  for _ in $(seq 100); do curl -fsS --cacert "$tb_ca" "https://127.0.0.1:$tpp/_notary_server/health" >/dev/null 2>&1 && break; sleep 0.1; done
  tbpgp=$("$bin/publish-load" "https://127.0.0.1:$tpp" "$tb_ca" "$pubs" "$secs")
  echo "  trustbridge-server (PostgreSQL store):  $tbpgp"
  python3 - "$tbpgp" "$pgp" <<'PY'
import sys
tb, ref = (float(a.split()[0]) for a in sys.argv[1:])
print(f"  ratio trustbridge/notary, both on PostgreSQL: {tb/ref:.2f}x")
PY
fi
