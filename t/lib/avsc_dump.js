#!/usr/bin/env node
'use strict';
/*
 * Prints an Avro Object Container File as canonical JSON lines, read with
 * avsc's BlockDecoder.  The output is byte-identical to t/lib/avro_dump.py's
 * for the same file (see avro_util.py for the canonical form).
 *
 *   node t/lib/avsc_dump.js FILE           header line, then one line per record
 *   node t/lib/avsc_dump.js -r FILE        records only
 *   node t/lib/avsc_dump.js --count FILE   number of records only
 *
 * Codecs: null, deflate, snappy.  Longs are read as BigInt (exact over the
 * whole 64-bit range); logical types are not applied; unions are unwrapped.
 * Exit status: 0 ok, 1 malformed file or decode error, 2 usage.
 */

const fs = require('fs');
const zlib = require('zlib');
const util = require('./avsc_util');
const avro = require('avsc');

const BigLong = avro.types.LongType.__with({
  fromBuffer: (b) => b.readBigInt64LE(),
  toBuffer: (n) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b; },
  fromJSON: (x) => BigInt(x),
  toJSON: (n) => Number(n),
  isValid: (n) => typeof n === 'bigint',
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

function typeHook(s) {
  if (s === 'long' || (s && typeof s === 'object' && !Array.isArray(s) && s.type === 'long')) return BigLong;
  return undefined;
}

/* Decoded value -> plain value, guided by the type (wrapped unions unwrapped). */
function plain(type, v) {
  const name = type.typeName;
  switch (name) {
    case 'record':
    case 'error': {
      const o = {};
      for (const f of type.fields) o[f.name] = plain(f.type, v[f.name]);
      return o;
    }
    case 'array': return v.map((x) => plain(type.itemsType, x));
    case 'map': {
      const o = {};
      for (const k of Object.keys(v)) o[k] = plain(type.valuesType, v[k]);
      return o;
    }
    case 'union:wrapped': {
      if (v === null) return null;
      const k = Object.keys(v)[0];
      const branch = type.types.find((t) => t.branchName === k);
      return plain(branch, v[k]);
    }
    default: return v; // primitives, enum (string), bytes/fixed (Buffer), BigInt
  }
}

function main() {
  const o = util.parseArgs(process.argv.slice(2), ['records-only', 'count', 'help']);
  if (o.help || o._.length !== 1) {
    process.stderr.write(fs.readFileSync(__filename, 'utf8').split('*/')[0] + '\n');
    process.exit(2);
  }
  const file = o._[0];
  const input = file === '-' ? process.stdin : fs.createReadStream(file);
  const fail = (e) => { console.error(`avsc_dump: ${file}: ${e.message || e}`); process.exit(1); };
  const out = [];
  let type = null;
  let count = 0;
  const dec = new avro.streams.BlockDecoder({
    codecs: { null: (b, cb) => cb(null, b), deflate: zlib.inflateRaw, snappy: util.codecs.snappyDecompress },
    parseHook: (schema) => avro.Type.forSchema(schema, { wrapUnions: 'always', typeHook }),
  });
  input.on('error', fail);
  dec.on('error', fail);
  dec.on('metadata', (t, codec, header) => {
    type = t;
    if (o.count || o['records-only']) return;
    const meta = {};
    for (const k of Object.keys(header.meta)) if (!k.startsWith('avro.')) meta[k] = header.meta[k];
    out.push(util.canon({
      codec, meta, schema: JSON.parse(header.meta['avro.schema'].toString('utf8')), sync: header.sync.toString('hex'),
    }));
  });
  dec.on('data', (v) => {
    count++;
    if (!o.count) out.push(util.canon(plain(type, v)));
  });
  dec.on('end', () => {
    if (o.count) out.push(String(count));
    process.stdout.write(out.length ? out.join('\n') + '\n' : '');
  });
  input.pipe(dec);
}

main();
