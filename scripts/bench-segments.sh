# Segmented full loads (parallel-load), sourced by scripts/bench.sh once bench.posts exists
# (BENCH_ONLY=segments runs only this part):
#   (a) bench.posts read as 1, 2 and 4 `ranges` segments on id, Parquet, best of $runs
#       interleaved rounds: the ratio of each to one stream, and peak RSS (<= 150 MB);
#   (b) 5 segments loaded one at a time: a full load, then a load killed (SIGKILL) once 4 of 5
#       segments are in the checkpoint, and its resume: resume time / full time (<= 0.30);
#   (c) bench.posts_part, the same rows partitioned by month of creation_date with the key
#       (id, creation_date) as the seed's posts: raw COPY of it, one stream, and
#       `partitions-auto`, interleaved rounds;
#   (d) bench.posts in automatic chunks (no rule; TRIBUTARY_AUTO_SEGMENT_KB set to a quarter of
#       the table) against one stream.
# One stream means one: automatic chunks are off (TRIBUTARY_AUTO_SEGMENT_KB=0) except in (d).
export TRIBUTARY_AUTO_SEGMENT_KB=0

# seg_task N OUT [SUBTASKS]: a task loading bench.posts as N ranges segments into OUT.
seg_task() {
  local n=$1 out=$2 subtasks=${3:-8} bounds="" k
  for ((k = 1; k < n; k++)); do
    bounds+="${bounds:+,}[\"$((k * rows / n))\"]"
  done
  local rule=""
  if ((n > 1)); then
    rule="{\"type\":\"ranges\",\"columns\":[\"id\"],\"boundaries\":[$bounds]}"
  fi
  load_task "seg$n" posts "$rule" "$out" "$subtasks"
}

