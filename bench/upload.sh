#!/usr/bin/env bash
# Upload benchmark: wrk posts a realistic ~4 KiB Avro upload (own_ship
# records, deflate) to an avro_upload location and the same body to a
# `return 204;` location of the same nginx, alternating, in the same run.
# Prints both rates, the upload's p99 latency and the ratio, then checks
# that every acknowledged upload is committed in the hot store.
# BENCH_MODULE=/path/to/ngx_http_avro_module.so loads another build of
# the module, to compare two builds in alternated runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CONNS=${BENCH_CONNECTIONS:-256}
PORT=${BENCH_PORT:-18471}
SYNC=${BENCH_SYNC:-full}
dir=$(mktemp -d /tmp/avro-bench.XXXXXX)
[ -n "${BENCH_KEEP:-}" ] || trap 'kill $(cat $dir/nginx.pid 2>/dev/null) 2>/dev/null || true; sleep 0.5; rm -rf $dir' EXIT

# ~4 KiB own_ship file, deflate, written by python3-avro
/usr/bin/python3 t/lib/avro_gen.py \
    --schemas ../shared/testdata/fusou/schema_v0_5_1.json --table own_ship \
    --records 22 --codec deflate --seed 42 --out $dir/body.avro > /dev/null
size=$(stat -c %s $dir/body.avro)

{ bench_conf_head $dir; cat <<CONF
    avro_hot_store $dir/hot/hot.db synchronous=$SYNC;
    server {
        listen 127.0.0.1:$PORT reuseport backlog=4096;
        location = /upload { avro_upload; }
        location = /bare { return 204; }
    }
}
CONF
} > $dir/nginx.conf

nginx -p $dir/ -c $dir/nginx.conf
sleep 0.5

run() {
    BENCH_BODY=$dir/body.avro BENCH_PATH=$1 BENCH_ROUND=$2 wrk -t2 -c$CONNS -d${DURATION}s \
        --latency -s bench/upload.lua http://127.0.0.1:$PORT/ \
        | sed -n 's/^RESULT //p'
}


bare_all=(); up_all=(); p99_all=(); acked=0
for i in $(seq $ROUNDS); do
    b=$(run /bare $i); u=$(run /upload $i)
    bare_all+=($(field "$b" rps)); up_all+=($(field "$u" rps))
    p99_all+=($(field "$u" p99_ms)); acked=$((acked + $(field "$u" acked)))
    other=$(field "$u" other); [ "$other" = 0 ] || { echo "upload refused: $other"; exit 1; }
    echo "round $i: bare $(field "$b" rps) req/s; upload $(field "$u" rps) req/s, p99 $(field "$u" p99_ms) ms, other $(field "$u" other)"
done

bare=$(median "${bare_all[@]}"); up=$(median "${up_all[@]}"); p99=$(median "${p99_all[@]}")

rows=$(sqlite3 $dir/hot/hot.db 'SELECT count(*) FROM buffer_logs')
integrity=$(sqlite3 $dir/hot/hot.db 'PRAGMA integrity_check')

echo
echo "body: $size bytes, own_ship, deflate; $CONNS connections, ${DURATION}s x $ROUNDS rounds, synchronous=$SYNC"
printf 'bare return 204:   %10.0f req/s\n' "$bare"
printf 'avro_upload:       %10.0f req/s   p99 %s ms\n' "$up" "$p99"
printf 'ratio upload/bare: %10.3f   (target >= 0.25)\n' "$(echo "$up / $bare" | bc -l)"
echo "acknowledged uploads: $acked, rows in buffer_logs: $rows, integrity_check: $integrity"
[ "$rows" -ge "$acked" ] && [ $((rows - acked)) -le $((CONNS * ROUNDS)) ] && [ "$integrity" = ok ] || { echo "MISMATCH"; exit 1; }
