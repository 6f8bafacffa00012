"""Peer figure for scripts/bench-mysql.sh: python-mysql-replication decoding the same binlog range.

Usage: peer_binlog.py PORT FILE START_POS  (reads to the current end of the binlog; prints rows)
"""
import sys

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

port, log_file, start = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
stream = BinLogStreamReader(
    connection_settings={"host": "127.0.0.1", "port": port, "user": "root", "passwd": ""},
    server_id=990001,
    log_file=log_file,
    log_pos=start,
    resume_stream=True,
    blocking=False,
    only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
)
rows = 0
for event in stream:
    rows += len(event.rows)
stream.close()
print(rows)
