#!/usr/bin/python3
"""Writes a directory of hostile Avro uploads, one file per case, plus a
manifest of the HTTP status each one should get.  The framing is written by
hand (avro_util.py), so no python3-avro is needed.

  hostile.py OUTDIR [--seed N] [--only CASE,CASE] [--bomb-bytes N]

Files: OUTDIR/<case>.avro for every case, OUTDIR/valid.avro (the well-formed
file most cases are derived from: table env_info of the fusou bundles, null
codec, 3 blocks of 5 records) and OUTDIR/manifest.json:

  {"control": {"name": "valid", "file": "valid.avro", "status": 201, "records": 15,
               "table": "env_info", "description": ...},
   "cases": [{"name": "truncated", "file": "truncated.avro", "status": 400,
              "description": ...}, ...]}

"file" is relative to the manifest.  Cases whose schema is not env_info's
(deep_nesting, deflate_bomb, nulls_2_40, schema_deep) only reach their
intended check if the upload location accepts that schema for the table.
deflate_bomb takes about 3 s (1 GiB of zeros through zlib level 9; the file
is about 1 MiB); --bomb-bytes makes a smaller one for quick runs.
"""

import argparse
import json
import os
import random
import sys
import uuid
import zlib

sys.dont_write_bytecode = True  # no __pycache__ in t/lib/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from avro_util import enc_long, enc_string, ocf_block, ocf_header, parse_ocf, MAGIC  # noqa: E402

ENV_INFO = ('{"type":"record","name":"EnvInfo","fields":[{"name":"version","type":"string"},'
            '{"name":"uuid","type":{"type":"string","logicalType":"uuid"}},'
            '{"name":"user_env_unique","type":"string"},{"name":"timestamp","type":"long"}]}')
DEEP = 10000
GIB = 1 << 30


