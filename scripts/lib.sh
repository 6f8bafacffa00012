#!/usr/bin/env bash
# shellcheck shell=bash
#
# Helpers sourced by scripts/*.sh. They install what is missing and run
# private, throw-away PostgreSQL / MariaDB / moto (S3) servers on free
# loopback ports, so tests never touch a system service or a fixed port.
#
#   source scripts/lib.sh
#   trap stop_all EXIT
#   start_postgres; start_mariadb; start_moto
#
# Every start_* function exports the connection settings (TRIBUTARY_TEST_*)
# and registers what it started; stop_all stops it and removes the temp dirs.
set -euo pipefail

TRIBUTARY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRIBUTARY_VENV="${TRIBUTARY_VENV:-$TRIBUTARY_ROOT/.tributary/venv}"
TRIBUTARY_RUN_DIR="${TRIBUTARY_RUN_DIR:-$TRIBUTARY_ROOT/.tributary/run}"
# Seconds wait_for polls before giving up.
TRIBUTARY_WAIT_SECONDS="${TRIBUTARY_WAIT_SECONDS:-30}"

# Registry of things to clean up, one "kind|pid|dir|extra|match" per entry.
# Kept in memory and, when TRIBUTARY_STATE_FILE is set, in that file too (so
# `scripts/services.sh stop` can stop servers started by another process).
_TRIB_ENTRIES=()
# Names of the variables the start_* functions exported (for env files).
TRIBUTARY_EXPORTS=()
_TRIB_APT_UPDATED=0

# Makes cargo available (rustup's env file when it is not on PATH) or stops with the fix.
require_cargo() {
  if ! command -v cargo >/dev/null 2>&1 && [[ -f $HOME/.cargo/env ]]; then
    # shellcheck source=/dev/null
    source "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found (install a Rust toolchain, e.g. from rustup.rs)"
}

