#!/usr/bin/python3
"""Writes one hot row of the store as a standalone Avro container file: the
stream's header (schema, codec, sync marker from the streams table) followed
by the row's blocks, exactly as the archiver will concatenate them.  Any
Avro reader can then check what the module stored.

  hot_export.py DATABASE ROW_ID OUT
"""

import sqlite3
import sys

import avro_util


def main():
    db, row_id, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=10)
    row = con.execute(
        'SELECT b.data, s.schema_json, st.codec, st.sync '
        'FROM buffer_logs b JOIN streams st ON st.id = b.stream_id '
        'JOIN schemas s ON s.fingerprint = st.schema_fingerprint '
        'WHERE b.id = ?', (row_id,)).fetchone()
    if row is None:
        sys.exit('no hot row %d' % row_id)
    data, schema, codec, sync = row
    meta = {'avro.schema': schema.encode(), 'avro.codec': codec.encode()}
    with open(out, 'wb') as f:
        f.write(avro_util.ocf_header(meta, bytes(sync)))
        f.write(bytes(data))


if __name__ == '__main__':
    main()
