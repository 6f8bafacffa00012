#!/usr/bin/env bash
# THE test command: installs what is missing, starts private PostgreSQL,
# MariaDB and moto (S3) servers on free loopback ports, builds the release
# binary and runs every test once against them.
#
#   bash scripts/test.sh [extra args for the test harness, e.g. a name filter]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

phase "Checking prerequisites (apt: postgresql, mariadb-server, ca-certificates, curl, openssl; moto venv)"
ensure_apt ca-certificates:/etc/ssl/certs/ca-certificates.crt curl:curl python3:python3 openssl:openssl \
  'postgresql:/usr/lib/postgresql/*/bin/initdb' mariadb-server mariadb-client:mariadb
ensure_moto
require_cargo

cleanup_on_exit

phase "Starting PostgreSQL"
start_postgres
phase "Starting MariaDB"
start_mariadb
phase "Starting moto (S3)"
start_moto

# Tests call `python3` (pyarrow/duckdb) from the venv as independent readers.
export PATH="$TRIBUTARY_VENV/bin:$PATH"
export TRIBUTARY_BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/tributary"

phase "Building (cargo build --release --locked)"
cargo build --release --locked

phase "Testing (cargo test --release --locked -- --test-threads=4)"
# Release profile: the integration tests reuse the binary just built.
log="$TRIBUTARY_RUN_DIR/cargo-test.log"
set +e
cargo test --release --locked -- --test-threads=4 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line with the totals of every test binary (unit and integration).
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$log")
if [[ $status -eq 0 ]]; then phase "Tests passed"; else phase "Tests FAILED (exit $status)"; fi
echo "$passed passed, $failed failed"
exit "$status"
