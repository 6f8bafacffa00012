#!/usr/bin/env bash
# Full-load benchmark (skeleton): a private PostgreSQL with a posts-shaped
# table of BENCH_ROWS rows (default 2,000,000), then
#   (a) raw `\copy bench.posts to /dev/null` with psql (the floor), and
#   (b) `tributary run` to a local folder, as Parquet and as CSV,
# each best of BENCH_RUNS (default 3) by wall time, with peak RSS from
# /usr/bin/time -v. Targets: <= 1.3x raw COPY and <= 150 MB peak RSS.
#
# Then the change-capture part (scripts/bench-cdc.sh): a 1,000,000-row UPDATE read by
# pg_recvlogical and by `cdc` tasks with 32 MB, 64 MB and 1 GB files (>= 0.9x throughput,
# <= 150 MB each), and commit→visible
# latency at 10,000 changes/s (p99 <= 1.5 s). Then the MySQL/MariaDB part (scripts/bench-mysql.sh):
# full load vs `mariadb --quick`, binlog CDC vs `mariadb-binlog`.
# Then segmented loads (scripts/bench-segments.sh): 1, 2 and 4 parallel-load segments, and a
# resume after kill -9 at 4 of 5 segments.
# BENCH_ONLY=full-load, cdc, segments or mysql runs one part.
#
#   bash scripts/bench.sh            # BENCH_ROWS=200000 bash scripts/bench.sh for a quick run
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

rows=${BENCH_ROWS:-2000000}
runs=${BENCH_RUNS:-3}
target_ratio=1.3
target_rss_mb=150
root=$PWD
bench_dir="$root/.tributary/bench"
bin="${CARGO_TARGET_DIR:-$root/target}/release/tributary"

only=${BENCH_ONLY:-all}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
phase "Checking prerequisites (apt: postgresql, time; venv with pyarrow)"
ensure_apt python3:python3 'postgresql:/usr/lib/postgresql/*/bin/initdb' time:/usr/bin/time
ensure_moto

cleanup_on_exit

mkdir -p "$bench_dir"
phase "Building (cargo build --release --locked)"
if [[ ${BENCH_SKIP_BUILD:-0} == 1 ]]; then
  info "skipped (BENCH_SKIP_BUILD=1)"
else
  require_cargo
  cargo build --release --locked
fi

report="$bench_dir/results-$(date +%Y%m%d-%H%M%S).txt"
if [[ $only == mysql ]]; then
  # shellcheck source=scripts/bench-mysql.sh
  source scripts/bench-mysql.sh
  info "saved to ${report#"$root"/}"
  exit 0
fi

phase "Starting PostgreSQL"
start_postgres
# The test server offers TLS; libpq tools (the baselines) and tributary both run without it.
export PGSSLMODE=disable
psql=("$TRIBUTARY_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$TRIBUTARY_TEST_PG_URL")

phase "Creating bench.posts with $rows rows"
# Shaped like the walkthrough's posts: numeric(11,0) ids/counts, a 32-192 byte
# body, DATETIME(3)-like timestamps, tags/title with commas and quotes, plus a
# boolean and a double so every encoder path gets some work.
"${psql[@]}" -v rows="$rows" <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.posts (
  id                 bigint PRIMARY KEY,
  post_type_id       numeric(11,0),
  accepted_answer_id numeric(11,0),
  answer_count       numeric(11,0),
  owner_user_id      numeric(11,0),
  score              numeric(11,0),
  body               text,
  creation_date      timestamp(3),
  last_activity_date timestamp(3),
  tags               varchar(150),
  title              varchar(250),
  is_closed          boolean,
  hotness            double precision
);
INSERT INTO bench.posts
SELECT g,
       1 + g % 3,
       CASE WHEN g % 3 = 0 THEN NULL ELSE (g * 7) % 100000000 END,
       g % 17,
       g % 500000,
       (g % 2001) - 1000,
       left(repeat(md5(g::text), 6), 32 + (g % 161)),
       timestamp '2008-07-31 21:42:52.667' + g * interval '7.123 seconds',
       timestamp '2008-07-31 21:42:52.667' + g * interval '9.321 seconds',
       '<c#>,<"sql">,<tag' || (g % 1000) || '>',
       'How do I parse "CSV, with quotes" #' || g,
       g % 10 = 0,
       g / 7.0::float8
