#!/usr/bin/env bash
# Read benchmark: one dataset's archived data read through avro_read (one
# answer: header + its ranges, fetched by subrequests from a file: cold
# store) against the same byte ranges fetched directly from the same store
# through a plain static location of the same nginx (no module: one Range
# request per range, the header once per read; and the same requests
# pipelined, a read's worth at once on a connection), in the same run.  Prints
# both throughputs, requests/s, the ratio and the module's p99; then reads
# of a dataset whose uploads are all hot.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION=${BENCH_DURATION:-5}
ROUNDS=${BENCH_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-16}
CYCLES=${BENCH_CYCLES:-8}
PORT=${BENCH_PORT:-18472}
SNDBUF=${BENCH_SNDBUF:-64k}
dir=$(mktemp -d /tmp/avro-bench-read.XXXXXX)
[ -n "${BENCH_KEEP:-}" ] || trap 'kill $(cat $dir/nginx.pid 2>/dev/null) 2>/dev/null || true; sleep 0.5; rm -rf $dir' EXIT

# Two servers with the same locations: one with the kernel's socket
# buffers, one with sndbuf=$SNDBUF on its listening socket (see
# docs/benchmarks.md: on loopback, autotuned send buffers let a 630 KB
# answer sit in the kernel whole, and its cost per byte doubles).
locations() { cat <<CONF
        client_max_body_size 16m;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }

        include $dir/avro-read-file.conf;
        location = /read { avro_read /_avro_cold/; }

        # the baseline: the same store, the same settings, no module
        location /direct/ {
            alias  $dir/cold/;
            sendfile on;
            etag off;
            open_file_cache        max=1024 inactive=60s;
            open_file_cache_valid  60s;
        }
CONF
}
{ bench_conf_head $dir; cat <<CONF
    avro_hot_store  $dir/hot/hot.db synchronous=normal;
    avro_cold_store file:$dir/cold;
    avro_archive    interval=24h;
    server {
        listen 127.0.0.1:$PORT reuseport backlog=4096;
$(locations)
    }
    server {
        listen 127.0.0.1:$((PORT + 1)) reuseport backlog=4096 sndbuf=$SNDBUF;
$(locations)
    }
}
CONF
} > $dir/nginx.conf
sed "s|alias        var/cold/;|alias        $dir/cold/;|" conf/avro-read-file.conf > $dir/avro-read-file.conf

nginx -p $dir/ -c $dir/nginx.conf
sleep 0.5
url=http://127.0.0.1:$PORT

# 3 distinct own_ship files of 200 records a cycle; every dataset uploads
# them, so that the reader's ranges share their files with 15 others
gen() {
    /usr/bin/python3 t/lib/avro_gen.py \
        --schemas ../shared/testdata/fusou/schema_v0_5_1.json --table own_ship \
        --records 200 --codec deflate --seed $1 --out $2 > /dev/null
}
upload() {
    curl -sf -o /dev/null -H 'Content-Type: application/avro' --data-binary @$2 \
        "$url/upload?dataset_id=$1&table=own_ship&period_tag=p1"
}
for c in $(seq $CYCLES); do
    for k in 1 2 3; do gen $((c * 10 + k)) $dir/up-$c-$k.avro; done
    for ds in reader $(seq -f 'other%g' 15); do
        for k in 1 2 3; do upload $ds $dir/up-$c-$k.avro; done
    done
    curl -sf -o /dev/null -X POST $url/archive
done
for c in $(seq $CYCLES); do
    for k in 1 2 3; do upload hotreader $dir/up-$c-$k.avro; done
done

# what a read holds: its size, and the ranges (+ header) for the baseline
curl -sf -o $dir/read.avro "$url/read?dataset_id=reader&table=own_ship"
curl -sf -o $dir/hot.avro "$url/read?dataset_id=hotreader&table=own_ship"
read_size=$(stat -c %s $dir/read.avro)
hot_size=$(stat -c %s $dir/hot.avro)
records=$(/usr/bin/python3 t/lib/avro_dump.py --count $dir/read.avro)
sqlite3 -separator ' ' $dir/hot/hot.db "SELECT '/direct/' || f.file_path, b.start_byte,
    b.start_byte + b.length - 1, b.length FROM block_indexes b
    JOIN archived_files f ON f.id = b.file_id
    WHERE b.dataset_id = 'reader' ORDER BY f.id" > $dir/ranges.txt
nranges=$(wc -l < $dir/ranges.txt)
first=$(head -1 $dir/ranges.txt | cut -d' ' -f1)
header=$(( read_size - $(awk '{s += $4} END {print s}' $dir/ranges.txt) ))
# the baseline reads the header too, once per read: the first bytes of a file
echo "$first 0 $((header - 1)) $header" >> $dir/ranges.txt
echo "/read?dataset_id=reader&table=own_ship - - $read_size" > $dir/read.txt
echo "/read?dataset_id=hotreader&table=own_ship - - $hot_size" > $dir/hot.txt

