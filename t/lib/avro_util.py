"""Small helpers shared by the Python test tools in t/lib/.

Nothing here uses python3-avro, so hostile.py can frame broken files by hand:

  * schema bundles (../shared/testdata/fusou/schema_v*.json):
    {"table_version": "...", "schemas": [{"table_name": ..., "schema": <JSON text or object>}]}
  * Avro varints (zig-zag longs) and Object Container File framing
  * the canonical JSON used by avro_dump.py and avsc_dump.js, so that their
    outputs for the same file are byte-identical: object keys sorted, bytes and
    fixed as latin-1 strings (one char per byte, like Avro's JSON encoding),
    numbers printed as JavaScript prints them, NaN/Infinity as strings.
"""

import json
import math
from decimal import Decimal

MAGIC = b"Obj\x01"
SYNC_SIZE = 16


class FramingError(Exception):
    pass


# --- schema bundles ---------------------------------------------------------

def load_bundle(path):
    """Returns [(table_name, schema_text)] in bundle order."""
    with open(path, encoding="utf-8") as f:
        bundle = json.load(f)
    out = []
    for entry in bundle["schemas"]:
        schema = entry["schema"]
        if not isinstance(schema, str):
            schema = json.dumps(schema, separators=(",", ":"))
        out.append((entry["table_name"], schema))
    return out


def bundle_schema(path, table):
    for name, text in load_bundle(path):
        if name == table:
            return text
    raise SystemExit("table %r not in %s" % (table, path))


# --- varints ----------------------------------------------------------------

def enc_long(n):
    """Zig-zag varint of a signed 64-bit value (larger values are allowed on
    purpose: hostile files need them)."""
    z = (n << 1) if n >= 0 else ((-n) << 1) - 1
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_long(buf, pos):
    """Returns (value, new_pos); raises FramingError on truncation or > 10 bytes."""
    shift = 0
    z = 0
    for i in range(10):
        if pos >= len(buf):
            raise FramingError("truncated varint at offset %d" % pos)
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            return (z >> 1) ^ -(z & 1), pos
        shift += 7
    raise FramingError("varint longer than 10 bytes at offset %d" % pos)


def enc_bytes(b):
    return enc_long(len(b)) + b


def enc_string(s):
    return enc_bytes(s.encode("utf-8"))


# --- OCF framing ------------------------------------------------------------

def ocf_header(meta, sync):
    """meta: dict str -> bytes|str (insertion order kept)."""
    out = bytearray(MAGIC)
    if meta:
        out += enc_long(len(meta))
        for k, v in meta.items():
            if isinstance(v, str):
                v = v.encode("utf-8")
            out += enc_string(k) + enc_bytes(v)
    out += enc_long(0)
    out += sync
    return bytes(out)


def ocf_block(count, data, sync):
    return enc_long(count) + enc_long(len(data)) + data + sync


def parse_ocf(data):
    """Parses the framing of a whole OCF (no decompression).

    Returns {"meta": {str: bytes}, "sync": bytes, "header_len": int,
             "blocks": [{"offset", "count", "size", "data_offset"}]}.
    Raises FramingError for anything that is not a well-framed file."""
    if data[:4] != MAGIC:
        raise FramingError("bad magic %r" % data[:4])
    pos = 4
    meta = {}
    while True:
        n, pos = read_long(data, pos)
        if n == 0:
            break
        if n < 0:
            n, pos = -n, read_long(data, pos)[1]
        for _ in range(n):
            klen, pos = read_long(data, pos)
            if klen < 0 or pos + klen > len(data):
                raise FramingError("bad metadata key length")
            key = data[pos:pos + klen].decode("utf-8")
            pos += klen
            vlen, pos = read_long(data, pos)
            if vlen < 0 or pos + vlen > len(data):
                raise FramingError("bad metadata value length")
            meta[key] = bytes(data[pos:pos + vlen])
            pos += vlen
    if pos + SYNC_SIZE > len(data):
        raise FramingError("truncated header")
    sync = bytes(data[pos:pos + SYNC_SIZE])
    pos += SYNC_SIZE
    header_len = pos
    blocks = []
    while pos < len(data):
        start = pos
        count, pos = read_long(data, pos)
        size, pos = read_long(data, pos)
        if count < 0 or size < 0:
            raise FramingError("negative block count/size at offset %d" % start)
        if pos + size + SYNC_SIZE > len(data):
            raise FramingError("block at offset %d overruns the file" % start)
        data_offset = pos
        pos += size
        if data[pos:pos + SYNC_SIZE] != sync:
            raise FramingError("sync marker mismatch after block %d (offset %d)" % (len(blocks), start))
        pos += SYNC_SIZE
        blocks.append({"offset": start, "count": count, "size": size, "data_offset": data_offset})
    return {"meta": meta, "sync": sync, "header_len": header_len, "blocks": blocks}


# --- canonical JSON ---------------------------------------------------------

def js_number(x):
    """Formats a float exactly like JavaScript's Number.prototype.toString."""
    if math.isnan(x):
        return '"NaN"'
    if math.isinf(x):
        return '"Infinity"' if x > 0 else '"-Infinity"'
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr() gives the shortest round-tripping digits, as JS does.
    t = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, t.digits))
    k = len(digits)
    n = t.exponent + k  # value = 0.digits * 10^n
    if k <= n <= 21:
        s = digits + "0" * (n - k)
    elif 0 < n <= 21:
        s = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        s = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        s = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    return sign + s


def canon(v):
    """Canonical JSON text of a decoded Avro value (see module docstring)."""
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return js_number(v)
    if isinstance(v, (bytes, bytearray)):
        return json.dumps(bytes(v).decode("latin-1"), ensure_ascii=False)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        return "{" + ",".join(json.dumps(str(k), ensure_ascii=False) + ":" + canon(v[k])
                              for k in sorted(v, key=lambda s: str(s).encode("utf-16-be"))) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(canon(x) for x in v) + "]"
    raise TypeError("cannot canonicalize %r" % type(v))