# Stops everything started on exit; turns signals into a normal exit so the EXIT trap runs.
cleanup_on_exit() {
  trap stop_all EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

phase() { printf '\n==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Run a command as root (apt); sudo only as a fallback for non-root users.
_as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "root is needed to run: $*"
  fi
}

_export() {
  export "$1=$2"
  TRIBUTARY_EXPORTS+=("$1")
}

# Print a free TCP port on 127.0.0.1 (the kernel picks it: never a fixed port).
free_port() {
  command -v python3 >/dev/null 2>&1 || ensure_apt python3
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True if SPEC's check passes: an absolute path (glob allowed), a command
# name, or (no check given) the Debian package being installed.
_apt_have() {
  local pkg=$1 check=$2
  if [[ -z $check ]]; then
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'
  elif [[ $check == /* ]]; then
    compgen -G "$check" >/dev/null
  else
    command -v "$check" >/dev/null 2>&1
  fi
}

# ensure_apt PKG[:CHECK]... installs the packages whose CHECK (binary name or
# absolute path, default: dpkg status) is missing. apt-get update runs at most
# once per shell; nothing is installed when everything is present.
ensure_apt() {
  local spec pkg check missing=()
  for spec in "$@"; do
    pkg=${spec%%:*}
    check=""
    [[ $spec == *:* ]] && check=${spec#*:}
    _apt_have "$pkg" "$check" || missing+=("$pkg")
  done
  ((${#missing[@]} > 0)) || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and apt-get is not available; install them by hand"
  info "apt-get install ${missing[*]}"
  if [[ $_TRIB_APT_UPDATED -eq 0 ]]; then
    _as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _TRIB_APT_UPDATED=1
  fi
  # Server packages try to start their system service on install; a
  # temporary policy-rc.d stops that (we run private servers instead).
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [[ ! -e $policy ]]; then
    _as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    added_policy=1
  fi
  local rc=0
  _as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" || rc=$?
  if [[ $added_policy -eq 1 ]]; then _as_root rm -f "$policy"; fi
  return "$rc"
}

# wait_for [--pid PID] CMD... polls CMD until it succeeds. Gives up after
# TRIBUTARY_WAIT_SECONDS, or as soon as PID (the server being waited for) dies.
wait_for() {
  local pid=""
  if [[ ${1:-} == --pid ]]; then
    pid=$2
    shift 2
  fi
  local deadline=$((SECONDS + TRIBUTARY_WAIT_SECONDS))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}

# Print the end of a server log and fail.
_server_failed() {
  local name=$1 log=$2
  printf 'error: %s did not start; last lines of %s:\n' "$name" "$log" >&2
  tail -n 40 "$log" >&2 || true
  exit 1
}

# _register KIND PID DIR EXTRA MATCH: remember something stop_all must undo.
#   dir:  remove DIR;  proc: kill PID (if its command line contains MATCH);
#   pg:   pg_ctl stop the cluster in DIR/data with the pg_ctl in EXTRA.
_register() {
  local IFS='|'
  _TRIB_ENTRIES+=("$*")
  if [[ -n ${TRIBUTARY_STATE_FILE:-} ]]; then
    printf '%s\n' "$*" >>"$TRIBUTARY_STATE_FILE"
  fi
}

# _make_tmp VAR NAME [PARENT]: create a private temp dir, register it for
# removal and store its path in VAR (no $(...): registration must happen in
# this shell, not in a subshell).
_make_tmp() {
  local -n _out=$1
  local parent=${3:-$TRIBUTARY_RUN_DIR}
  mkdir -p "$parent"
  _out=$(mktemp -d "$parent/$2.XXXXXX")
  _register dir "" "$_out" "" ""
}

# Remove logs of runs older than three days so .tributary/run does not grow.
_prune_logs() {
  find "$TRIBUTARY_RUN_DIR" -maxdepth 1 -name '*.log' -mtime +3 -delete 2>/dev/null || true
}

_run_dir_init() {
  mkdir -p "$TRIBUTARY_RUN_DIR"
  TRIBUTARY_RUN_DIR=$(cd "$TRIBUTARY_RUN_DIR" && pwd)
  _prune_logs
}

# Unix socket paths are limited to ~107 bytes; deep checkouts get a /tmp dir.
_sock_dir() {
  local -n _sock=$1
  local dir=$2
  if ((${#dir} > 80)); then
    _make_tmp _sock tributary-sock /tmp
  else
    _sock=$dir
  fi
}

# ---------------------------------------------------------------- stopping

# True if PID is alive and (when MATCH is given) its command line contains
# MATCH, so a recycled PID never gets killed.
_pid_is() {
  local pid=$1 match=$2 cmdline
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ -z $match || ! -r /proc/$pid/cmdline ]] && return 0
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmdline == *"$match"* ]]
}

# TERM, give it 20 s to shut down cleanly, then KILL.
_kill_wait() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

_stop_entry() {
  local kind pid dir extra match ppid
  IFS='|' read -r kind pid dir extra match <<<"$1"
  case $kind in
    pg)
      if [[ -f $dir/data/postmaster.pid ]]; then
        ppid=$(head -n 1 "$dir/data/postmaster.pid")
        _pg_as "$extra/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
          { _pid_is "$ppid" "$dir" && _kill_wait "$ppid"; }
      fi
      ;;
    proc)
      if _pid_is "$pid" "$match"; then _kill_wait "$pid"; fi
      ;;
    dir)
      # Only ever delete the temp dirs _make_tmp created.
      if [[ $(basename -- "$dir") =~ ^(pg|mariadb|moto|tls|tributary-pg|tributary-sock)\.[A-Za-z0-9]{6}$ && -d $dir ]]; then
        rm -rf -- "$dir"
      fi
      ;;
  esac
}

# Stop everything registered, newest first (servers before their dirs).
stop_all() {
  local i
  for ((i = ${#_TRIB_ENTRIES[@]} - 1; i >= 0; i--)); do
    _stop_entry "${_TRIB_ENTRIES[i]}" || true
  done
  _TRIB_ENTRIES=()
}

# Load the registry written by another process (services.sh stop).
load_state() {
  local line
  [[ -f $1 ]] || return 0
  while IFS= read -r line; do
    [[ -n $line ]] && _TRIB_ENTRIES+=("$line")
  done <"$1"
}

# Write `export NAME=value` lines for everything the start_* functions set.
write_env_file() {
  local v
  {
    printf '# Generated by scripts/services.sh start; source it, then run cargo test.\n'
    for v in "${TRIBUTARY_EXPORTS[@]}"; do
      printf 'export %s=%q\n' "$v" "${!v}"
    done
  } >"$1"
}

# -------------------------------------------------------------------- TLS

# start_tls: a throw-away CA, a server certificate for localhost and 127.0.0.1 (not 127.0.0.2,
# the tests' wrong host) and a client certificate for user tributary_cert, made with openssl in
# the run directory. The servers serve TLS with them beside plain connections. Exports
# TRIBUTARY_TEST_TLS_CA (the CA bundle), TRIBUTARY_TEST_TLS_CLIENT_CERT and
# TRIBUTARY_TEST_TLS_CLIENT_KEY. Runs once per shell; start_postgres/start_mariadb call it.
start_tls() {
  [[ -z ${TRIBUTARY_TLS_DIR:-} ]] || return 0
  ensure_apt openssl:openssl
  _run_dir_init
  local dir
  _make_tmp dir tls
  chmod 755 "$dir"
  local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  {
    openssl req -x509 "${ec[@]}" -days 3650 -subj "/CN=tributary test CA" \
      -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
      -keyout "$dir/ca.key" -out "$dir/ca.pem"
    openssl req "${ec[@]}" -subj "/CN=localhost" -keyout "$dir/server.key" -out "$dir/server.csr"
    printf '%s\n' 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' 'basicConstraints=CA:FALSE' \
      'keyUsage=digitalSignature,keyEncipherment' 'extendedKeyUsage=serverAuth' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -extfile "$dir/server.ext" -out "$dir/server.crt"
    openssl req "${ec[@]}" -subj "/CN=tributary_cert" -keyout "$dir/client.key" -out "$dir/client.csr"
    printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=digitalSignature' \
      'extendedKeyUsage=clientAuth' >"$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -extfile "$dir/client.ext" -out "$dir/client.crt"
  } >"$dir/openssl.log" 2>&1 || _server_failed "openssl (test certificates)" "$dir/openssl.log"
  chmod 644 "$dir"/*.pem "$dir"/*.crt
  chmod 600 "$dir"/*.key
  TRIBUTARY_TLS_DIR=$dir
  info "TLS test CA $dir/ca.pem (server certificate for localhost and 127.0.0.1)"
  _export TRIBUTARY_TEST_TLS_CA "$dir/ca.pem"
  _export TRIBUTARY_TEST_TLS_CLIENT_CERT "$dir/client.crt"
  _export TRIBUTARY_TEST_TLS_CLIENT_KEY "$dir/client.key"
}

# -------------------------------------------------------------- PostgreSQL

# Newest /usr/lib/postgresql/<ver>/bin (Debian layout); override with
# TRIBUTARY_PG_BIN_DIR.
pg_bin_dir() {
  if [[ -n ${TRIBUTARY_PG_BIN_DIR:-} ]]; then
    printf '%s\n' "$TRIBUTARY_PG_BIN_DIR"
    return
  fi
  local d
  d=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 || true)
  [[ -n $d ]] || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
  dirname "$d"
}

ensure_postgres() {
  [[ -n ${TRIBUTARY_PG_BIN_DIR:-} ]] || ensure_apt 'postgresql:/usr/lib/postgresql/*/bin/initdb'
}

# initdb refuses to run as root, so root runs PostgreSQL as user postgres.
_pg_as() {
  if [[ $EUID -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# start_postgres: private cluster with logical decoding enabled, serving TLS (start_tls) beside
# plain connections, on 127.0.0.1 and 127.0.0.2. Exports TRIBUTARY_TEST_PG_URL (superuser
# postgres, trust), TRIBUTARY_TEST_PG_USER_URL (password user tributary with REPLICATION),
# TRIBUTARY_TEST_PG_TLS_URL (user tributary_tls, refused without TLS; add sslmode=...),
# TRIBUTARY_TEST_PG_CERT_URL (user tributary_cert, TLS client certificate only) and
# TRIBUTARY_TEST_PG_BIN.
start_postgres() {
  ensure_postgres
  start_tls
  _run_dir_init
  local bin dir sock port log
  bin=$(pg_bin_dir)
  if [[ $EUID -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --user-group --no-create-home postgres
  fi
  _make_tmp dir pg
  log="$dir.log"
  if [[ $EUID -eq 0 ]]; then
    chown postgres: "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      # The checkout is not reachable by user postgres (e.g. under /root).
      _make_tmp dir tributary-pg /tmp
      chown postgres: "$dir"
      log="$dir/server.log"
    fi
  fi
  touch "$log"
  [[ $EUID -ne 0 ]] || chown postgres: "$log"
  _sock_dir sock "$dir"
  [[ $EUID -ne 0 ]] || chown postgres: "$sock"
  port=$(free_port)
  info "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (log: $log)"

  # --no-locale/UTF8 keep collation and output deterministic across machines.
  _pg_as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync >>"$log" 2>&1 ||
    _server_failed "initdb" "$log"
  cat >>"$dir/data/postgresql.conf" <<EOF

# --- tributary test cluster ---
listen_addresses = '127.0.0.1,127.0.0.2'
port = $port
unix_socket_directories = '$sock'
wal_level = logical
# CDC tests leave their slots behind (a slot outlives its task); the suite has many.
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
# Throw-away data: durability is not worth the time.
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_timezone = 'UTC'
ssl = on
ssl_cert_file = 'server.crt'
ssl_key_file = 'server.key'
ssl_ca_file = 'ca.pem'
EOF
  cp "$TRIBUTARY_TLS_DIR/server.crt" "$TRIBUTARY_TLS_DIR/server.key" "$TRIBUTARY_TLS_DIR/ca.pem" "$dir/data/"
  chmod 600 "$dir/data/server.key"
  # postgres is trusted on loopback; everyone else (tributary) uses SCRAM; tributary_tls only
  # over TLS, tributary_cert only with its client certificate.
  cat >"$dir/data/pg_hba.conf" <<'EOF'
# TYPE    DATABASE     USER            ADDRESS        METHOD
local     all          all                            trust
local     replication  all                            trust
host      all          postgres        127.0.0.0/8    trust
host      replication  postgres        127.0.0.0/8    trust
hostnossl all          tributary_tls   127.0.0.0/8    reject
hostnossl replication  tributary_tls   127.0.0.0/8    reject
hostssl   all          tributary_cert  127.0.0.0/8    cert
hostssl   replication  tributary_cert  127.0.0.0/8    cert
host      all          all             127.0.0.0/8    scram-sha-256
host      replication  all             127.0.0.0/8    scram-sha-256
EOF
  [[ $EUID -ne 0 ]] || chown postgres: "$dir/data/postgresql.conf" "$dir/data/pg_hba.conf" \
    "$dir/data/server.crt" "$dir/data/server.key" "$dir/data/ca.pem"

  _register pg "" "$dir" "$bin" ""
  _pg_as "$bin/pg_ctl" -D "$dir/data" -l "$log" -w -t "$TRIBUTARY_WAIT_SECONDS" start >/dev/null 2>&1 ||
    _server_failed "PostgreSQL" "$log"
  wait_for "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres || _server_failed "PostgreSQL" "$log"

  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null <<'SQL'
CREATE ROLE tributary LOGIN PASSWORD 'tributary' REPLICATION CREATEDB;
GRANT CREATE ON DATABASE postgres TO tributary;
GRANT CREATE ON SCHEMA public TO tributary;
CREATE ROLE tributary_tls LOGIN PASSWORD 'tributary' REPLICATION SUPERUSER;
CREATE ROLE tributary_cert LOGIN REPLICATION SUPERUSER;
SQL
  _export TRIBUTARY_TEST_PG_URL "postgres://postgres@127.0.0.1:$port/postgres"
  _export TRIBUTARY_TEST_PG_USER_URL "postgres://tributary:tributary@127.0.0.1:$port/postgres"
  _export TRIBUTARY_TEST_PG_TLS_URL "postgres://tributary_tls:tributary@localhost:$port/postgres"
  _export TRIBUTARY_TEST_PG_CERT_URL "postgres://tributary_cert@localhost:$port/postgres"
  _export TRIBUTARY_TEST_PG_BIN "$bin"
}

# ----------------------------------------------------------------- MariaDB

_mariadbd_path() {
  local p
  for p in "$(command -v mariadbd 2>/dev/null || true)" /usr/sbin/mariadbd; do
    [[ -n $p && -x $p ]] && { printf '%s\n' "$p"; return 0; }
  done
  return 1
}

ensure_mariadb() {
  _mariadbd_path >/dev/null || ensure_apt mariadb-server
  ensure_apt mariadb-client:mariadb
}

# start_mariadb: private server with a full-row-image binlog, serving TLS (start_tls) beside
# plain connections, on 127.0.0.1 and 127.0.0.2. Exports TRIBUTARY_TEST_MYSQL_URL (root, no
# password), TRIBUTARY_TEST_MYSQL_USER_URL (tributary/tributary, all privileges incl.
# replication) and TRIBUTARY_TEST_MYSQL_TLS_URL (tributary_tls, REQUIRE SSL).
start_mariadb() {
  ensure_mariadb
  start_tls
  _run_dir_init
  local mariadbd dir sock port log pid version as_root=()
  mariadbd=$(_mariadbd_path)
  [[ $EUID -ne 0 ]] || as_root=(--user=root)
  _make_tmp dir mariadb
  log="$dir.log"
  _sock_dir sock "$dir"
  mkdir -p "$dir/data" "$dir/binlog" "$dir/tmp"
  port=$(free_port)
  version=$("$mariadbd" --version | awk '{print $3}')
  info "MariaDB ${version%%-*} on 127.0.0.1:$port (log: $log)"

  mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
    --skip-test-db "${as_root[@]}" >>"$log" 2>&1 || _server_failed "mariadb-install-db" "$log"

  # utf8mb4 and UTC mirror a modern MySQL 8 source instead of latin1/local time.
  "$mariadbd" --no-defaults --datadir="$dir/data" --port="$port" --bind-address=127.0.0.1,127.0.0.2 \
    --ssl-ca="$TRIBUTARY_TLS_DIR/ca.pem" --ssl-cert="$TRIBUTARY_TLS_DIR/server.crt" \
    --ssl-key="$TRIBUTARY_TLS_DIR/server.key" \
    --socket="$sock/mysqld.sock" --pid-file="$dir/mariadbd.pid" --tmpdir="$dir/tmp" \
    --log-bin="$dir/binlog/mysql-bin" --server-id=1 --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --default-time-zone=+00:00 --max-connections=200 \
    --innodb-flush-log-at-trx-commit=2 --sync-binlog=0 "${as_root[@]}" >>"$log" 2>&1 &
  pid=$!
  _register proc "$pid" "" "" "$dir/data"
  wait_for --pid "$pid" mariadb-admin --no-defaults --protocol=TCP -h 127.0.0.1 -P "$port" -u root ping ||
    _server_failed "MariaDB" "$log"

  mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$port" -u root <<'SQL' || _server_failed "MariaDB user setup" "$log"
CREATE USER 'tributary'@'%' IDENTIFIED BY 'tributary';
GRANT ALL PRIVILEGES ON *.* TO 'tributary'@'%';
CREATE USER 'tributary_tls'@'%' IDENTIFIED BY 'tributary' REQUIRE SSL;
GRANT ALL PRIVILEGES ON *.* TO 'tributary_tls'@'%';
SQL
  _export TRIBUTARY_TEST_MYSQL_URL "mysql://root@127.0.0.1:$port/"
  _export TRIBUTARY_TEST_MYSQL_USER_URL "mysql://tributary:tributary@127.0.0.1:$port/"
  _export TRIBUTARY_TEST_MYSQL_TLS_URL "mysql://tributary_tls:tributary@127.0.0.1:$port/"
}

# -------------------------------------------------------------------- moto

# ensure_moto: venv in .tributary/venv with moto's S3 server, plus boto3,
# pyarrow and duckdb (independent Parquet readers for the tests). Exports
# TRIBUTARY_TEST_PYTHON.
ensure_moto() {
  local py="$TRIBUTARY_VENV/bin/python"
  if [[ -x $TRIBUTARY_VENV/bin/moto_server ]] && "$py" -c 'import moto, boto3, pyarrow, duckdb' 2>/dev/null; then
    _export TRIBUTARY_TEST_PYTHON "$py"
    return 0
  fi
  if [[ ! -x $py ]]; then
    # Prefer Debian's python3 (python3-venv provides its ensurepip).
    local base=/usr/bin/python3
    [[ -x $base ]] || { ensure_apt python3; base=$(command -v python3); }
    info "creating $TRIBUTARY_VENV"
    if ! "$base" -m venv "$TRIBUTARY_VENV" >/dev/null 2>&1; then
      rm -rf -- "$TRIBUTARY_VENV"
      ensure_apt python3-venv
      "$base" -m venv "$TRIBUTARY_VENV"
    fi
  fi
  info "pip install moto[server] boto3 pyarrow duckdb"
  local pip=("$py" -m pip install --disable-pip-version-check -q)
  if ! "${pip[@]}" 'moto[server]==5.2.5' boto3 pyarrow duckdb; then
    # The pinned moto may be unavailable from this index; take what there is.
    info "pinned moto 5.2.5 unavailable, installing unpinned"
    "${pip[@]}" 'moto[server]' boto3 pyarrow duckdb
  fi
  _export TRIBUTARY_TEST_PYTHON "$py"
}

# start_moto: moto's S3 server. Exports TRIBUTARY_TEST_S3_ENDPOINT and
# dummy AWS credentials/region (moto accepts any).
start_moto() {
  ensure_moto
  ensure_apt curl:curl
  _run_dir_init
  local dir port log pid
  _make_tmp dir moto
  log="$dir.log"
  port=$(free_port)
  info "moto S3 on 127.0.0.1:$port (log: $log)"
  (cd "$dir" && exec "$TRIBUTARY_VENV/bin/moto_server" -H 127.0.0.1 -p "$port") >>"$log" 2>&1 &
  pid=$!
  _register proc "$pid" "" "" "moto_server -H 127.0.0.1 -p $port"
  wait_for --pid "$pid" curl -fsS -o /dev/null "http://127.0.0.1:$port/" || _server_failed "moto" "$log"

  _export TRIBUTARY_TEST_S3_ENDPOINT "http://127.0.0.1:$port"
  _export AWS_ACCESS_KEY_ID test
  _export AWS_SECRET_ACCESS_KEY test
  _export AWS_REGION us-east-1
  _export AWS_DEFAULT_REGION us-east-1
  # No instance-metadata probing (slow timeouts off EC2).
  _export AWS_EC2_METADATA_DISABLED true
}