FROM generate_series(1, :rows) AS g;
VACUUM ANALYZE bench.posts;
SQL
info "table size: $("${psql[@]}" -At -c "SELECT pg_size_pretty(pg_total_relation_size('bench.posts'))")"


# The transformation rules of the "+rules" variants: one add-column expression, one column
# rename, one removed column (the issue's target: <= 1.3x the same load without rules).
rules=',{"rule-type":"transformation","rule-id":"2","rule-name":"2","rule-target":"column","object-locator":{"schema-name":"bench","table-name":"posts"},"rule-action":"add-column","value":"label","expression":"CASE WHEN $score > 0 THEN upper(substr($tags, 1, 4)) ELSE $title END || $id","data-type":{"type":"string","length":300}},{"rule-type":"transformation","rule-id":"3","rule-name":"3","rule-target":"column","object-locator":{"schema-name":"bench","table-name":"posts","column-name":"hotness"},"rule-action":"rename","value":"heat"},{"rule-type":"transformation","rule-id":"4","rule-name":"4","rule-target":"column","object-locator":{"schema-name":"bench","table-name":"posts","column-name":"owner_user_id"},"rule-action":"remove-column"}'

# write_task VARIANT OUTDIR: task file for one full load of bench.posts; VARIANT is a format,
# optionally with "+rules".
write_task() {
  local format=${1%+rules} extra=""
  [[ $1 == *+rules ]] && extra=$rules
  cat >"$bench_dir/task-$1.toml" <<EOF
# TargetTablePrepMode is left at its default.
[task]
id = "bench-${1/+/-}"
migration_type = "full-load"
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"bench","table-name":"posts"},"rule-action":"include"}$extra]}'''

[source]
engine = "postgres"
url = "\${BENCH_PG_URL}"

[target]
url = "file://$2"

[target.settings]
DataFormat = "$format"
EOF
}
# Unencrypted, like the baselines (PGSSLMODE above), so the numbers compare with earlier runs.
export BENCH_PG_URL="$TRIBUTARY_TEST_PG_URL?sslmode=disable"

# Results per format: best seconds, max RSS (MB), output size (MB) or FAILED.
# One timed raw COPY, the physical limit of reading the table.
time_copy() {
  local t0 t
  t0=$(now)
  "${psql[@]}" -c '\copy bench.posts to /dev/null'
  t=$(elapsed "$t0" "$(now)")
  info "raw COPY round $1: ${t}s"
  copy_best=$(min "$copy_best" "$t")
}

# One timed tributary run of FORMAT into OUT (round I); records best time and peak RSS.
time_tributary() {
  local format=$1 out=$2 i=$3 log tfile t0 t kb mb
  [[ ${best[$format]} == FAILED ]] && return 0
  rm -rf -- "${out:?}"/*
  log="$bench_dir/run-$format-$i.log"
  tfile="$bench_dir/time-$format-$i.txt"
  t0=$(now)
  if ! /usr/bin/time -v -o "$tfile" "$bin" run --config "$bench_dir/task-$format.toml" >"$log" 2>&1; then
    info "$format round $i FAILED (exit status in $tfile); last lines of $log:"
    tail -n 15 "$log" | sed 's/^/      /'
    best[$format]=FAILED
    return 0
  fi
  t=$(elapsed "$t0" "$(now)")
  kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tfile")
  mb=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
  info "$format round $i: ${t}s, peak RSS ${mb} MB"
  best[$format]=$(min "${best[$format]}" "$t")
  rss[$format]=$(awk -v a="${rss[$format]}" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
  out_mb[$format]=$(du -sm "$out" | awk '{print $1}')
}

if [[ $only == segments ]]; then
  # shellcheck source=scripts/bench-segments.sh
  source scripts/bench-segments.sh
  info "saved to ${report#"$root"/}"
  exit 0
fi

if [[ $only != cdc ]]; then
# The first passes over a freshly loaded table are slow (hint bits, cold caches): warm up,
# then interleave the phases in rounds so drift on a shared machine hits all of them alike.
phase "Warm-up: two untimed raw COPYs"
for _ in 1 2; do "${psql[@]}" -c '\copy bench.posts to /dev/null'; done

declare -A best rss out_mb outdir
copy_best=""
# BENCH_VARIANTS="parquet parquet+rules" times only those.
read -r -a variants <<<"${BENCH_VARIANTS:-parquet csv parquet+rules csv+rules}"
for format in "${variants[@]}"; do
  outdir[$format]=$(mktemp -d "$bench_dir/out-$format.XXXXXX")
  write_task "$format" "${outdir[$format]}"
  best[$format]=""
  rss[$format]=0
done
phase "(a) raw COPY vs (b) tributary to parquet and csv: $runs interleaved rounds, best of each"
for ((i = 1; i <= runs; i++)); do
  time_copy "$i"
  for format in "${variants[@]}"; do
    time_tributary "$format" "${outdir[$format]}" "$i"
  done
done
for format in "${variants[@]}"; do rm -rf -- "${outdir[$format]}"; done

phase "Results ($rows rows; targets: <= ${target_ratio}x raw COPY, <= ${target_rss_mb} MB peak RSS)"
{
  printf '%-22s %9s %9s %13s %10s  %s\n' phase seconds 'x COPY' 'peak RSS MB' 'output MB' verdict
  printf '%-22s %9s %9s %13s %10s  %s\n' 'raw COPY (psql)' "$copy_best" 1.00 - - baseline
  for format in "${variants[@]}"; do
    if [[ ${best[$format]} == FAILED || -z ${best[$format]} ]]; then
      printf '%-22s %9s %9s %13s %10s  %s\n' "tributary $format" FAILED - - - FAIL
      continue
    fi
    ratio=$(awk -v a="${best[$format]}" -v b="$copy_best" 'BEGIN { printf "%.2f", a / b }')
    # The +rules variants' speed target is the ratio to the same load without rules (below).
    speed_target=$target_ratio
    [[ $format == *+rules ]] && speed_target=1000
    verdict=$(awk -v r="$ratio" -v m="${rss[$format]}" -v tr="$speed_target" -v tm="$target_rss_mb" \
      'BEGIN { v = ""; if (r > tr) v = v " slow"; if (m > tm) v = v " memory"; print (v == "") ? "ok" : "MISS:" v }')
    printf '%-22s %9s %9s %13s %10s  %s\n' "tributary $format" "${best[$format]}" "$ratio" \
      "${rss[$format]}" "${out_mb[$format]}" "$verdict"
  done
  for format in parquet csv; do
    plain=${best[$format]:-} ruled=${best[$format+rules]:-}
    [[ $plain == FAILED || $ruled == FAILED || -z $plain || -z $ruled ]] && continue
    awk -v a="$ruled" -v b="$plain" -v f="$format" -v tr="$target_ratio" 'BEGIN {
      r = a / b; printf "%s with rules vs without: %.2fx (target <= %.1fx) %s\n", f, r, tr, (r <= tr) ? "ok" : "MISS" }'
  done
} | tee "$report"
fi

if [[ $only != full-load ]]; then
  # shellcheck source=scripts/bench-cdc.sh
  source scripts/bench-cdc.sh
fi
if [[ $only == all ]]; then
  # shellcheck source=scripts/bench-segments.sh
  source scripts/bench-segments.sh
  # shellcheck source=scripts/bench-mysql.sh
  source scripts/bench-mysql.sh
fi
info "saved to ${report#"$root"/}"
