#!/usr/bin/python3
"""Writes an Avro Object Container File of random but plausible records with
python3-avro's DataFileWriter.  Run it with /usr/bin/python3 (the Debian
interpreter that has python3-avro).

  avro_gen.py --schemas ../shared/testdata/fusou/schema_v0_5_1.json --table own_ship \\
              --records 20 --codec deflate --seed 1 --out FILE [--sync-interval BYTES]
  avro_gen.py --schema-json '{"type":"record",...}' --records 5 --out FILE
  avro_gen.py --schemas BUNDLE --list-tables        # one table name per line
  avro_gen.py --schemas BUNDLE --table T --print-schema

Options:
  --codec null|deflate|bzip2|snappy|zstandard   (what python3-avro supports here:
        --list-codecs; snappy needs the Debian package python3-snappy,
        zstandard needs python3-zstandard)
  --sync-interval BYTES  end a block once its uncompressed size reaches BYTES
  --block-records N      end a block every N records
  --meta KEY=VALUE       extra header metadata (repeatable)
  --max-items N          longest array/map (default 5)
  --null-ratio F         how often an optional (["null", T]) value is null (0.25)

The same seed gives the same bytes (sync marker included).  The header keeps
the schema text exactly as given.  On success a JSON summary line is printed:
{"file", "records", "blocks", "codec", "bytes", "sync"}.
"""

import argparse
import datetime
import decimal
import io
import json
import os
import random
import struct
import sys
import uuid
import warnings

import avro.codecs
import avro.datafile
import avro.io
import avro.schema

sys.dont_write_bytecode = True  # no __pycache__ in t/lib/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import avro_util  # noqa: E402

# python3-avro 1.11.1 (Debian 12) crashes writing None into ["null", uuid]: its
# UUIDSchema.validate calls uuid.UUID(None), a TypeError it does not catch.
_uuid_validate = avro.schema.UUIDSchema.validate
avro.schema.UUIDSchema.validate = lambda self, datum: _uuid_validate(self, datum) if isinstance(datum, str) else None

