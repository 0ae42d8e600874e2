#!/usr/bin/env bash
# The migration control room at scale: 100k GUNs in the status tables (SQLite, then
# PostgreSQL on loopback), and what a dashboard asks for — a page of GUN summaries (first,
# deep in the middle, a prefix search, not-ready only), the overview, and the HTML page —
# against nginx serving the same bytes from a file, in one run. Not a test: it prints numbers
# and ratios. Target (issue 14): a page of the status JSON in under 50 ms at 100k GUNs.
#
#   bench/control.sh [GUNS=100000] [SECONDS=5]      (as root the first time: installs nginx-light)
set -euo pipefail
cd "$(dirname "$0")/.."
guns=${1:-100000}
secs=${2:-5}
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then export CARGO_TARGET_DIR=/work/.cargo-target; fi
target=${CARGO_TARGET_DIR:-target}
for b in wrk curl python3 psql; do
  command -v "$b" >/dev/null || { echo "bench: $b missing" >&2; exit 1; }
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
pgdb=tb_control_$$
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $pgdb WITH (FORCE)" >/dev/null 2>&1 || true
  [ -f "$dir/nginx/nginx.pid" ] && kill "$(cat "$dir/nginx/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

"$bin/trustbridge-certs" "$dir/certs" >/dev/null
ca=$dir/certs/root-ca.crt
sp=$(port)
cat > "$dir/signer.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$sp","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"keys.db","default_alias":"bench"}}
JSON
NOTARY_SIGNER_BENCH=bench "$bin/trustbridge-signer" --config "$dir/signer.json" >"$dir/signer.log" 2>&1 & pids+=($!)

server_config() {  # FILE PORT STORAGE-JSON
  cat > "$1" <<JSON
{"server":{"http_addr":"127.0.0.1:$2","tls_cert_file":"certs/server.crt","tls_key_file":"certs/server.key"},
 "trust_service":{"type":"remote","hostname":"127.0.0.1","port":"$sp","key_algorithm":"ecdsa","tls_ca_file":"certs/root-ca.crt",
   "tls_client_cert":"certs/signer-client.crt","tls_client_key":"certs/signer-client.key"},
 "logging":{"level":"error"},"storage":$3}
JSON
}
start() {  # CONFIG PORT -> pid in $server_pid
  "$bin/trustbridge-server" --config "$1" >>"$dir/server.log" 2>&1 & server_pid=$!; pids+=($server_pid)
  for _ in $(seq 200); do curl -fsS --cacert "$ca" "https://127.0.0.1:$2/_notary_server/health" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "bench: server did not start" >&2; cat "$dir/server.log" >&2; exit 1
}

# The rows: GUN i has 1-5 tags, some not verified, some drifted, some read lately, and its
# targets role expiring some day in the next 3 years.
rows_sql() {  # the SELECT that makes the summary rows, with $1 = the series table
  cat <<SQL
SELECT 'bench.example/team' || (i % 100) || '/app' || i, 1 + i % 5, 1 + i % 5, (1 + i % 5) - (CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END),
  CASE WHEN i % 11 = 0 THEN 1 ELSE 0 END, 0, CASE WHEN i % 13 = 0 THEN 1 ELSE 0 END,
  $now + (i % 1095) * 86400000000000, CASE WHEN i % 3 = 0 THEN $today ELSE NULL END, $now FROM $1
SQL
}
now=$(python3 -c 'import time; print(time.time_ns())')
today=$(( now / 1000000000 / 86400 ))

