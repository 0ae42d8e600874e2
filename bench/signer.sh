#!/usr/bin/env bash
# Sign RPCs per second over mutual TLS: trustbridge-signer vs Go notary-signer 0.7.0 on the same
# box, same certificates, same load generator (tests/src/bin/sign-load.rs), one after the other.
# Prints both rates and the ratio. Not a test: numbers depend on the machine.
#
#   bench/signer.sh [SECONDS=10] [CONCURRENCY=32]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conc=${2:-32}
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then export CARGO_TARGET_DIR=/work/.cargo-target; fi
target=${CARGO_TARGET_DIR:-target}
command -v notary-signer >/dev/null || { echo "bench: notary-signer missing (apt-get install notary)" >&2; exit 1; }
cargo build --release -q -p trustbridge-signer -p trustbridge-certs -p trustbridge-e2e \
  --bin trustbridge-signer --bin trustbridge-certs --bin sign-load
bin=$target/release

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
"$bin/trustbridge-certs" "$dir/certs" >/dev/null
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
go_port=$(port); our_port=$(port)
cat > "$dir/go.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$go_port","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"},
 "logging":{"level":"error"},"storage":{"backend":"memory"}}
JSON
cat > "$dir/ours.json" <<JSON
{"server":{"grpc_addr":"127.0.0.1:$our_port","tls_cert_file":"certs/signer.crt","tls_key_file":"certs/signer.key","client_ca_file":"certs/root-ca.crt"},
 "logging":{"level":"error"},"storage":{"backend":"sqlite3","db_url":"keys.db","default_alias":"bench"}}
JSON
(cd "$dir" && exec notary-signer -config go.json >go.log 2>&1) & pids+=($!)
NOTARY_SIGNER_BENCH=bench-pass "$bin/trustbridge-signer" --config "$dir/ours.json" >"$dir/ours.log" 2>&1 & pids+=($!)
sleep 1.5

echo "Sign RPCs over mTLS, ECDSA P-256, ${secs}s, concurrency $conc, $(nproc) cores"
go=$("$bin/sign-load" "$go_port" "$dir/certs" "$secs" "$conc")
echo "  notary-signer 0.7.0 (memory store): $go"
ours=$("$bin/sign-load" "$our_port" "$dir/certs" "$secs" "$conc")
echo "  trustbridge-signer (SQLite store):  $ours"
python3 - "$go" "$ours" <<'PY'
import sys
g = float(sys.argv[1].split()[0]); o = float(sys.argv[2].split()[0])
print(f"  ratio trustbridge/notary: {o / g:.2f}x")
PY
