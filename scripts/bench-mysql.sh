# MySQL/MariaDB benchmark, sourced by scripts/bench.sh (BENCH_ONLY=mysql runs only this part).
#
# (a) Full load of a posts-shaped table (BENCH_ROWS rows, default 2,000,000) to Parquet against
#     `mariadb --quick -e "select * from posts" > /dev/null` (the physical limit of reading the
#     table over the protocol) in the same run. Targets: <= 1.3x its time, <= 150 MB peak RSS.
# (b) One UPDATE of half the rows (1,000,000) through binlog CDC into Parquet against
#     `mariadb-binlog --read-from-remote-server --base64-output=decode-rows -v` decoding the
#     same binlog range to /dev/null, once per CdcMinFileSize in BENCH_CDC_SIZES (KB; default
#     32000 64000 1048576). Targets: >= 0.9x its throughput, <= 150 MB peak RSS at every size.
#     Peer figure: python-mysql-replication (scripts/peer_binlog.py) on the same events.
#
# Uses from bench.sh: bin, bench_dir, runs, rows, phase, info, now, elapsed, min, report.

my_target_ratio=1.3
my_target_rss_mb=150
my_cdc_target_ratio=0.9
my_cdc_target_rss_mb=150
read -r -a my_cdc_sizes <<<"${BENCH_CDC_SIZES:-32000 64000 1048576}"