# load_task NAME TABLE PARALLEL_LOAD OUT [SUBTASKS]: a task loading bench.TABLE into OUT, with
# a parallel-load rule when PARALLEL_LOAD (its JSON) is not empty.
load_task() {
  local name=$1 table=$2 parallel=$3 out=$4 subtasks=${5:-8} rule=""
  if [[ -n $parallel ]]; then
    rule=",{\"rule-type\":\"table-settings\",\"rule-id\":\"2\",\"rule-name\":\"2\",\"object-locator\":{\"schema-name\":\"bench\",\"table-name\":\"$table\"},\"parallel-load\":$parallel}"
  fi
  cat >"$bench_dir/task-$name.toml" <<TOML
[task]
id = "bench-$name"
migration_type = "full-load"
state = "$bench_dir/state-$name"
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"bench","table-name":"$table"},"rule-action":"include"}$rule]}'''

[task.settings]
"FullLoadSettings.MaxFullLoadSubTasks" = $subtasks

[source]
engine = "postgres"
url = "\${BENCH_PG_URL}"

[target]
url = "file://$out"

[target.settings]
DataFormat = "parquet"
TOML
}

# seg_run N OUT: one timed run (fresh state and folder); prints "seconds rss_mb".
seg_run() { load_run "seg$1" "$2"; }

# load_run NAME OUT: one timed run of task NAME (fresh state and folder); prints "seconds rss_mb".
load_run() {
  local n=$1 out=$2 tfile="$bench_dir/time-$1.txt" t0 t kb
  rm -rf -- "${out:?}"/* "$bench_dir/state-$n"
  t0=$(now)
  /usr/bin/time -v -o "$tfile" "$bin" run --config "$bench_dir/task-$n.toml" --no-progress \
    >"$bench_dir/run-$n.log" 2>&1 || { echo "FAILED 0"; return 0; }
  t=$(elapsed "$t0" "$(now)")
  kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$tfile")
  echo "$t $(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')"
}

phase "Segments (a): bench.posts as 1, 2 and 4 ranges segments (parquet), $runs interleaved rounds"
declare -A seg_best seg_rss
seg_out=$(mktemp -d "$bench_dir/out-seg.XXXXXX")
for n in 1 2 4; do
  seg_task "$n" "$seg_out"
  seg_best[$n]=""
  seg_rss[$n]=0
done
for ((i = 1; i <= runs; i++)); do
  for n in 1 2 4; do
    read -r t mb < <(seg_run "$n" "$seg_out")
    info "$n segment(s) round $i: ${t}s, peak RSS ${mb} MB"
    [[ $t == FAILED ]] && { seg_best[$n]=FAILED; continue; }
    seg_best[$n]=$(min "${seg_best[$n]}" "$t")
    seg_rss[$n]=$(awk -v a="${seg_rss[$n]}" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
  done
done

phase "Segments (b): 5 segments one at a time, killed at 4 of 5, then resumed"
seg_task 5 "$seg_out" 1
read -r full_t _ < <(seg_run 5 "$seg_out")
info "full load in 5 segments: ${full_t}s"
rm -rf -- "${seg_out:?}"/* "$bench_dir/state-seg5"
"$bin" run --config "$bench_dir/task-seg5.toml" --no-progress >"$bench_dir/run-seg5-killed.log" 2>&1 &
pid=$!
cp_file="$bench_dir/state-seg5/bench-seg5/checkpoint.json"
until [[ -f $cp_file ]] && (($(grep -c '"State": "Table completed"' "$cp_file" || true) >= 4)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
done_before=$(grep -c '"State": "Table completed"' "$cp_file" || true)
t0=$(now)
"$bin" run --config "$bench_dir/task-seg5.toml" --no-progress >"$bench_dir/run-seg5-resume.log" 2>&1
resume_t=$(elapsed "$t0" "$(now)")
skipped=$(grep -c 'segment already loaded; skipping' "$bench_dir/run-seg5-resume.log" || true)
info "killed with $done_before of 5 segments done; resume: ${resume_t}s ($skipped segments kept)"
rm -rf -- "$seg_out"

phase "Segments (c): bench.posts_part partitioned by month, partitions-auto vs one stream vs raw COPY, $runs interleaved rounds"
"${psql[@]}" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench.posts_part;
CREATE TABLE bench.posts_part (LIKE bench.posts, PRIMARY KEY (id, creation_date))
  PARTITION BY RANGE (creation_date);
DO $$
DECLARE m date;
BEGIN
  FOR m IN SELECT generate_series(date_trunc('month', min(creation_date)),
                                  max(creation_date), interval '1 month')::date
           FROM bench.posts LOOP
    EXECUTE format('CREATE TABLE bench.posts_part_%s PARTITION OF bench.posts_part
                    FOR VALUES FROM (%L) TO (%L)', to_char(m, 'YYYYMM'), m, m + interval '1 month');
  END LOOP;
END $$;
INSERT INTO bench.posts_part SELECT * FROM bench.posts;
VACUUM ANALYZE bench.posts_part;
SQL
part_count=$("${psql[@]}" -At -c "SELECT count(*) FROM pg_partition_tree('bench.posts_part') WHERE isleaf")
info "bench.posts_part: $part_count partitions"
load_task part1 posts_part "" "$seg_out"
load_task partauto posts_part '{"type":"partitions-auto"}' "$seg_out"
declare -A part_best part_rss
part_copy=""
for ((i = 1; i <= runs; i++)); do
  t0=$(now)
  "${psql[@]}" -c '\copy (SELECT * FROM bench.posts_part) to /dev/null'
  t=$(elapsed "$t0" "$(now)")
  info "raw COPY of bench.posts_part round $i: ${t}s"
  part_copy=$(min "$part_copy" "$t")
  for n in part1 partauto; do
    read -r t mb < <(load_run "$n" "$seg_out")
    info "$n round $i: ${t}s, peak RSS ${mb} MB"
    [[ $t == FAILED ]] && { part_best[$n]=FAILED; continue; }
    part_best[$n]=$(min "${part_best[$n]:-}" "$t")
    part_rss[$n]=$(awk -v a="${part_rss[$n]:-0}" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
  done
done
part_files=$(find "$seg_out" -name 'LOAD*' | wc -l)

phase "Segments (d): bench.posts in automatic chunks (no rule) vs one stream, $runs rounds"
heap_kb=$("${psql[@]}" -At -c "SELECT pg_relation_size('bench.posts') / 1024")
load_task auto posts "" "$seg_out"
auto_best="" auto_rss=0
for ((i = 1; i <= runs; i++)); do
  read -r t mb < <(TRIBUTARY_AUTO_SEGMENT_KB=$((heap_kb / 4 + 1)) load_run auto "$seg_out")
  info "automatic chunks round $i: ${t}s, peak RSS ${mb} MB"
  auto_best=$(min "$auto_best" "$t")
  auto_rss=$(awk -v a="$auto_rss" -v b="$mb" 'BEGIN { print (b > a) ? b : a }')
done
auto_chunks=$(grep -o 'chunks=[0-9]*' "$bench_dir/run-auto.log" | head -n 1)
rm -rf -- "$seg_out"

phase "Segment results ($rows rows; targets: not slower than one stream, <= ${target_rss_mb} MB, resume <= 0.30x a full load)"
{
  printf '%-30s %9s %9s %13s  %s\n' phase seconds 'x 1 seg' 'peak RSS MB' verdict
  for n in 1 2 4; do
    ratio=$(awk -v a="${seg_best[$n]}" -v b="${seg_best[1]}" 'BEGIN { printf "%.2f", a / b }')
    verdict=$(awk -v r="$ratio" -v m="${seg_rss[$n]}" -v tm="$target_rss_mb" \
      'BEGIN { v = ""; if (r > 1.05) v = v " slower"; if (m > tm) v = v " memory"; print (v == "") ? "ok" : "MISS:" v }')
    printf '%-30s %9s %9s %13s  %s\n' "$n segment(s)" "${seg_best[$n]}" "$ratio" "${seg_rss[$n]}" "$verdict"
  done
  awk -v r="$resume_t" -v f="$full_t" -v d="$done_before" -v s="$skipped" 'BEGIN {
    x = r / f; printf "resume after kill at %d/5 segments: %.2fs vs full %.2fs = %.2fx (target <= 0.30) %s; %d segments kept\n",
      d, r, f, x, (x <= 0.30) ? "ok" : "MISS", s }'
  printf '%-30s %9s %9s %13s\n' "posts_part ($part_count parts)" seconds 'x COPY' 'peak RSS MB'
  printf '%-30s %9s %9s %13s\n' "raw COPY" "$part_copy" 1.00 -
  for n in part1 partauto; do
    ratio=$(awk -v a="${part_best[$n]}" -v b="$part_copy" 'BEGIN { printf "%.2f", a / b }')
    printf '%-30s %9s %9s %13s\n' "$n" "${part_best[$n]}" "$ratio" "${part_rss[$n]}"
  done
  echo "posts_part files (last run): $part_files"
  awk -v a="$auto_best" -v b="${seg_best[1]}" -v m="$auto_rss" -v c="$auto_chunks" 'BEGIN {
    printf "automatic chunks (%s): %.2fs = %.2fx one stream, peak RSS %s MB\n", c, a, a / b, m }'
} | tee -a "$report"
