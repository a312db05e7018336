#!/usr/bin/env bash
# Archive benchmark: fills a hot store with at least BENCH_BYTES of
# realistic uploads (own_ship and battle records, many datasets) through
# nginx, then times one archive cycle into a file: cold store, and in the
# same run copies the same number of bytes as plain files into the same
# filesystem with `curl -T file://`.  Prints both MB/s and their ratio, the
# compression against gzip -6 of the same records, and the peak RSS growth
# of the workers during the cycle.
set -euo pipefail
cd "$(dirname "$0")/.."

BYTES=${BENCH_BYTES:-1073741824}
PORT=${BENCH_PORT:-18472}
dir=$(mktemp -d /tmp/avro-archive-bench.XXXXXX)
trap 'kill $(cat $dir/nginx.pid 2>/dev/null) 2>/dev/null || true; sleep 0.5; rm -rf $dir' EXIT

# distinct files, so that the records are not one upload repeated
for s in 1 2 3 4 5 6 7 8; do
    for t in own_ship battle; do
        /usr/bin/python3 t/lib/avro_gen.py \
            --schemas ../shared/testdata/fusou/schema_v0_5_1.json --table $t \
            --records 40 --codec deflate --seed $s --out $dir/$t-$s.avro \
            > /dev/null
    done
done

cat > $dir/nginx.conf <<CONF
load_module $PWD/build/nginx/ngx_http_avro_module.so;
worker_processes 2;
user root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $dir/body;
    avro_hot_store $dir/hot/hot.db synchronous=normal;
    avro_cold_store file:$dir/cold;
    avro_archive interval=24h;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }
        location = /status  { avro_status; }
    }
}
CONF
nginx -p $dir/ -c $dir/nginx.conf
sleep 0.5

hot_bytes() { curl -s http://127.0.0.1:$PORT/status | sed 's/.*"hot":{[^}]*"bytes":\([0-9]*\).*/\1/'; }

round=0
while [ "$(hot_bytes)" -lt "$BYTES" ]; do
    round=$((round + 1))
    s=$((round % 8 + 1))
    for t in own_ship battle; do
        BENCH_BODY=$dir/$t-$s.avro BENCH_PATH=/upload BENCH_ROUND=$t$round BENCH_TABLE=$t \
            wrk -t2 -c64 -d1s -s bench/upload.lua http://127.0.0.1:$PORT/ \
            > /dev/null
    done
done
hot=$(hot_bytes)

rss() { ps -o rss= --ppid "$(cat $dir/nginx.pid)" | awk '{s += $1} END {print s}'; }
rss0=$(rss); peak=$rss0
( while sleep 0.05; do r=$(rss); [ "$r" -gt "$(cat $dir/peak 2>/dev/null || echo 0)" ] && echo "$r" > $dir/peak; done ) &
sampler=$!
start=$(date +%s.%N)
summary=$(curl -s -X POST http://127.0.0.1:$PORT/archive)
end=$(date +%s.%N)
kill $sampler
peak=$(cat $dir/peak 2>/dev/null || echo "$rss0")
archived=$(echo "$summary" | sed 's/.*"bytes":\([0-9]*\).*/\1/')
secs=$(echo "$end - $start" | bc -l)

# baseline: the same bytes as plain files into the same filesystem
mkdir -p $dir/plain
bstart=$(date +%s.%N)
for f in $(find $dir/cold -name '*.avro'); do
    curl -s -T "$f" "file://$dir/plain/$(basename "$f")"
done
sync
bend=$(date +%s.%N)
bsecs=$(echo "$bend - $bstart" | bc -l)

gz=$(/usr/bin/python3 - "$dir/cold" <<'PY'
import gzip, os, sys, zlib
sys.path.insert(0, 't/lib')
import avro_util
raw = 0
gzipped = 0
per_block = 0
for root, _, files in os.walk(sys.argv[1]):
    for name in files:
        data = open(os.path.join(root, name), 'rb').read()
        ocf = avro_util.parse_ocf(data)
        blocks = [zlib.decompress(data[b['data_offset']:b['data_offset'] + b['size']], -15)
                  for b in ocf['blocks']]
        plain = b''.join(blocks)
        per_block += sum(len(gzip.compress(x, 6)) for x in blocks)
        raw += len(plain)
        gzipped += len(gzip.compress(plain, 6))
print(raw, gzipped, per_block)
PY
)

echo "hot store before the cycle: $hot bytes of uploads"
echo "archive cycle: $summary"
printf 'archive (file:):   %8.1f MB/s  (%d bytes in %.2f s)\n' "$(echo "$archived / $secs / 1000000" | bc -l)" "$archived" "$secs"
printf 'curl -T (file://): %8.1f MB/s  (%.2f s)\n' "$(echo "$archived / $bsecs / 1000000" | bc -l)" "$bsecs"
printf 'ratio archive/curl: %7.3f   (target >= 0.7)\n' "$(echo "$bsecs / $secs" | bc -l)"
set -- $gz
printf 'records: %d bytes raw; archived %d bytes (deflate, %.3f of raw)\n' "$1" "$archived" "$(echo "$archived / $1" | bc -l)"
printf 'gzip -6 of each upload'"'"'s records: %d bytes: archive/gzip %.3f\n' "$3" "$(echo "$archived / $3" | bc -l)"
printf 'gzip -6 of all records as one stream: %d bytes (the bench repeats 16 files)\n' "$2"
printf 'workers RSS: %d KiB before, peak %d KiB: growth %d KiB (target < 65536)\n' "$rss0" "$peak" "$((peak - rss0))"