phase "Starting MariaDB"
start_mariadb
my_port=${TRIBUTARY_TEST_MYSQL_URL##*:}
my_port=${my_port%/}
mysql=(mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$my_port" -u root)
# Unencrypted, like the mariadb client baselines, so the numbers compare with earlier runs.
export BENCH_MY_URL="${TRIBUTARY_TEST_MYSQL_URL}bench?ssl-mode=DISABLED"

phase "Creating bench.posts in MariaDB with $rows rows"
"${mysql[@]}" <<SQL
DROP DATABASE IF EXISTS bench;
CREATE DATABASE bench;
USE bench;
CREATE TABLE posts (
  id                 BIGINT PRIMARY KEY,
  post_type_id       INT,
  accepted_answer_id INT,
  answer_count       INT,
  owner_user_id      INT,
  score              INT,
  body               TEXT,
  creation_date      DATETIME(3),
  last_activity_date DATETIME(3),
  tags               VARCHAR(150),
  title              VARCHAR(250),
  is_closed          TINYINT(1),
  hotness            DOUBLE
);
SET SESSION sql_log_bin = 0;
INSERT INTO posts
SELECT seq, 1 + seq % 3, IF(seq % 3 = 0, NULL, (seq * 7) % 100000000), seq % 17, seq % 500000,
       CAST(seq % 2001 AS SIGNED) - 1000, LEFT(REPEAT(MD5(seq), 6), 32 + (seq % 161)),
       TIMESTAMPADD(MICROSECOND, seq * 7123000, '2008-07-31 21:42:52.667'),
       TIMESTAMPADD(MICROSECOND, seq * 9321000, '2008-07-31 21:42:52.667'),
       CONCAT('<c#>,<"sql">,<tag', seq % 1000, '>'), CONCAT('How do I parse "CSV, with quotes" #', seq),
       seq % 10 = 0, seq / 7.0
FROM seq_1_to_$rows;
ANALYZE TABLE posts;
SQL

my_task() { # my_task FILE MIGRATION OUT [EXTRA TASK LINES] [EXTRA TARGET SETTINGS]
  cat >"$1" <<EOF
[task]
id = "bench-my-$2"
migration_type = "$2"
${4:-}
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"bench","table-name":"posts"},"rule-action":"include"}]}'''
state = "$3/state"
[source]
engine = "mysql"
url = "\${BENCH_MY_URL}"
[target]
url = "file://$3/lake"
[target.settings]
DataFormat = "parquet"
${5:-}
EOF
}

# timed_run NAME CMD...: runs CMD under /usr/bin/time, prints and returns "seconds rss_mb".
timed_run() {
  local name=$1 t0 t kb
  shift
  t0=$(now)
  /usr/bin/time -v -o "$bench_dir/time-$name.txt" "$@" >"$bench_dir/run-$name.log" 2>&1 || {
    info "$name FAILED; last lines of its log:"
    tail -n 15 "$bench_dir/run-$name.log" | sed 's/^/      /'
    echo "FAILED 0"
    return 0
  }
  t=$(elapsed "$t0" "$(now)")
  kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$bench_dir/time-$name.txt")
  echo "$t $(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')"
}

verdict() { # verdict RATIO RSS MAX_RATIO MAX_RSS [min]
  awk -v r="$1" -v m="$2" -v tr="$3" -v tm="$4" -v lo="${5:-max}" 'BEGIN {
    v = ""; if ((lo == "min" && r < tr) || (lo == "max" && r > tr)) v = v " slow"; if (m > tm) v = v " memory"
    print (v == "") ? "ok" : "MISS:" v }'
}

phase "MySQL (a): full load, mariadb --quick vs tributary (parquet), $runs interleaved rounds"
"${mysql[@]}" --quick -e "select * from bench.posts" >/dev/null # warm-up
quick_best="" load_best="" load_rss=0
for ((i = 1; i <= runs; i++)); do
  read -r t _ < <(timed_run "my-quick-$i" "${mysql[@]}" --quick -e "select * from bench.posts")
  info "mariadb --quick round $i: ${t}s"
  quick_best=$(min "$quick_best" "$t")
  out=$(mktemp -d "$bench_dir/out-my.XXXXXX")
  my_task "$bench_dir/task-my-load.toml" full-load "$out"
  read -r t mb < <(timed_run "my-load-$i" "$bin" run --config "$bench_dir/task-my-load.toml" --no-progress)
  info "tributary full load round $i: ${t}s, peak RSS ${mb} MB"
  [[ $t == FAILED ]] || load_best=$(min "$load_best" "$t")
  load_rss=$(awk -v a="$load_rss" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
  rm -rf -- "$out"
done

phase "MySQL (b): $((rows / 2)) updated rows, mariadb-binlog vs tributary cdc (parquet; CdcMinFileSize ${my_cdc_sizes[*]} KB), $runs rounds"
binlog_best="" peer_best=""
declare -A cdc_best=() cdc_rss=()
# Peer figure: python-mysql-replication on the same events (skipped if it cannot be installed).
py="$root/.tributary/venv/bin/python"
peer_ok=0
if "$py" -c 'import pymysqlreplication' 2>/dev/null ||
  "$root/.tributary/venv/bin/pip" install -q 'mysql-replication>=1.0' >/dev/null 2>&1; then
  peer_ok=1
else
  info "python-mysql-replication could not be installed; its peer figure is skipped"
fi
for ((i = 1; i <= runs; i++)); do
  # A fresh binlog file per round, so the update (~600 MB of row images) sits in one file.
  "${mysql[@]}" -e "FLUSH BINARY LOGS"
  read -r file pos _ < <("${mysql[@]}" -N -e "SHOW MASTER STATUS")
  "${mysql[@]}" -e "UPDATE bench.posts SET score = score + 1 WHERE id % 2 = 0"
  read -r end_file end _ < <("${mysql[@]}" -N -e "SHOW MASTER STATUS")
  [[ $end_file == "$file" ]] || die "the update spilled into a second binlog file; raise max_binlog_size"
  # Binlog times have second precision: the marker commits in a later second than stop_at.
  sleep 1.1
  stop_at=$(date -u +%Y-%m-%dT%H:%M:%S)
  sleep 1.1
  "${mysql[@]}" -e "UPDATE bench.posts SET score = score + 1 WHERE id = 1"
  if [[ $peer_ok == 1 ]]; then
    read -r t _ < <(timed_run "my-peer-$i" "$py" scripts/peer_binlog.py "$my_port" "$file" "$pos")
    info "python-mysql-replication round $i: ${t}s ($(tail -n 1 "$bench_dir/run-my-peer-$i.log") rows)"
    [[ $t == FAILED ]] || peer_best=$(min "$peer_best" "$t")
  fi
  read -r t _ < <(timed_run "my-binlog-$i" mariadb-binlog --no-defaults --read-from-remote-server \
    --protocol=TCP -h 127.0.0.1 -P "$my_port" -u root --base64-output=decode-rows -v \
    --start-position="$pos" --stop-position="$end" "$file")
  info "mariadb-binlog round $i: ${t}s"
  binlog_best=$(min "$binlog_best" "$t")
  for size in "${my_cdc_sizes[@]}"; do
    out=$(mktemp -d "$bench_dir/out-my-cdc.XXXXXX")
    my_task "$bench_dir/task-my-cdc.toml" cdc "$out" \
      "cdc_start_position = \"$file:$pos\"
cdc_stop_position = \"commit_time:$stop_at\"" "CdcMinFileSize = $size"
    read -r t mb < <(timed_run "my-cdc-$i-$size" "$bin" run --config "$bench_dir/task-my-cdc.toml" --no-progress)
    got=$(find "$out/lake" -name '*.parquet' | wc -l)
    written=$("$py" -c 'import glob, sys, pyarrow.parquet as pq
print(sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True)))' "$out/lake")
    info "tributary cdc round $i, CdcMinFileSize $size KB: ${t}s, peak RSS ${mb} MB, $got files, $written rows"
    [[ $written == $((rows / 2)) ]] || die "the cdc task wrote $written rows, expected $((rows / 2))"
    [[ $t == FAILED ]] || cdc_best[$size]=$(min "${cdc_best[$size]:-}" "$t")
    cdc_rss[$size]=$(awk -v a="${cdc_rss[$size]:-0}" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
    rm -rf -- "$out"
  done
done

phase "MySQL results ($rows rows; full load <= ${my_target_ratio}x, <= ${my_target_rss_mb} MB; CDC >= ${my_cdc_target_ratio}x throughput, <= ${my_cdc_target_rss_mb} MB)"
{
  printf '%-28s %9s %9s %13s  %s\n' phase seconds ratio 'peak RSS MB' verdict
  printf '%-28s %9s %9s %13s  %s\n' 'mariadb --quick' "$quick_best" 1.00 - baseline
  r=$(awk -v a="$load_best" -v b="$quick_best" 'BEGIN { printf "%.2f", a / b }')
  printf '%-28s %9s %9s %13s  %s\n' 'tributary full load parquet' "$load_best" "$r" "$load_rss" \
    "$(verdict "$r" "$load_rss" "$my_target_ratio" "$my_target_rss_mb")"
  printf '%-28s %9s %9s %13s  %s\n' 'mariadb-binlog (decode)' "$binlog_best" 1.00 - baseline
  for size in "${my_cdc_sizes[@]}"; do
    r=$(awk -v a="${cdc_best[$size]}" -v b="$binlog_best" 'BEGIN { printf "%.2f", b / a }')
    printf '%-28s %9s %9s %13s  %s\n' "tributary cdc ${size} KB" "${cdc_best[$size]}" "${r} thr" "${cdc_rss[$size]}" \
      "$(verdict "$r" "${cdc_rss[$size]}" "$my_cdc_target_ratio" "$my_cdc_target_rss_mb" min)"
  done
  if [[ -n $peer_best ]]; then
    r=$(awk -v a="$peer_best" -v b="$binlog_best" 'BEGIN { printf "%.2f", b / a }')
    printf '%-28s %9s %9s %13s  %s\n' 'python-mysql-replication' "$peer_best" "${r} thr" - peer
  fi
} | tee -a "$report"
