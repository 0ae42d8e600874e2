#!/usr/bin/env bash
# The README's test command: installs what the tests need (as root), proves the build is
# ring-only, and runs every test of the workspace, real peers included.
#
#   scripts/test.sh
#
# Needs the workplace's shared/ (fixtures, reference peers): ../shared beside the checkout,
# /work/shared, or TRUSTBRIDGE_SHARED.
set -euo pipefail
cd "$(dirname "$0")/.."

peers=(notary notary-server notary-signer docker-registry skopeo protoc wrk curl tmux chromium psql mariadb mariadb-install-db softhsm2-util pkcs11-tool)
missing=()
for b in "${peers[@]}"; do command -v "$b" >/dev/null 2>&1 || missing+=("$b"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: missing ${missing[*]}; run as root so it can apt-get install them" >&2
    exit 1
  fi
  echo "test.sh: installing peers (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq notary docker-registry skopeo protobuf-compiler wrk curl tmux chromium \
    postgresql-client mariadb-client mariadb-server softhsm2 opensc >/dev/null
fi
for b in "${peers[@]}"; do
  command -v "$b" >/dev/null 2>&1 || { echo "test.sh: peer $b still missing after install" >&2; exit 1; }
done

# The real cosign CLI (3.1.1 from sid, 2.5.0 from trixie) and the real notation CLI (1.3.2)
# with oras (sid), which the release lacks: fetched with the workplace's debian-extra.sh (apt's
# own client, a private apt state) under /usr/local/lib/peers/<suite>/ (TRUSTBRIDGE_PEERS),
# where the bridge tests look for them.
peerdir=${TRUSTBRIDGE_PEERS:-/usr/local/lib/peers}
export TRUSTBRIDGE_PEERS=$peerdir
for want in sid:cosign trixie:cosign sid:notation sid:oras; do
  suite=${want%%:*}; tool=${want#*:}
  if [ ! -x "$peerdir/$suite/$tool" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "test.sh: $peerdir/$suite/$tool is missing; run as root so debian-extra.sh can fetch it" >&2
      exit 1
    fi
    extra=""
    for d in ../shared /work/shared "${TRUSTBRIDGE_SHARED:-}"; do
      if [ -n "$d" ] && [ -f "$d/peers/debian-extra.sh" ]; then extra="$d/peers/debian-extra.sh"; break; fi
    done
    [ -n "$extra" ] || { echo "test.sh: shared/peers/debian-extra.sh not found (needed for $tool)" >&2; exit 1; }
    bash "$extra" "$peerdir/$suite" "$suite" "$tool"
  fi
  "$peerdir/$suite/$tool" version >/dev/null 2>&1 || { echo "test.sh: $peerdir/$suite/$tool does not run" >&2; exit 1; }
done

# A registry with the OCI 1.1 referrers API, for the bridge's referrers path (Debian's
# docker-registry 2.8 has none; zot and distribution 3 are not packaged, and crane's
# `registry serve` keeps the API switched off): ferro-oci-server from crates.io, built once
# into $TRUSTBRIDGE_PEERS/crates.
ferro=$peerdir/crates/bin/ferro-oci-server
if [ ! -x "$ferro" ]; then
  mkdir -p "$peerdir/crates" 2>/dev/null || { echo "test.sh: cannot create $peerdir/crates (run as root)" >&2; exit 1; }
  cargo install --quiet --locked --version 1.0.0 --root "$peerdir/crates" ferro-oci-server
fi
[ -x "$ferro" ] || { echo "test.sh: $ferro is missing" >&2; exit 1; }

# docker trust must reach the server by a name that is not loopback-looking, so TLS is checked
# for real: map notary-server (a SAN of the dev server certificate) to 127.0.0.1.
if ! getent hosts notary-server >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test.sh: add '127.0.0.1 notary-server' to /etc/hosts (or run as root)" >&2
    exit 1
  fi
  echo "127.0.0.1 notary-server" >> /etc/hosts
fi

# The workplace's shared material (reference peers, golden fixtures): beside the checkout, or
# the workplace's own copy when the checkout was cloned elsewhere.
if [ -z "${TRUSTBRIDGE_SHARED:-}" ]; then
  for d in ../shared /work/shared; do
    if [ -d "$d/fixtures" ]; then export TRUSTBRIDGE_SHARED=$(cd "$d" && pwd); break; fi
  done
fi
if [ -z "${TRUSTBRIDGE_SHARED:-}" ]; then
  echo "test.sh: shared material not found (../shared or /work/shared): set TRUSTBRIDGE_SHARED" >&2
  exit 1
fi

# Reuse a build cache outside the clone when one exists.
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /work/.cargo-target ]; then
  export CARGO_TARGET_DIR=/work/.cargo-target
fi

# One crypto provider: no aws-lc-rs, no OpenSSL in any product crate.
for bad in aws-lc-rs openssl-sys; do
  if cargo tree --workspace --exclude trustbridge-sigstore-tests -e normal -i "$bad" >/dev/null 2>&1; then
    echo "test.sh: $bad is in the dependency graph (ring only, see shared/reference/dependencies.md)" >&2
    cargo tree --workspace --exclude trustbridge-sigstore-tests -e normal -i "$bad" >&2
    exit 1
  fi
done

cargo fmt --all -- --check
python3 scripts/check-import-cycles.py
# Lints: every product crate, its tests and the fuzz targets, warnings as errors (the lints
# and their reasons are [workspace.lints] in Cargo.toml). sigstore-tests is linted in its own
# step below, for the same aws-lc-rs reason it is built apart.
cargo clippy --workspace --exclude trustbridge-sigstore-tests --all-targets -- -D warnings
# Product crates and their tests (the default members). cargo-nextest (on this kind of
# machine) runs the test binaries side by side: most e2e tests wait on real processes, not
# on the two cores (the crates have no doc tests). Plain cargo test where it is missing.
status=0
results=$(mktemp)
trap 'rm -f "$results"' EXIT
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --test-threads "${TRUSTBRIDGE_TEST_THREADS:-4}" 2>&1 | tee -a "$results" || status=$?
else
  cargo test --no-fail-fast 2>&1 | tee -a "$results" || status=$?
fi
# Fuzz targets (fuzz/, libFuzzer): each runs briefly over its committed seed corpus (real
# notary 0.7.0 metadata, wire captures and key files, and every input that once crashed it).
# This build shares the test build's dependencies and has no coverage instrumentation, so it
# replays the corpus and mutates blindly; coverage-guided runs are `cargo fuzz run TARGET`
# (README, "Fuzzing").
cargo build -q -p trustbridge-fuzz --bins
fuzz_bin=${CARGO_TARGET_DIR:-target}/debug
for t in $(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^trustbridge-fuzz$'); do
  work=$(mktemp -d)
  if ! "$fuzz_bin/$t" "$work" "fuzz/corpus/$t" -max_total_time="${TRUSTBRIDGE_FUZZ_SECONDS:-5}" \
      -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$work/" >"$work/log" 2>&1; then
    echo "test.sh: fuzz target $t failed:" >&2
    tail -30 "$work/log" >&2
    echo "fuzz target $t: failed" >> "$results"
    status=1
  else
    echo "fuzz $t: $(grep -Eo 'Done [0-9]+ runs' "$work/log" || echo ran)"
    echo "fuzz target $t: passed" >> "$results"
  fi
  rm -rf "$work"
done
# sigstore-rs, the independent Cosign verifier, in a build of its own: it brings aws-lc-rs,
# which must not leak into the product build through feature unification. sigstore-js
# (npm @sigstore/verify, pinned by sigstore-tests/js/package-lock.json) verifies the v3 bundles.
for b in node npm; do
  command -v "$b" >/dev/null 2>&1 || { echo "test.sh: $b is missing (Node.js >= 20.17 runs sigstore-js)" >&2; exit 1; }
done
npm ci --prefix sigstore-tests/js --no-audit --no-fund --loglevel=error
cargo clippy -p trustbridge-sigstore-tests --all-targets -- -D warnings
cargo test -p trustbridge-sigstore-tests --no-fail-fast 2>&1 | tee -a "$results" || status=$?
# One closing line over every runner above: nextest's summary, cargo test's results, the
# fuzz targets.
awk '
  /tests run: [0-9]+ passed/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  /^test result:/ { p += $4; f += $6 }
  /^fuzz target .*: passed$/ { p++ }
  /^fuzz target .*: failed$/ { f++ }
  END { printf "tests: %d passed, %d failed\n", p, f }
' "$results"
exit $status