measure() {  # LABEL PORT
  local label=$1 p=$2 base="https://127.0.0.1:$2"
  mkdir -p "$dir/nginx/html"
  local paths=(
    "first page|/_trustbridge/v1/migration/guns?limit=50"
    "deep page|/_trustbridge/v1/migration/guns?limit=50&after=bench.example%2Fteam50%2Fapp50000"
    "prefix search|/_trustbridge/v1/migration/guns?limit=50&prefix=bench.example%2Fteam42%2Fapp4"
    "not ready only|/_trustbridge/v1/migration/guns?limit=50&ready=false"
    "overview|/_trustbridge/v1/migration"
    "HTML page|/_trustbridge/"
  )
  printf '\n%s, %s GUNs\n%-16s %12s %12s %12s %8s\n' "$label" "$guns" "request" "ms/request" "req/s" "nginx req/s" "ratio"
  local i=0
  for entry in "${paths[@]}"; do
    local name=${entry%%|*} path=${entry#*|}
    i=$((i + 1))
    curl -fsS --cacert "$ca" "$base$path" -o "$dir/nginx/html/f$i" || { echo "bench: $path failed" >&2; exit 1; }
    local ours theirs ms
    ours=$(wrk -t1 -c1 -d"${secs}s" "$base$path" | awk '/Requests\/sec/ {print $2}')
    theirs=$(wrk -t1 -c1 -d"${secs}s" "https://127.0.0.1:$ngx/f$i" | awk '/Requests\/sec/ {print $2}')
    ms=$(python3 -c "print(f'{1000/float($ours):.2f}')")
    printf '%-16s %12s %12s %12s %7s%%\n' "$name" "$ms" "$ours" "$theirs" "$(python3 -c "print(round(100*float($ours)/float($theirs)))")"
  done
}

# nginx with the same certificate, serving the captured responses.
ngx=$(port)
mkdir -p "$dir/nginx/html"
cat > "$dir/nginx/nginx.conf" <<CONF
daemon on; pid $dir/nginx/nginx.pid; error_log $dir/nginx/error.log; worker_processes 1;
events { worker_connections 256; }
http { access_log off; default_type application/json;
  server { listen 127.0.0.1:$ngx ssl; ssl_certificate $dir/certs/server.crt; ssl_certificate_key $dir/certs/server.key;
    root $dir/nginx/html; } }
CONF
nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx"

# SQLite: start once (schema), fill the tables, start again.
tp=$(port)
server_config "$dir/sqlite.json" "$tp" '{"backend":"sqlite3","db_url":"server.db"}'
start "$dir/sqlite.json" "$tp"; kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
python3 - "$dir/server.db" "$guns" <<PY
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
series = f"(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s)"
db.execute("INSERT INTO migration_guns (gun, tags, mirrored, verified, queued, dead, drift, expires, last_read, updated_at) " + """$(rows_sql '$SERIES')""".replace("\$SERIES", series))
db.execute("INSERT INTO trust_roles (gun, role, expires) SELECT gun, 'targets', expires FROM migration_guns")
db.execute("DELETE FROM migration_totals")  # summed again from the rows at the next start
db.commit()
PY
start "$dir/sqlite.json" "$tp"
measure "SQLite" "$tp"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true

# PostgreSQL on loopback.
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $pgdb" >/dev/null
tp=$(port)
server_config "$dir/pg.json" "$tp" "{\"backend\":\"postgres\",\"db_url\":\"postgres://postgres@127.0.0.1:5432/$pgdb?sslmode=disable\"}"
start "$dir/pg.json" "$tp"; kill "$server_pid"; wait "$server_pid" 2>/dev/null || true
psql -h 127.0.0.1 -U postgres -d "$pgdb" -qc "INSERT INTO migration_guns (gun, tags, mirrored, verified, queued, dead, drift, expires, last_read, updated_at) $(rows_sql "generate_series(1, $guns) AS s(i)")" >/dev/null
psql -h 127.0.0.1 -U postgres -d "$pgdb" -qc "INSERT INTO trust_roles (gun, role, expires) SELECT gun, 'targets', expires FROM migration_guns; DELETE FROM migration_totals; ANALYZE" >/dev/null
start "$dir/pg.json" "$tp"
measure "PostgreSQL" "$tp"
echo
echo "target: a page of the status JSON in under 50 ms at 100k GUNs (ms/request above, one client)"
