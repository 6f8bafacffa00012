#!/usr/bin/env bash
# Demo: a private PostgreSQL (or, with --source mysql, MariaDB) with the
# `dms_sample` tables from the AWS "MySQL to S3" walkthrough (posts,
# post_history, votes), a full load with tributary into ./lake in DMS's S3
# layout, then the resulting files.
#
#   bash scripts/demo.sh [--format parquet|csv] [--source postgres|mysql]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

format=parquet
source_engine=postgres
while (($# > 0)); do
  case $1 in
    --source)
      source_engine=${2:-}
      shift 2 || die "--source needs a value"
      ;;
    --source=*)
      source_engine=${1#--source=}
      shift
      ;;
    --format)
      format=${2:-}
      shift 2 || die "--format needs a value"
      ;;
    --format=*)
      format=${1#--format=}
      shift
      ;;
    -h | --help)
      sed -n '2,7p' "$0"
      exit 0
      ;;
    *) die "unknown argument: $1 (usage: scripts/demo.sh [--format parquet|csv] [--source postgres|mysql])" ;;
  esac
done
[[ $format == parquet || $format == csv ]] || die "--format must be parquet or csv"
[[ $source_engine == postgres || $source_engine == mysql ]] || die "--source must be postgres or mysql"

root=$PWD
demo_dir="$root/.tributary/demo"
lake="$root/lake"
task="$demo_dir/task.toml"
bin="${CARGO_TARGET_DIR:-$root/target}/release/tributary"

require_cargo
cleanup_on_exit
if [[ $source_engine == mysql ]]; then
  # shellcheck source=scripts/demo-mysql.sh
  source scripts/demo-mysql.sh
else
phase "Checking prerequisites (apt: postgresql)"
ensure_apt python3:python3 'postgresql:/usr/lib/postgresql/*/bin/initdb'

phase "Starting PostgreSQL"
start_postgres
psql=("$TRIBUTARY_TEST_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$TRIBUTARY_TEST_PG_URL")

phase "Creating schema dms_sample (posts, post_history, votes)"
# Column lists follow the walkthrough's table (MySQL DECIMAL -> numeric,
# DATETIME(3) -> timestamp(3), LONGTEXT -> text). PostgreSQL table folders are
# <schema>/<table>, so dms_sample is a schema here. Values include commas,
# quotes, newlines, NULLs and non-ASCII text to exercise CSV quoting.
"${psql[@]}" <<'SQL'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS dms_sample CASCADE;
CREATE SCHEMA dms_sample;

CREATE TABLE dms_sample.posts (
  id                       numeric(11,0) NOT NULL,
  accepted_answer_id       numeric(11,0),
  answer_count             numeric(11,0),
  body                     text,
  closed_date              timestamp(3),
  comment_count            numeric(11,0),
  community_owned_date     timestamp(3),
  creation_date            timestamp(3) NOT NULL,
  favorite_count           numeric(8,0),
  last_activity_date       timestamp(3),
  last_edit_date           timestamp(3),
  last_editor_display_name varchar(40),
  last_editor_user_id      numeric(11,0),
  owner_user_id            numeric(11,0),
  parent_id                numeric(11,0),
  post_type_id             numeric(4,0),
  score                    numeric(8,0),
  tags                     varchar(150),
  title                    varchar(250),
  view_count               numeric(8,0),
  PRIMARY KEY (id, creation_date)
);

CREATE TABLE dms_sample.post_history (
  id                   numeric(11,0) NOT NULL,
  post_history_type_id numeric(4,0),
  post_id              numeric(11,0),
  revision_guid        varchar(36),
  creation_date        timestamp(3) NOT NULL,
  user_id              numeric(11,0),
  user_display_name    varchar(40),
  comment              text,
  PRIMARY KEY (id, creation_date)
);

CREATE TABLE dms_sample.votes (
  id            numeric(11,0) PRIMARY KEY,
  post_id       numeric(11,0),
  user_id       numeric(11,0),
  bounty_amount numeric(8,0),
  vote_type_id  numeric(4,0),
  creation_date timestamp(3)
);

