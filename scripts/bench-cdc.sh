# Change-capture benchmark, sourced by scripts/bench.sh after bench.posts exists.
#
# (a) Throughput and memory: one UPDATE of half of bench.posts (1,000,000 of 2,000,000 rows by
#     default), read from slots created before it: pg_recvlogical (pgoutput, -f /dev/null, the
#     physical limit of decoding that WAL) and a `cdc` task writing Parquet, once per
#     CdcMinFileSize in BENCH_CDC_SIZES (KB; default 32000 64000 1048576: DMS's default, the
#     seed walkthroughs' 64 MB, and 1 GB). Targets: >= 0.9x pg_recvlogical's throughput,
#     <= 150 MB peak RSS whatever the file size.
# (b) Latency: 10,000 changes/s for 20 s (pgbench) into a `cdc` task with CdcMaxBatchInterval=1;
#     for each row, file-visible time minus commit time. Target: p99 <= 1.5 s.
#
# Uses from bench.sh: psql, bin, bench_dir, runs, phase, info, now, elapsed, min.

cdc_target_ratio=0.9
cdc_target_rss_mb=150
read -r -a cdc_sizes <<<"${BENCH_CDC_SIZES:-32000 64000 1048576}"
cdc_target_p99_s=1.5
pg_url="$TRIBUTARY_TEST_PG_URL"
py="$root/.tributary/venv/bin/python"

# drop_slot NAME: drops a leftover slot of that name.
drop_slot() {
  "${psql[@]}" -At -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$1'" >/dev/null
}

phase "CDC (a): $((rows / 2)) updated rows, pg_recvlogical vs tributary (parquet; CdcMinFileSize ${cdc_sizes[*]} KB), $runs rounds"
"${psql[@]}" -c "DROP PUBLICATION IF EXISTS bench_pub" -c "CREATE PUBLICATION bench_pub FOR TABLE bench.posts"
cdc_task="$bench_dir/task-cdc.toml"
slots=(bench_recv)
for size in "${cdc_sizes[@]}"; do slots+=("bench_trib_$size"); done
declare -A trib_best=() trib_rss=()
recv_best="" updated=0
for ((i = 1; i <= runs; i++)); do
  for s in "${slots[@]}"; do
    drop_slot "$s"
    "${psql[@]}" -At -c "SELECT pg_create_logical_replication_slot('$s', 'pgoutput')" >/dev/null
  done
  updated=$("${psql[@]}" -At -c "WITH u AS (UPDATE bench.posts SET score = score + 1 WHERE id % 2 = 0 RETURNING 1) SELECT count(*) FROM u")
  # The task stops at the first transaction committed after this instant: the marker below.
  stop_at=$(date -u +%Y-%m-%dT%H:%M:%S.%6N)
  "${psql[@]}" -c "UPDATE bench.posts SET score = score WHERE id = 1"
  end_lsn=$("${psql[@]}" -At -c "SELECT pg_current_wal_insert_lsn()")
  t0=$(now)
  /usr/bin/time -v -o "$bench_dir/time-recv-$i.txt" "$TRIBUTARY_TEST_PG_BIN/pg_recvlogical" -d "$pg_url" \
    --slot=bench_recv --start -o proto_version=1 -o publication_names=bench_pub \
    --endpos="$end_lsn" --no-loop -f /dev/null
  t=$(elapsed "$t0" "$(now)")
  info "pg_recvlogical round $i: ${t}s"
  recv_best=$(min "$recv_best" "$t")
  for size in "${cdc_sizes[@]}"; do
    out=$(mktemp -d "$bench_dir/out-cdc.XXXXXX")
    cat >"$cdc_task" <<EOF
