# The MariaDB half of scripts/demo.sh (--source mysql): the walkthrough's dms_sample database,
# created in a private MariaDB with the walkthrough's MySQL column types. Sets DEMO_SOURCE_URL.

phase "Checking prerequisites (apt: mariadb-server)"
ensure_apt python3:python3 mariadb-server mariadb-client:mariadb

phase "Starting MariaDB"
start_mariadb
my_port=${TRIBUTARY_TEST_MYSQL_URL##*:}
my_port=${my_port%/}
mysql=(mariadb --no-defaults --protocol=TCP -h 127.0.0.1 -P "$my_port" -u root)

phase "Creating database dms_sample (posts, post_history, votes)"
# Values include commas, quotes, newlines, NULLs and non-ASCII text to exercise CSV quoting.
"${mysql[@]}" <<'SQL'
DROP DATABASE IF EXISTS dms_sample;
CREATE DATABASE dms_sample;
USE dms_sample;
CREATE TABLE posts (
  id INT NOT NULL, accepted_answer_id INT, answer_count INT, body LONGTEXT,
  closed_date DATETIME(3), comment_count INT, community_owned_date DATETIME(3),
  creation_date DATETIME(3) NOT NULL, favorite_count INT, last_activity_date DATETIME(3),
  last_edit_date DATETIME(3), last_editor_display_name VARCHAR(40), last_editor_user_id INT,
  owner_user_id INT, parent_id INT, post_type_id SMALLINT, score INT, tags VARCHAR(150),
  title VARCHAR(250), view_count INT, PRIMARY KEY (id, creation_date));
CREATE TABLE post_history (
  id INT NOT NULL, post_history_type_id SMALLINT, post_id INT, revision_guid VARCHAR(36),
  creation_date DATETIME(3) NOT NULL, user_id INT, user_display_name VARCHAR(40), comment TEXT,
  PRIMARY KEY (id, creation_date));
CREATE TABLE votes (
  id INT PRIMARY KEY, post_id INT, user_id INT, bounty_amount DECIMAL(8,0), vote_type_id SMALLINT,
  creation_date DATETIME(3));
SET @t0 = TIMESTAMP'2022-05-21 14:58:15.742';
INSERT INTO posts
SELECT seq, IF(seq % 3 = 0, NULL, seq + 1), seq % 7,
       CASE WHEN seq % 50 = 0 THEN '<p>Multi-line body\nwith a "quoted, comma" part</p>'
            WHEN seq % 11 = 0 THEN NULL
            ELSE CONCAT('<p>Post #', seq, ': how do I join "a, b" in SQL? Ünïcödé — 日本語 ✓</p>') END,
       IF(seq % 13 = 0, @t0 - INTERVAL seq * 1023217 MICROSECOND + INTERVAL 3 DAY, NULL),
       seq % 5,
       IF(seq % 97 = 0, @t0 - INTERVAL seq * 1023217 MICROSECOND + INTERVAL 10 DAY, NULL),
       @t0 - INTERVAL seq * 1023217 MICROSECOND,
       IF(seq % 4 = 0, NULL, seq % 100),
       @t0 - INTERVAL seq * 1023217 MICROSECOND + INTERVAL 3602345 MICROSECOND,
       IF(seq % 4 = 0, @t0 - INTERVAL seq * 1023217 MICROSECOND + INTERVAL 30 MINUTE, NULL),
       CASE seq % 5 WHEN 0 THEN 'O''Brien, Jr.' WHEN 1 THEN 'Zoë "the coder"' WHEN 2 THEN NULL
                    ELSE CONCAT('user', seq % 997) END,
       seq % 997, (seq * 7) % 100000, IF(seq % 2 = 0, seq - 1, NULL), 1 + seq % 2,
       CAST(seq % 201 AS SIGNED) - 100, CONCAT('<sql><mysql>,<tag', seq % 40, '>'),
       IF(seq % 2 = 1, CONCAT('How do I parse "CSV, with quotes"? #', seq), NULL), seq % 50000
FROM seq_1_to_5000;
INSERT INTO post_history
SELECT seq, 1 + seq % 10, 1 + seq % 5000, UUID(), @t0 - INTERVAL seq * 541001 MICROSECOND,
       IF(seq % 9 = 0, NULL, seq % 997),
       CASE seq % 4 WHEN 0 THEN 'Ærøskøbing, DK' WHEN 1 THEN 'say "hi"' WHEN 2 THEN NULL
                    ELSE CONCAT('user', seq) END,
       CASE WHEN seq % 6 = 0 THEN NULL WHEN seq % 25 = 0 THEN 'edited:\n"fixed typo", added tags'
            ELSE CONCAT('revision ', seq, ' — ok') END
FROM seq_1_to_8000;
INSERT INTO votes
SELECT seq, 1 + seq % 5000, IF(seq % 8 = 0, NULL, seq % 997),
       IF(seq % 20 = 0, 50 * (1 + seq % 10), NULL), 1 + seq % 15,
       @t0 - INTERVAL seq * 180500 MICROSECOND
FROM seq_1_to_12000;
ANALYZE TABLE posts, post_history, votes;
SQL
for table in posts post_history votes; do
  info "dms_sample.$table: $("${mysql[@]}" -N -e "SELECT count(*) FROM dms_sample.$table") rows"
done
export DEMO_SOURCE_URL="${TRIBUTARY_TEST_MYSQL_URL}dms_sample"
