#!/usr/bin/env bash
# Long-running PostgreSQL, MariaDB and moto for interactive development:
#
#   scripts/services.sh start     # then: source .tributary/run/env.sh
#   cargo test ...
#   scripts/services.sh stop
#
# `status` lists what is registered. The servers are the same private,
# free-port servers scripts/test.sh uses; their registry lives in
# .tributary/run/services.state so `stop` works from any shell.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

state_file="$TRIBUTARY_RUN_DIR/services.state"
env_file="$TRIBUTARY_RUN_DIR/env.sh"

any_alive() {
  local line kind pid dir extra match
  [[ -f $state_file ]] || return 1
  while IFS='|' read -r kind pid dir extra match; do
    case $kind in
      pg) [[ -f $dir/data/postmaster.pid ]] && return 0 ;;
      proc) _pid_is "$pid" "$match" && return 0 ;;
    esac
  done <"$state_file"
  return 1
}

cmd_start() {
  if any_alive; then
    die "services already running (see $env_file); run: scripts/services.sh stop"
  fi
  # Leftovers of a crashed run: clean what can be cleaned, then start fresh.
  load_state "$state_file"
  stop_all
  mkdir -p "$TRIBUTARY_RUN_DIR"
  rm -f "$env_file"
  : >"$state_file"
  export TRIBUTARY_STATE_FILE="$state_file"

  # If any server fails to start, stop the ones that did.
  started_ok=0
  trap '[[ $started_ok -eq 1 ]] || { stop_all; rm -f "$state_file"; }' EXIT
  phase "Starting PostgreSQL"
  start_postgres
  phase "Starting MariaDB"
  start_mariadb
  phase "Starting moto (S3)"
  start_moto
  write_env_file "$env_file"
  started_ok=1

  phase "Services running"
  sed -n 's/^export /    /p' "$env_file"
  printf '\nLoad them with:  source %s\nStop them with:  scripts/services.sh stop\n' \
    "${env_file#"$PWD"/}"
}

cmd_stop() {
  if [[ ! -f $state_file ]]; then
    info "nothing to stop"
    return 0
  fi
  phase "Stopping services"
  load_state "$state_file"
  stop_all
  rm -f "$state_file" "$env_file"
  info "stopped"
}

cmd_status() {
  local kind pid dir extra match
  if [[ ! -f $state_file ]]; then
    info "not running"
    return 0
  fi
  while IFS='|' read -r kind pid dir extra match; do
    case $kind in
      pg)
        if [[ -f $dir/data/postmaster.pid ]]; then info "postgres  running  $dir"; else info "postgres  stopped  $dir"; fi
        ;;
      proc)
        if _pid_is "$pid" "$match"; then info "pid $pid  running  $match"; else info "pid $pid  stopped  $match"; fi
        ;;
    esac
  done <"$state_file"
  [[ ! -f $env_file ]] || info "env file: $env_file"
}

case ${1:-} in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    printf 'usage: %s start|stop|status\n' "$0" >&2
    exit 2
    ;;
esac
