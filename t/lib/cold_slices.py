#!/usr/bin/python3
"""For every block_indexes row, writes the archived file's header followed
by the bytes at [start_byte, start_byte + length) as a standalone container
file, so that any Avro reader can check that the range holds exactly that
dataset's records.  Prints one JSON line per row:
{"index", "dataset", "table", "period", "key", "records", "slice"}.

  cold_slices.py DATABASE COLD_DIR OUT_DIR [SUFFIX]

SUFFIX is appended to each object's path (the S3 test server keeps an
object KEY in the file KEY._S3rver_object).
"""

import json
import os
import sqlite3
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import avro_util  # noqa: E402


def main():
    db, cold, out = sys.argv[1:4]
    suffix = sys.argv[4] if len(sys.argv) > 4 else ''

    os.makedirs(out, exist_ok=True)
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=10)
    rows = con.execute(
        'SELECT b.id, b.dataset_id, b.table_name, b.period_tag, f.file_path, '
        'b.start_byte, b.length, b.record_count FROM block_indexes b '
        'JOIN archived_files f ON f.id = b.file_id ORDER BY b.id').fetchall()
    headers = {}
    for (iid, ds, table, period, key, start, length, count) in rows:
        if key not in headers:
            with open(os.path.join(cold, key) + suffix, 'rb') as f:
                data = f.read()
            headers[key] = (data[:avro_util.parse_ocf(data)['header_len']],
                            data)
        header, data = headers[key]
        path = os.path.join(out, 'slice-%d.avro' % iid)
        with open(path, 'wb') as f:
            f.write(header + data[start:start + length])
        print(json.dumps({'index': iid, 'dataset': ds, 'table': table,
                          'period': period, 'key': key, 'records': count,
                          'slice': path}))


if __name__ == '__main__':
    main()
