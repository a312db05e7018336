#!/usr/bin/env node
'use strict';
/*
 * Writes an Avro Object Container File of random records with avsc (pinned in
 * the repo's package.json; `npm ci` at the repo root installs it).
 *
 *   node t/lib/avsc_gen.js --schemas ../shared/testdata/fusou/schema_v0_5_1.json \
 *        --table own_ship --records 20 --codec deflate --seed 1 --out FILE
 *   node t/lib/avsc_gen.js --schema-json '{"type":"record",...}' --records 5 --out FILE
 *   node t/lib/avsc_gen.js --schemas BUNDLE --list-tables
 *   node t/lib/avsc_gen.js --schemas BUNDLE --table T --print-schema
 *
 * Options: --codec null|deflate|snappy (snappy: literal-only compressor from
 * avsc_util.js), --block-size BYTES (avsc's uncompressed block size, default
 * 65536; small values give several blocks), --meta KEY=VALUE (repeatable).
 * Values come from avsc's Type#random(); strings with logicalType "uuid" get
 * random version-4 UUIDs.  The same --seed gives the same bytes.
 * Prints a JSON summary line: {"file","records","blocks","codec","bytes","sync"}.
 */

const fs = require('fs');
const zlib = require('zlib');
const util = require('./avsc_util');

function main() {
  const o = util.parseArgs(process.argv.slice(2), ['list-tables', 'print-schema', 'help']);
  if (o.help) {
    process.stdout.write(fs.readFileSync(__filename, 'utf8').split('*/')[0]);
    return 0;
  }
  util.seedRandom(o.seed === undefined ? 1 : o.seed); // before avsc loads
  const avro = require('avsc');

  if (o['list-tables']) {
    for (const e of util.loadBundle(o.schemas)) console.log(e.table);
    return 0;
  }
  let text;
  if (o['schema-json']) text = o['schema-json'];
  else if (o.schemas && o.table) text = util.bundleSchema(o.schemas, o.table);
  else throw new Error('give --schema-json, or --schemas and --table');
  if (o['print-schema']) {
    console.log(text);
    return 0;
  }
  if (!o.out) throw new Error('--out is required');

  class UuidType extends avro.types.LogicalType {
    _fromValue(v) { return v; }
    _toValue(v) { return v; }
    random() {
      const b = Buffer.alloc(16);
      for (let i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
      b[6] = (b[6] & 0x0F) | 0x40;
      b[8] = (b[8] & 0x3F) | 0x80;
      const h = b.toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    }
  }

  const schema = JSON.parse(text);
  const genType = avro.Type.forSchema(schema, { logicalTypes: { uuid: UuidType } });
  const codec = o.codec || 'null';
  const metadata = {};
  for (const kv of [].concat(o.meta || [])) {
    const i = kv.indexOf('=');
    metadata[kv.slice(0, i)] = Buffer.from(kv.slice(i + 1));
  }
  const sync = Buffer.alloc(16);
  for (let i = 0; i < 16; i++) sync[i] = Math.floor(Math.random() * 256);

  // The header gets JSON.stringify(schema): the bundle's compact text unchanged.
  const enc = new avro.streams.BlockEncoder(schema, {
    codec,
    codecs: { null: (b, cb) => cb(null, b), deflate: zlib.deflateRaw, snappy: util.codecs.snappyCompress },
    blockSize: o['block-size'] ? Number(o['block-size']) : undefined,
    syncMarker: sync,
    metadata,
  });
  const n = o.records === undefined ? 10 : Number(o.records);
  const chunks = [];
  enc.on('data', (c) => chunks.push(c));
  enc.on('error', (e) => { console.error(`avsc_gen: ${e.message}`); process.exit(1); });
  enc.on('end', () => {
    const data = Buffer.concat(chunks);
    if (o.out === '-') {
      process.stdout.write(data);
      return;
    }
    fs.writeFileSync(o.out, data);
    console.log(JSON.stringify({
      file: o.out, records: n, blocks: countBlocks(data), codec, bytes: data.length, sync: sync.toString('hex'),
    }));
  });
  for (let i = 0; i < n; i++) enc.write(genType.random());
  enc.end();
  return undefined;
}

/* Counts blocks by walking the framing (header map, then count/size/data/sync). */
function countBlocks(buf) {
  let pos = 4;
  const long = () => {
    let z = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length) throw new Error('countBlocks: truncated file');
      const b = buf[pos++];
      z |= BigInt(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
    }
    return Number((z >> 1n) ^ -(z & 1n));
  };
  for (let n = long(); n !== 0; n = long()) {
    if (n < 0) { n = -n; long(); }
    for (let i = 0; i < 2 * n; i++) { const len = long(); pos += len; } // key, value
  }
  pos += 16;
  let blocks = 0;
  while (pos < buf.length) { long(); const size = long(); pos += size + 16; blocks++; }
  return blocks;
}

try {
  const rc = main();
  if (rc !== undefined) process.exitCode = rc;
} catch (e) {
  console.error(`avsc_gen: ${e.message}`);
  process.exit(2);
}