run() {
    BENCH_PIPELINE=${3:-0} BENCH_LIST=$2 wrk -t2 -c$CONNS -d${DURATION}s --latency -s bench/read.lua $1/ \
        | sed -n 's/^RESULT //p'
}
url2=http://127.0.0.1:$((PORT + 1))
ratio_of() { echo "$(field "$1" mbps) / $(field "$2" mbps)" | bc -l; }

mod=(); dir_=(); modrps=(); dirrps=(); p99=(); hot=(); hotrps=(); hotp99=(); ratio=()
pip=(); pipratio=(); mod2=(); dir2=(); p992=(); ratio2=(); modrps2=(); dirrps2=()
for i in $(seq $ROUNDS); do
    m=$(run $url $dir/read.txt); d=$(run $url $dir/ranges.txt)
    p=$(run $url $dir/ranges.txt 1)
    m2=$(run $url2 $dir/read.txt); d2=$(run $url2 $dir/ranges.txt)
    h=$(run $url $dir/hot.txt)
    for r in "$m" "$d" "$p" "$m2" "$d2" "$h"; do
        [ "$(field "$r" bad)" = 0 ] || { echo "failed requests: $r"; exit 1; }
    done
    mod+=($(field "$m" mbps)); modrps+=($(field "$m" rps)); p99+=($(field "$m" p99_ms))
    dir_+=($(field "$d" mbps)); dirrps+=($(field "$d" rps))
    hot+=($(field "$h" mbps)); hotrps+=($(field "$h" rps)); hotp99+=($(field "$h" p99_ms))
    pip+=($(field "$p" mbps))
    mod2+=($(field "$m2" mbps)); dir2+=($(field "$d2" mbps)); p992+=($(field "$m2" p99_ms))
    modrps2+=($(field "$m2" rps)); dirrps2+=($(field "$d2" rps))
    # the machine is shared: each round's runs are next to each other, and
    # the ratios reported are the medians of the rounds' ratios
    ratio+=($(ratio_of "$m" "$d")); pipratio+=($(ratio_of "$m" "$p"))
    ratio2+=($(ratio_of "$m2" "$d2"))
    echo "round $i: module $(field "$m" mbps) MB/s ($(field "$m" rps) reads/s, p99 $(field "$m" p99_ms) ms);" \
         "direct $(field "$d" mbps) MB/s ($(field "$d" rps) ranges/s);" \
         "pipelined $(field "$p" mbps) MB/s;" \
         "sndbuf=$SNDBUF: module $(field "$m2" mbps), direct $(field "$d2" mbps) MB/s;" \
         "hot $(field "$h" mbps) MB/s"
done

echo
echo "ratios of the rounds, per range:  $(printf '%.3f ' "${ratio[@]}")"
echo "ratios of the rounds, pipelined: $(printf '%.3f ' "${pipratio[@]}")"
echo "ratios of the rounds, per range, sndbuf=$SNDBUF: $(printf '%.3f ' "${ratio2[@]}")"
echo "read: $read_size bytes, $records records, $nranges archived ranges + header;" \
     "$CONNS connections, ${DURATION}s x $ROUNDS rounds"
echo "kernel's socket buffers:"
printf '  avro_read (file: store):  %8.1f MB/s  %8.0f reads/s   p99 %s ms\n' "$(median "${mod[@]}")" "$(median "${modrps[@]}")" "$(median "${p99[@]}")"
printf '  same ranges, static:      %8.1f MB/s  %8.0f requests/s (one range a request)\n' "$(median "${dir_[@]}")" "$(median "${dirrps[@]}")"
printf '  same ranges, pipelined:   %8.1f MB/s  (a read'"'"'s %d requests at once a connection)\n' "$(median "${pip[@]}")" $((nranges + 1))
printf '  ratio module/direct:      %8.3f   per range; %.3f pipelined\n' \
    "$(median "${ratio[@]}")" "$(median "${pipratio[@]}")"
echo "listen ... sndbuf=$SNDBUF (both locations):"
printf '  avro_read (file: store):  %8.1f MB/s  %8.0f reads/s   p99 %s ms\n' "$(median "${mod2[@]}")" "$(median "${modrps2[@]}")" "$(median "${p992[@]}")"
printf '  same ranges, static:      %8.1f MB/s  %8.0f requests/s\n' "$(median "${dir2[@]}")" "$(median "${dirrps2[@]}")"
printf '  ratio module/direct:      %8.3f   per range\n' "$(median "${ratio2[@]}")"
echo "(ratios: medians of the rounds; target >= 0.8)"
printf 'hot-only read (%d bytes): %8.1f MB/s  %8.0f reads/s   p99 %s ms\n' "$hot_size" \
    "$(median "${hot[@]}")" "$(median "${hotrps[@]}")" "$(median "${hotp99[@]}")"