INSERT INTO dms_sample.posts
SELECT g,
       CASE WHEN g % 3 = 0 THEN NULL ELSE g + 1 END,
       g % 7,
       CASE WHEN g % 50 = 0 THEN E'<p>Multi-line body\nwith a "quoted, comma" part</p>'
            WHEN g % 11 = 0 THEN NULL
            ELSE '<p>Post #' || g || ': how do I join "a, b" in SQL? Ünïcödé — 日本語 ✓</p>' END,
       CASE WHEN g % 13 = 0 THEN t.ts + interval '3 days' END,
       g % 5,
       CASE WHEN g % 97 = 0 THEN t.ts + interval '10 days' END,
       t.ts,
       CASE WHEN g % 4 = 0 THEN NULL ELSE g % 100 END,
       t.ts + interval '1 hour 2.345 seconds',
       CASE WHEN g % 4 = 0 THEN t.ts + interval '30 minutes' END,
       CASE g % 5 WHEN 0 THEN 'O''Brien, Jr.' WHEN 1 THEN 'Zoë "the coder"' WHEN 2 THEN NULL
                  ELSE 'user' || (g % 997) END,
       g % 997,
       (g * 7) % 100000,
       CASE WHEN g % 2 = 0 THEN g - 1 END,
       1 + g % 2,
       (g % 201) - 100,
       '<sql><postgresql>,<tag' || (g % 40) || '>',
       CASE WHEN g % 2 = 1 THEN 'How do I parse "CSV, with quotes"? #' || g END,
       g % 50000
FROM generate_series(1, 5000) AS g
CROSS JOIN LATERAL (SELECT timestamp '2022-05-21 14:58:15.742'
                           - g * interval '17 minutes 3.217 seconds' AS ts) AS t;

INSERT INTO dms_sample.post_history
SELECT g,
       1 + g % 10,
       1 + g % 5000,
       md5(g::text)::uuid::text,
       timestamp '2022-05-21 14:58:15.742' - g * interval '9 minutes 1.001 seconds',
       CASE WHEN g % 9 = 0 THEN NULL ELSE g % 997 END,
       CASE g % 4 WHEN 0 THEN 'Ærøskøbing, DK' WHEN 1 THEN 'say "hi"' WHEN 2 THEN NULL ELSE 'user' || g END,
       CASE WHEN g % 6 = 0 THEN NULL
            WHEN g % 25 = 0 THEN E'edited:\n"fixed typo", added tags'
            ELSE 'revision ' || g || ' — ok' END
FROM generate_series(1, 8000) AS g;

INSERT INTO dms_sample.votes
SELECT g,
       1 + g % 5000,
       CASE WHEN g % 8 = 0 THEN NULL ELSE g % 997 END,
       CASE WHEN g % 20 = 0 THEN 50 * (1 + g % 10) END,
       1 + g % 15,
       timestamp '2022-05-21 14:58:15.742' - g * interval '3 minutes 0.5 seconds'
FROM generate_series(1, 12000) AS g;

ANALYZE dms_sample.posts, dms_sample.post_history, dms_sample.votes;
SQL
for table in posts post_history votes; do
  info "dms_sample.$table: $("${psql[@]}" -At -c "SELECT count(*) FROM dms_sample.$table") rows"
done
export DEMO_SOURCE_URL="$TRIBUTARY_TEST_PG_URL"
fi

phase "Building (cargo build --release --locked)"
cargo build --release --locked

phase "Writing $task ($format)"
mkdir -p "$demo_dir"
# The URL stays a ${VAR} reference: tributary expands it from the environment.
cat >"$task" <<EOF
[task]
id = "dms-sample-demo"
migration_type = "full-load"
table_mappings = '''{"rules":[{"rule-type":"selection","rule-id":"1","rule-name":"1","object-locator":{"schema-name":"dms_sample","table-name":"%"},"rule-action":"include"}]}'''

[source]
engine = "$source_engine"
url = "\${DEMO_SOURCE_URL}"

[target]
url = "file://$lake"

[target.settings]
DataFormat = "$format"
IncludeOpForFullLoad = true
TimestampColumnName = "dms_timestamp"
EOF
sed 's/^/    /' "$task"

phase "Running tributary run --config ${task#"$root"/}"
# Start from an empty table folder so the tree shows only this run's files.
rm -rf -- "$lake/dms_sample"
"$bin" run --config "$task"

phase "Files in ./lake"
(cd "$root" && find lake -type f -printf '%10s  %p\n' | sort -k 2)

phase "First rows"
# Prefer a posts file: it has the most varied columns.
first=$(cd "$root" && find lake/dms_sample/posts lake -type f -name "*.$format" 2>/dev/null | head -n 1)
py="$TRIBUTARY_VENV/bin/python"
if [[ -z $first ]]; then
  info "no .$format file found"
elif [[ $format == csv ]]; then
  info "$first"
  head -n 5 "$root/$first"
elif [[ -x $py ]] && "$py" -c 'import pyarrow' 2>/dev/null; then
  info "$first (read with pyarrow)"
  "$py" - "$root/$first" <<'PY'
import sys
import pyarrow.parquet as pq

f = pq.ParquetFile(sys.argv[1])
print(f"rows={f.metadata.num_rows} row_groups={f.num_row_groups}")
print(f.schema_arrow)
for row in f.read_row_group(0).slice(0, 5).to_pylist():
    print(row)
PY
else
  info "$first (install the venv with scripts/test.sh to print Parquet rows with pyarrow)"
fi