[task]
id = "bench-cdc"
migration_type = "cdc"
cdc_stop_position = "commit_time:$stop_at"
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"bench","table-name":"posts"},"rule-action":"include"}]}'''
state = "$out/state"
[source]
engine = "postgres"
url = "\${BENCH_PG_URL}"
[source.settings]
SlotName = "bench_trib_$size"
PublicationName = "bench_pub"
[target]
url = "file://$out/lake"
[target.settings]
DataFormat = "parquet"
CdcMinFileSize = $size
EOF
    t0=$(now)
    if ! /usr/bin/time -v -o "$bench_dir/time-cdc-$i-$size.txt" "$bin" run --config "$cdc_task" --no-progress \
      >"$bench_dir/run-cdc-$i-$size.log" 2>&1; then
      info "tributary cdc round $i ($size KB files) FAILED; last lines:"
      tail -n 15 "$bench_dir/run-cdc-$i-$size.log" | sed 's/^/      /'
      trib_best[$size]=FAILED
      continue
    fi
    t=$(elapsed "$t0" "$(now)")
    kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$bench_dir/time-cdc-$i-$size.txt")
    mb=$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')
    written="?"
    if [[ -x $py ]]; then
      written=$("$py" -c "import glob,pyarrow.parquet as pq; print(sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob('$out/lake/bench/posts/*.parquet')))")
      [[ $written == "$updated" ]] || { info "round $i wrote $written rows, expected $updated"; trib_best[$size]=FAILED; }
    fi
    info "tributary cdc round $i, CdcMinFileSize $size KB: ${t}s, peak RSS ${mb} MB, $written rows in $(ls "$out/lake/bench/posts" | wc -l) files"
    [[ ${trib_best[$size]:-} == FAILED ]] || trib_best[$size]=$(min "${trib_best[$size]:-}" "$t")
    trib_rss[$size]=$(awk -v a="${trib_rss[$size]:-0}" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
    rm -rf -- "$out"
  done
done
for s in "${slots[@]}"; do drop_slot "$s"; done

phase "CDC (b): latency at ~10,000 changes/s, CdcMaxBatchInterval=1"
"${psql[@]}" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench.events;
CREATE TABLE bench.events (id bigserial PRIMARY KEY, payload text);
DROP PUBLICATION IF EXISTS bench_lat_pub;
CREATE PUBLICATION bench_lat_pub FOR TABLE bench.events;
SQL
drop_slot tributary_bench_lat
lat=$(mktemp -d "$bench_dir/out-lat.XXXXXX")
cat >"$bench_dir/task-lat.toml" <<EOF
[task]
id = "bench-lat"
migration_type = "cdc"
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"bench","table-name":"events"},"rule-action":"include"}]}'''
state = "$lat/state"
[source]
engine = "postgres"
url = "\${BENCH_PG_URL}"
[source.settings]
PublicationName = "bench_lat_pub"
[target]
url = "file://$lat/lake"
[target.settings]
CdcMaxBatchInterval = 1
TimestampColumnName = "commit_ts"
EOF
TRIBUTARY_LOG=info "$bin" run --config "$bench_dir/task-lat.toml" --no-progress >"$bench_dir/run-lat.log" 2>&1 &
lat_pid=$!
for _ in $(seq 1 300); do grep -q "streaming changes" "$bench_dir/run-lat.log" && break; sleep 0.1; done
# The watcher records when each file first becomes visible (files appear whole, by rename).
"$py" - "$lat/lake/bench/events" "$lat/seen.tsv" <<'PY' &
import os, sys, time
folder, out = sys.argv[1], sys.argv[2]
seen = {}
stop = out + ".stop"
while not os.path.exists(stop):
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            if not name.startswith(".") and name not in seen:
                seen[name] = time.time()
    time.sleep(0.02)
with open(out, "w") as f:
    for name, t in seen.items():
        f.write(f"{name}\t{t}\n")
PY
watcher=$!
echo "INSERT INTO bench.events(payload) SELECT 'x' FROM generate_series(1, 10);" >"$bench_dir/lat.sql"
"$TRIBUTARY_TEST_PG_BIN/pgbench" -n -f "$bench_dir/lat.sql" -R 1000 -T 20 -c 2 -j 2 "$pg_url" >"$bench_dir/pgbench.log" 2>&1
sleep 3 # the last interval's files (CdcMaxBatchInterval=1) become visible
touch "$lat/seen.tsv.stop"
wait "$watcher"
kill -TERM "$lat_pid"
wait "$lat_pid" || info "latency task exited with $?"
latency=$("$py" - "$lat/lake/bench/events" "$lat/seen.tsv" <<'PY'
import csv, datetime, sys
folder, seen_file = sys.argv[1], sys.argv[2]
seen = dict(line.rstrip("\n").split("\t") for line in open(seen_file))
lat = []
for name, t in seen.items():
    for row in csv.reader(open(f"{folder}/{name}")):
        commit = datetime.datetime.strptime(row[1], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
        lat.append(float(t) - commit.timestamp())
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print(f"{len(lat)} {q(0.5):.3f} {q(0.99):.3f} {lat[-1]:.3f}")
PY
)
read -r lat_n lat_p50 lat_p99 lat_max <<<"$latency"
rate=$(awk -v n="$lat_n" 'BEGIN { printf "%.0f", n / 20 }')
drop_slot tributary_bench_lat
rm -rf -- "$lat"

phase "CDC results (targets: >= ${cdc_target_ratio}x pg_recvlogical throughput, <= ${cdc_target_rss_mb} MB, p99 <= ${cdc_target_p99_s} s)"
{
  printf '%-28s %9s %12s %13s  %s\n' phase seconds 'throughput x' 'peak RSS MB' verdict
  printf '%-28s %9s %12s %13s  %s\n' 'pg_recvlogical (pgoutput)' "$recv_best" 1.00 - baseline
  for size in "${cdc_sizes[@]}"; do
    best=${trib_best[$size]:-}
    name="tributary cdc ${size} KB"
    if [[ $best == FAILED || -z $best ]]; then
      printf '%-28s %9s %12s %13s  %s\n' "$name" FAILED - - FAIL
      continue
    fi
    ratio=$(awk -v a="$recv_best" -v b="$best" 'BEGIN { printf "%.2f", a / b }')
    verdict=$(awk -v r="$ratio" -v m="${trib_rss[$size]}" -v tr="$cdc_target_ratio" -v tm="$cdc_target_rss_mb" \
      'BEGIN { v = ""; if (r < tr) v = v " slow"; if (m > tm) v = v " memory"; print (v == "") ? "ok" : "MISS:" v }')
    printf '%-28s %9s %12s %13s  %s\n' "$name" "$best" "$ratio" "${trib_rss[$size]}" "$verdict"
  done
  verdict=$(awk -v p="$lat_p99" -v t="$cdc_target_p99_s" 'BEGIN { print (p <= t) ? "ok" : "MISS" }')
  printf 'latency: %s rows (%s changes/s), p50 %s s, p99 %s s, max %s s  %s\n' \
    "$lat_n" "$rate" "$lat_p50" "$lat_p99" "$lat_max" "$verdict"
} | tee -a "$report"
