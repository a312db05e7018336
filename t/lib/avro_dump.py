#!/usr/bin/python3
"""Prints an Avro Object Container File as canonical JSON lines, read with
python3-avro (run with /usr/bin/python3).  t/lib/avsc_dump.js prints the very
same text for the same file, so outputs of the two readers can be compared
with a plain string comparison.

  avro_dump.py FILE            header line, then one line per record
  avro_dump.py -r FILE         records only
  avro_dump.py --count FILE    number of records only
  avro_dump.py --blocks FILE   one line per block: {"block","offset","count","size"}
  avro_dump.py --strict FILE   also fail on a block with a zero record count
  (FILE may be '-' for stdin)

Header line: {"codec": ..., "meta": {other non-"avro." keys}, "schema": <parsed
schema JSON>, "sync": "<hex>"}.
Records: values as decoded without logical types (a uuid is its string, a
timestamp-millis its long); unions unwrapped; bytes/fixed as latin-1 strings;
object keys sorted; numbers formatted like JavaScript; NaN/Infinity as strings.

Before decoding, the framing is checked by hand (python3-avro's reader skips a
wrong sync marker silently): magic, every block's sync marker, no trailing
bytes.  Exit status: 0 ok, 1 malformed file or decode error, 2 usage.
"""

import io
import json
import sys
import os

sys.dont_write_bytecode = True  # no __pycache__ in t/lib/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import avro_util  # noqa: E402


def strip_logical(s):
    if isinstance(s, dict):
        return {k: strip_logical(v) for k, v in s.items() if k != "logicalType"}
    if isinstance(s, list):
        return [strip_logical(x) for x in s]
    return s


def main(argv):
    opts = {a for a in argv if a.startswith("-") and a != "-"}
    args = [a for a in argv if not (a.startswith("-") and a != "-")]
    known = {"-r", "--records-only", "--count", "--blocks", "--strict", "-h", "--help"}
    if opts - known or len(args) != 1 or opts & {"-h", "--help"}:
        sys.stderr.write(__doc__)
        return 2
    path = args[0]
    data = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()

    try:
        frame = avro_util.parse_ocf(data)
    except avro_util.FramingError as e:
        sys.stderr.write("avro_dump: %s: %s\n" % (path, e))
        return 1
    if "--strict" in opts:
        for i, b in enumerate(frame["blocks"]):
            if b["count"] == 0:
                sys.stderr.write("avro_dump: %s: block %d has a zero record count\n" % (path, i))
                return 1
    out = sys.stdout
    if "--blocks" in opts:
        for i, b in enumerate(frame["blocks"]):
            out.write(avro_util.canon({"block": i, "offset": b["offset"], "count": b["count"],
                                       "size": b["size"]}) + "\n")
        return 0

    meta = frame["meta"]
    codec = meta.get("avro.codec", b"null").decode("utf-8") or "null"
    schema_json = json.loads(meta["avro.schema"].decode("utf-8"))

    import avro.datafile
    import avro.io
    import avro.schema

    rd = avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader())
    try:
        plain = avro.schema.parse(json.dumps(strip_logical(schema_json)))
        rd.datum_reader.writers_schema = plain
        rd.datum_reader.readers_schema = plain
        if "--count" in opts:
            print(sum(1 for _ in rd))
            return 0
        if not ({"-r", "--records-only"} & opts):
            other = {k: v for k, v in meta.items() if not k.startswith("avro.")}
            out.write(avro_util.canon({"codec": codec, "meta": other, "schema": schema_json,
                                       "sync": frame["sync"].hex()}) + "\n")
        for rec in rd:
            out.write(avro_util.canon(rec) + "\n")
    except Exception as e:  # decode errors of any kind: report, exit 1
        sys.stderr.write("avro_dump: %s: %s: %s\n" % (path, type(e).__name__, e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
