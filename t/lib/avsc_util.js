'use strict';
/*
 * Helpers shared by avsc_gen.js and avsc_dump.js (the avsc side of the test
 * tooling; the Python side is avro_util.py):
 *   - a seedable Math.random (call seedRandom() before require('avsc'), whose
 *     internal generator seeds itself from Math.random at load time)
 *   - schema bundles ({"schemas":[{"table_name","schema"}]})
 *   - the Avro "snappy" codec: raw snappy + 4-byte big-endian CRC32 of the
 *     uncompressed data.  The compressor only emits literals (valid snappy,
 *     no compression); the decompressor handles the whole format.
 *   - canonical JSON identical to avro_util.canon() (sorted keys, bytes as
 *     latin-1 strings, JavaScript number formatting, NaN/Infinity as strings)
 */

const fs = require('fs');

function seedRandom(seed) {
  let a = (Number(seed) >>> 0) || 1;
  Math.random = function () { // mulberry32
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function loadBundle(path) {
  const bundle = JSON.parse(fs.readFileSync(path, 'utf8'));
  return bundle.schemas.map((e) => ({
    table: e.table_name,
    text: typeof e.schema === 'string' ? e.schema : JSON.stringify(e.schema),
  }));
}

function bundleSchema(path, table) {
  const e = loadBundle(path).find((x) => x.table === table);
  if (!e) throw new Error(`table ${table} not in ${path}`);
  return e.text;
}

/* Minimal option parser: --name value, --flag; positional arguments. */
function parseArgs(argv, flags) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const k = a.slice(2);
      if (flags.includes(k)) o[k] = true;
      else if (i + 1 < argv.length) (o[k] = o[k] === undefined ? argv[++i] : [].concat(o[k], argv[++i]));
      else throw new Error(`option ${a} needs a value`);
    } else if (a === '-r') {
      o['records-only'] = true;
    } else {
      o._.push(a);
    }
  }
  return o;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xFFFFFFFF;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xFF] ^ (c >>> 8);
  return (c ^ 0xFFFFFFFF) >>> 0;
}

function uvarint(n) {
  const out = [];
  while (n >= 0x80) { out.push((n & 0x7F) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return Buffer.from(out);
}

function snappyCompress(buf) {
  const parts = [uvarint(buf.length)];
  for (let off = 0; off < buf.length; off += 65536) {
    const chunk = buf.subarray(off, Math.min(off + 65536, buf.length));
    const n = chunk.length - 1;
    if (n < 60) parts.push(Buffer.from([n << 2]));
    else if (n < 256) parts.push(Buffer.from([60 << 2, n]));
    else parts.push(Buffer.from([61 << 2, n & 0xFF, n >>> 8]));
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}

function snappyDecompress(src) {
  let pos = 0;
  let len = 0;
  for (let shift = 0; ; shift += 7) {
    if (pos >= src.length || shift > 28) throw new Error('snappy: bad length preamble');
    const b = src[pos++];
    len += (b & 0x7F) * 2 ** shift;
    if (!(b & 0x80)) break;
  }
  const out = Buffer.alloc(len);
  let o = 0;
  const need = (n) => { if (pos + n > src.length) throw new Error('snappy: truncated input'); };
  while (pos < src.length) {
    const tag = src[pos++];
    let n;
    let off;
    switch (tag & 3) {
      case 0: {
        n = tag >>> 2;
        if (n >= 60) {
          const k = n - 59;
          need(k);
          n = 0;
          for (let i = 0; i < k; i++) n += src[pos + i] * 2 ** (8 * i);
          pos += k;
        }
        n += 1;
        need(n);
        if (o + n > len) throw new Error('snappy: output overrun');
        src.copy(out, o, pos, pos + n);
        pos += n;
        o += n;
        continue;
      }
      case 1: need(1); n = ((tag >>> 2) & 7) + 4; off = ((tag >>> 5) << 8) | src[pos++]; break;
      case 2: need(2); n = (tag >>> 2) + 1; off = src.readUInt16LE(pos); pos += 2; break;
      default: need(4); n = (tag >>> 2) + 1; off = src.readUInt32LE(pos); pos += 4; break;
    }
    if (off === 0 || off > o || o + n > len) throw new Error('snappy: bad copy');
    for (let i = 0; i < n; i++, o++) out[o] = out[o - off];
  }
  if (o !== len) throw new Error('snappy: length mismatch');
  return out;
}

/* Codec functions in avsc's (buf, callback) form. */
const codecs = {
  snappyCompress(buf, cb) {
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(buf));
    cb(null, Buffer.concat([snappyCompress(buf), crc]));
  },
  snappyDecompress(buf, cb) {
    try {
      if (buf.length < 4) throw new Error('snappy: block shorter than its CRC');
      const out = snappyDecompress(buf.subarray(0, buf.length - 4));
      if (crc32(out) !== buf.readUInt32BE(buf.length - 4)) throw new Error('snappy: CRC mismatch');
      cb(null, out);
    } catch (e) {
      cb(e);
    }
  },
};

function jsonString(s) {
  return JSON.stringify(s);
}

/* Canonical JSON of a plain value (Buffers and BigInts allowed). */
function canon(v) {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') {
    if (Number.isNaN(v)) return '"NaN"';
    if (!Number.isFinite(v)) return v > 0 ? '"Infinity"' : '"-Infinity"';
    return String(v);
  }
  if (typeof v === 'string') return jsonString(v);
  if (Buffer.isBuffer(v)) return jsonString(v.toString('latin1'));
  if (Array.isArray(v)) return '[' + v.map(canon).join(',') + ']';
  const keys = Object.keys(v).sort();
  return '{' + keys.map((k) => jsonString(k) + ':' + canon(v[k])).join(',') + '}';
}

module.exports = {
  seedRandom, loadBundle, bundleSchema, parseArgs, crc32, snappyCompress,
  snappyDecompress, codecs, canon,
};