UTC = datetime.timezone.utc
# 2024-01-01 .. 2026-01-01, in ms
TS_LO, TS_HI = 1704067200000, 1767225600000
KANA = "艦隊これくしょん吹雪白雪初雪深雪叢雲磯波浦波綾波敷波大和武蔵長門陸奥ー"
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Gen:
    def __init__(self, rng, max_items=5, null_ratio=0.25, max_depth=8):
        self.rng = rng
        self.max_items = max_items
        self.null_ratio = null_ratio
        self.max_depth = max_depth

    def text(self, lo=0, hi=16):
        r = self.rng
        n = r.randint(lo, hi)
        pool = KANA if r.random() < 0.1 else ALNUM
        return "".join(r.choice(pool) for _ in range(n))

    def integer(self, bits, hint):
        r = self.rng
        h = hint.lower()
        if "timestamp" in h or h.endswith("_at") or h.endswith("time"):
            ms = r.randint(TS_LO, TS_HI)
            return ms if bits == 64 else ms // 1000
        if h == "id" or h.endswith("_id") or h.endswith("id"):
            return r.randint(1, 5000)
        if any(w in h for w in ("index", "idx", "count", "num", "no", "lv", "level")):
            return r.randint(0, 99)
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        p = r.random()
        if p < 0.70:
            return r.randint(0, 1000)
        if p < 0.90:
            return r.randint(-1000, 1000)
        if p < 0.95:
            return r.choice((lo, hi, -1, 0, 127, 128, -65, 1 << 31, -(1 << 31) - 1)
                            if bits == 64 else (lo, hi, -1, 0, 127, 128, -65))
        return r.randint(lo, hi)

    def value(self, s, hint="", depth=0):
        r = self.rng
        t = s.type
        lt = getattr(s, "logical_type", None)
        deep = depth >= self.max_depth
        if t == "null":
            return None
        if t == "boolean":
            return r.random() < 0.5
        if t == "int":
            if lt == "date":
                return datetime.date(2024, 1, 1) + datetime.timedelta(days=r.randint(0, 730))
            if lt == "time-millis":
                return (datetime.datetime(2000, 1, 1) + datetime.timedelta(milliseconds=r.randint(0, 86399999))).time()
            return self.integer(32, hint)
        if t == "long":
            if lt == "time-micros":
                return (datetime.datetime(2000, 1, 1) + datetime.timedelta(microseconds=r.randint(0, 86399999999))).time()
            if lt in ("timestamp-millis", "timestamp-micros"):
                return datetime.datetime.fromtimestamp(r.randint(TS_LO, TS_HI) / 1000, UTC).replace(
                    microsecond=r.randint(0, 999) * 1000 if lt == "timestamp-millis" else r.randint(0, 999999))
            return self.integer(64, hint)
        if t == "float":
            # round to float32 so every reader prints the same value
            return struct.unpack("<f", struct.pack("<f", r.uniform(-1000, 1000)))[0]
        if t == "double":
            return 0.0 if r.random() < 0.05 else r.uniform(-1e6, 1e6)
        if t == "string":
            if lt == "uuid":
                return str(uuid.UUID(int=r.getrandbits(128), version=4))
            return self.text()
        if t in ("bytes", "fixed"):
            if lt == "decimal":
                prec = s.get_prop("precision") or 9
                scale = s.get_prop("scale") or 0
                if t == "fixed":
                    prec = min(prec, len(str(1 << (8 * s.size - 1))) - 1)
                return decimal.Decimal(r.randint(-(10 ** prec) + 1, 10 ** prec - 1)).scaleb(-scale)
            n = s.size if t == "fixed" else r.randint(0, 16)
            return r.randbytes(n)
        if t == "enum":
            return r.choice(s.symbols)
        if t == "array":
            n = 0 if deep else r.randint(0, self.max_items)
            return [self.value(s.items, hint, depth + 1) for _ in range(n)]
        if t == "map":
            n = 0 if deep else r.randint(0, self.max_items)
            return {self.text(1, 8): self.value(s.values, hint, depth + 1) for _ in range(n)}
        if t == "union":
            branches = s.schemas
            nulls = [b for b in branches if b.type == "null"]
            others = [b for b in branches if b.type != "null"]
            if nulls and (deep or not others or r.random() < self.null_ratio):
                return None
            return self.value(r.choice(others), hint, depth + 1)
        if t in ("record", "error"):
            return {f.name: self.value(f.type, f.name, depth + 1) for f in s.fields}
        raise SystemExit("avro_gen: unsupported schema type %r" % t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schemas", help="schema bundle JSON")
    ap.add_argument("--table", help="table of the bundle")
    ap.add_argument("--schema-json", help="explicit schema (JSON text)")
    ap.add_argument("--records", type=int, default=10)
    ap.add_argument("--codec", default="null")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="output file ('-' for stdout)")
    ap.add_argument("--sync-interval", type=int, help="bytes of uncompressed data per block")
    ap.add_argument("--block-records", type=int, help="records per block")
    ap.add_argument("--meta", action="append", default=[], help="KEY=VALUE header metadata")
    ap.add_argument("--max-items", type=int, default=5)
    ap.add_argument("--null-ratio", type=float, default=0.25)
    ap.add_argument("--list-tables", action="store_true")
    ap.add_argument("--list-codecs", action="store_true")
    ap.add_argument("--print-schema", action="store_true")
    a = ap.parse_args()

    if a.list_codecs:
        print("\n".join(sorted(avro.codecs.KNOWN_CODECS)))
        return 0
    if a.list_tables:
        if not a.schemas:
            ap.error("--list-tables needs --schemas")
        for name, _ in avro_util.load_bundle(a.schemas):
            print(name)
        return 0
    if a.schema_json:
        text = a.schema_json
    elif a.schemas and a.table:
        text = avro_util.bundle_schema(a.schemas, a.table)
    else:
        ap.error("give --schema-json, or --schemas and --table")
    if a.print_schema:
        print(text)
        return 0
    if not a.out:
        ap.error("--out is required")
    if a.codec not in avro.codecs.KNOWN_CODECS:
        sys.exit("avro_gen: codec %r not supported by this python3-avro (have: %s)"
                 % (a.codec, ", ".join(sorted(avro.codecs.KNOWN_CODECS))))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an ignored logical type is a bug here
        schema = avro.schema.parse(text)
    rng = random.Random(a.seed)
    gen = Gen(rng, a.max_items, a.null_ratio)

    buf = io.BytesIO()
    w = avro.datafile.DataFileWriter(buf, avro.io.DatumWriter(), schema, codec=a.codec)
    w.sync_marker = rng.randbytes(16)
    w.set_meta("avro.schema", text.encode("utf-8"))  # keep the schema text as given
    for kv in a.meta:
        k, _, v = kv.partition("=")
        w.set_meta(k, v.encode("utf-8"))
    for _ in range(a.records):
        w.append(gen.value(schema))
        if (a.block_records and w.block_count >= a.block_records) or \
           (a.sync_interval and w.buffer_writer.tell() >= a.sync_interval):
            w.flush()
    w.flush()
    data = buf.getvalue()
    blocks = len(avro_util.parse_ocf(data)["blocks"])
    if a.out == "-":
        sys.stdout.buffer.write(data)
    else:
        with open(a.out, "wb") as f:
            f.write(data)
        print(json.dumps({"file": a.out, "records": a.records, "blocks": blocks, "codec": a.codec,
                          "bytes": len(data), "sync": w.sync_marker.hex()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