def env_record(rng):
    return (enc_string("0.5.1")
            + enc_string(str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            + enc_string("%032x" % rng.getrandbits(128))
            + enc_long(rng.randint(1704067200000, 1767225600000)))


def deflate(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


class Cases:
    def __init__(self, rng, bomb_bytes):
        self.rng = rng
        self.bomb_bytes = bomb_bytes
        self.sync = rng.randbytes(16)
        self.header = ocf_header({"avro.schema": ENV_INFO, "avro.codec": "null"}, self.sync)
        self.blocks = [[env_record(rng) for _ in range(5)] for _ in range(3)]
        self.valid = self.header + b"".join(ocf_block(len(b), b"".join(b), self.sync) for b in self.blocks)

    def hdr(self, schema, codec="null"):
        return ocf_header({"avro.schema": schema, "avro.codec": codec}, self.sync)

    # --- malformed: 400 ---

    def truncated(self):
        """the valid file cut in half (inside a block, never on a boundary)"""
        frame = parse_ocf(self.valid)
        cut = len(self.valid) // 2
        if cut <= frame["header_len"] or any(cut == b["offset"] for b in frame["blocks"]):
            cut += 1
        return self.valid[:cut]

    def bad_magic(self):
        """'Obj\\x02' instead of 'Obj\\x01'"""
        return b"Obj\x02" + self.valid[4:]

    def bad_sync(self):
        """the sync marker after block 2 has one byte changed"""
        b = parse_ocf(self.valid)["blocks"][1]
        at = b["data_offset"] + b["size"] + 7
        data = bytearray(self.valid)
        data[at] ^= 0xFF
        return bytes(data)

    def negative_length(self):
        """a record whose first string field has length -5"""
        rec = enc_long(-5) + b"hello" + env_record(self.rng)[6:]
        return self.header + ocf_block(1, rec, self.sync)

    def huge_length(self):
        """a block declaring 2^60 bytes of data (the file then ends)"""
        return self.header + enc_long(5) + enc_long(1 << 60) + b"".join(self.blocks[0])

    def huge_count(self):
        """a block declaring 2^50 records around the bytes of 5"""
        return self.header + ocf_block(1 << 50, b"".join(self.blocks[0]), self.sync)

    def zero_count_block(self):
        """an empty block (count 0, size 0) between two valid blocks"""
        b = self.blocks
        return (self.header + ocf_block(5, b"".join(b[0]), self.sync) + ocf_block(0, b"", self.sync)
                + ocf_block(5, b"".join(b[1]), self.sync))

    def not_avro(self):
        """4 KiB of random bytes"""
        data = self.rng.randbytes(4096)
        return data if data[:4] != MAGIC else b"X" + data[1:]

    # --- over limits: 413 ---

    def deep_nesting(self):
        """recursive schema N{next: [null, N]}, one record nested 10,000 deep, deflate"""
        schema = '{"type":"record","name":"N","fields":[{"name":"next","type":["null","N"]}]}'
        rec = b"\x02" * DEEP + b"\x00"  # branch 1 (N) DEEP times, then branch 0 (null)
        return self.hdr(schema, "deflate") + ocf_block(1, deflate(rec), self.sync)

    def deflate_bomb(self):
        """deflate block inflating to > 1 GiB of zeros: records Z{n: int}, all 0, count matches"""
        schema = '{"type":"record","name":"Z","fields":[{"name":"n","type":"int"}]}'
        total = self.bomb_bytes
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        zeros = bytes(1 << 20)
        parts = []
        left = total
        while left > 0:
            n = min(left, len(zeros))
            parts.append(c.compress(zeros[:n] if n < len(zeros) else zeros))
            left -= n
        parts.append(c.flush())
        return self.hdr(schema, "deflate") + ocf_block(total, b"".join(parts), self.sync)

    def nulls_2_40(self):
        """record R{a: array<null>}, one record whose array block count is 2^40 (7 bytes of data)"""
        schema = '{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"array","items":"null"}}]}'
        rec = enc_long(1 << 40) + enc_long(0)
        return self.hdr(schema) + ocf_block(1, rec, self.sync)

    def schema_deep(self):
        """schema R{a: array<array<...<int>>>} nested 10,000 deep; one record with an empty array"""
        schema = ('{"type":"record","name":"R","fields":[{"name":"a","type":'
                  + '{"type":"array","items":' * DEEP + '"int"' + "}" * DEEP + "}]}")
        return self.hdr(schema) + ocf_block(1, enc_long(0), self.sync)

    # --- unsupported: 415 ---

    def unknown_codec(self):
        """avro.codec "lzma" (records stored uncompressed)"""
        hdr = ocf_header({"avro.schema": ENV_INFO, "avro.codec": "lzma"}, self.sync)
        return hdr + ocf_block(5, b"".join(self.blocks[0]), self.sync)


# (case, expected HTTP status), in manifest order
CASES = [
    ("truncated", 400), ("bad_magic", 400), ("bad_sync", 400), ("negative_length", 400),
    ("huge_length", 400), ("huge_count", 413), ("zero_count_block", 400),
    ("deep_nesting", 413), ("deflate_bomb", 413), ("nulls_2_40", 413),
    ("unknown_codec", 415), ("schema_deep", 413), ("not_avro", 400),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="comma-separated case names")
    ap.add_argument("--bomb-bytes", type=int, default=GIB + (1 << 20),
                    help="inflated size of deflate_bomb (default 1 GiB + 1 MiB)")
    a = ap.parse_args()
    names = [n for n, _ in CASES]
    only = a.only.split(",") if a.only else names
    bad = set(only) - set(names)
    if bad:
        ap.error("unknown case(s): %s (have: %s)" % (", ".join(sorted(bad)), ", ".join(names)))

    os.makedirs(a.outdir, exist_ok=True)
    cases = Cases(random.Random(a.seed), a.bomb_bytes)
    with open(os.path.join(a.outdir, "valid.avro"), "wb") as f:
        f.write(cases.valid)
    manifest = {
        "control": {"name": "valid", "file": "valid.avro", "status": 201, "records": 15,
                    "table": "env_info", "description": "well-formed env_info upload the cases derive from"},
        "cases": [],
    }
    for name, status in CASES:
        if name not in only:
            continue
        fn = getattr(cases, name)
        data = fn()
        with open(os.path.join(a.outdir, name + ".avro"), "wb") as f:
            f.write(data)
        manifest["cases"].append({"name": name, "file": name + ".avro", "status": status,
                                  "bytes": len(data), "description": fn.__doc__})
    path = os.path.join(a.outdir, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
