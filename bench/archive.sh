#!/usr/bin/env bash
# Archive benchmark: fills a hot store with at least BENCH_BYTES of
# realistic uploads (own_ship and battle records, a dataset per upload)
# through nginx, then times one archive cycle into each cold store:
#
#   file:   against `curl -T file://` of the same bytes into the same
#           filesystem, then `sync`;
#   s3://   into s3rver (the S3-compatible server the tests use), against
#           `curl -T --aws-sigv4` of the same bytes to the same s3rver;
#   s3tls   the same over https (a second s3rver with a certificate made
#           for the run), how AWS S3 and R2 are reached.
#
# The same hot store serves both cycles (a copy is taken after the fill).
# Prints MB/s of each side and their ratio, where the cycle's time went,
# the compression against gzip -6 of the same records, and the peak RSS
# growth of the workers during each cycle.  It does BENCH_ROUNDS rounds
# (default 4), each restoring the hot store from the copy, and prints
# every round and the median of the rounds' ratios: s3rver's own CPU time
# for the same bytes varies by a third from one minute to the next.  Run
# it alone on the machine:
#
#   flock /tmp/avro-bench.lock bash bench/archive.sh
#
# BENCH_PERF=/tmp/p also records each cycle's workers with perf (call
# graphs; BENCH_PERF_CALLS="--call-graph dwarf" for SQLite's and nginx's
# frames) into /tmp/p.file, /tmp/p.s3, /tmp/p.s3tls (the last round's).
# BENCH_MODULE=/path/to/ngx_http_avro_module.so loads another build of
# the module, to compare two builds in alternated runs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

BYTES=${BENCH_BYTES:-1073741824}
ROUNDS=${BENCH_ROUNDS:-4}
PORT=${BENCH_PORT:-18472}
S3PORT=${BENCH_S3_PORT:-18473}
S3TLSPORT=${BENCH_S3TLS_PORT:-18474}
dir=$(mktemp -d /tmp/avro-archive-bench.XXXXXX)
s3pid= s3tlspid=

stop_nginx() {
    local pid
    pid=$(cat $dir/nginx.pid 2> /dev/null) || return 0
    kill -QUIT "$pid" 2> /dev/null || true
    while kill -0 "$pid" 2> /dev/null; do sleep 0.1; done
    rm -f $dir/nginx.pid
}

cleanup() {
    stop_nginx
    [ -n "$s3pid" ] && kill "$s3pid" 2> /dev/null
    [ -n "$s3tlspid" ] && kill "$s3tlspid" 2> /dev/null
    [ -n "${BENCH_KEEP:-}" ] && cp $dir/hot.db.copy $BENCH_KEEP
    rm -rf $dir
}
trap cleanup EXIT

# distinct files, so that the records are not one upload repeated
for s in 1 2 3 4 5 6 7 8; do
    for t in own_ship battle; do
        /usr/bin/python3 t/lib/avro_gen.py \
            --schemas ../shared/testdata/fusou/schema_v0_5_1.json --table $t \
            --records 40 --codec deflate --seed $s --out $dir/$t-$s.avro \
            > /dev/null
    done
done

# start_nginx "<avro_cold_store arguments>"
start_nginx() {
    { bench_conf_head $dir; cat <<CONF
    avro_hot_store $dir/hot/hot.db synchronous=normal;
    avro_cold_store $1;
    avro_archive interval=24h;
    server {
        listen 127.0.0.1:$PORT backlog=4096;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }
        location = /status  { avro_status; }
    }
}
CONF
    } > $dir/nginx.conf
    nginx -p $dir/ -c $dir/nginx.conf
    for _ in $(seq 50); do curl -s -o /dev/null http://127.0.0.1:$PORT/status && break; sleep 0.1; done
}

hot_bytes() { curl -s http://127.0.0.1:$PORT/status | sed 's/.*"hot":{[^}]*"bytes":\([0-9]*\).*/\1/'; }
rss() { ps -o rss= --ppid "$(cat $dir/nginx.pid)" | awk '{s += $1} END {print s}'; }

# Samples the workers' summed VmRSS every 50 ms until SIGTERM, then writes
# the peak to $1: one process that forks nothing, so that sampling takes
# no CPU from the cycle it measures.
sample_rss() {
    perl -e '
        my ($out, @pids) = @ARGV;
        my $peak = 0;
        $SIG{TERM} = sub {
            open my $fh, ">", $out or die; print $fh "$peak\n"; exit 0 };
        while (1) {
            my $sum = 0;
            for my $p (@pids) {
                open my $fh, "<", "/proc/$p/status" or next;
                while (<$fh>) { $sum += $1 if /^VmRSS:\s+(\d+)/ }
            }
            $peak = $sum if $sum > $peak;
            select undef, undef, undef, 0.05;
        }' "$@" &
}
# CPU seconds used so far by process $1 (user and system), 0 without one
cpu_secs() {
    [ -n "$1" ] && awk '{printf "%.2f\n", ($14 + $15) / 100}' /proc/$1/stat \
        || echo 0
}
# CPU seconds of the workers of nginx so far
workers_cpu_secs() {
    local sum=0 p
    for p in $(pgrep -P "$(cat $dir/nginx.pid)"); do
        sum=$(echo "$sum + $(cpu_secs $p)" | bc -l)
    done
    echo $sum
}
# CPU seconds of this shell's finished children (the copies' curl)
children_cpu_secs() { awk '{printf "%.2f\n", ($16 + $17) / 100}' /proc/$$/stat; }
# jiffies of the whole machine: busy, iowait, steal, total (/proc/stat)
machine_jiffies() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $6, $9,
                   $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat
}
# shares of the machine since machine_jiffies printed "$1"
machine_since() {
    machine_jiffies | awk -v j0="$1" '{
        split(j0, a, " "); t = $4 - a[4]; if (t <= 0) t = 1
        printf "busy %.0f%%, iowait %.0f%%, steal %.0f%%",
            100 * ($1 - a[1]) / t, 100 * ($2 - a[2]) / t, 100 * ($3 - a[3]) / t
    }'
}
json_field() { echo "$1" | sed "s/.*\"$2\":\([0-9]*\).*/\1/"; }

# cycle NAME: one avro_archive_now, timed, with the workers' RSS sampled
# every 50 ms (sample_rss); sets summary, cycle_secs, growth.  Dirty pages of earlier steps
# are written out first, so that each side starts from the same state.
cycle() {
    local rss0 peak sampler start end j0
    sync
    rss0=$(rss)
    sample_rss $dir/peak $(pgrep -P "$(cat $dir/nginx.pid)")
    sampler=$!
    if [ -n "${BENCH_PERF:-}" ]; then
        perf record -q -F 999 ${BENCH_PERF_CALLS:--g} -o "$BENCH_PERF.$1" \
            -p "$(pgrep -P "$(cat $dir/nginx.pid)" | paste -sd,)" &
        perfpid=$!
        sleep 0.5
    fi
    start=$(date +%s.%N)
    s3cpu0=$(cpu_secs "$srvpid")
    wcpu0=$(workers_cpu_secs)
    j0=$(machine_jiffies)
    summary=$(curl -s -X POST http://127.0.0.1:$PORT/archive)
    cycle_machine=$(machine_since "$j0")
    s3cpu=$(echo "$(cpu_secs "$srvpid") - $s3cpu0" | bc -l)
    wcpu=$(echo "$(workers_cpu_secs) - $wcpu0" | bc -l)
    end=$(date +%s.%N)
    if [ -n "${BENCH_PERF:-}" ]; then
        kill -INT $perfpid
        wait $perfpid || true
    fi
    kill $sampler
    wait $sampler 2> /dev/null || true
    peak=$(cat $dir/peak)
    [ "$peak" -gt "$rss0" ] || peak=$rss0
    cycle_secs=$(echo "$end - $start" | bc -l)
    growth=$((peak - rss0))
    echo "$1 cycle: $summary"
    echo "$1 workers' RSS: $rss0 KiB before, peak $peak KiB"
}

# --- fill -------------------------------------------------------------
start_nginx "file:$dir/cold"
fill_start=$(date +%s)
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
echo "hot store: $hot bytes of uploads, filled in $(( $(date +%s) - fill_start )) s"
stop_nginx
cp $dir/hot/hot.db $dir/hot.db.copy

# --- rounds -------------------------------------------------------------
printf 'access_key_id=S3RVER\nsecret_access_key=S3RVER\n' > $dir/s3.cred
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -keyout $dir/key.pem -out $dir/cert.pem 2> /dev/null

# url SIDE: the base URL of the side's s3rver; curl_tls SIDE: curl's
# options for it
url() { [ "$1" = s3 ] && echo "http://127.0.0.1:$S3PORT" \
                      || echo "https://127.0.0.1:$S3TLSPORT"; }
curl_tls() { [ "$1" = s3 ] || echo "--cacert $dir/cert.pem"; }

# start_s3rver SIDE [s3rver options]: its own directory and port; sets
# s3pid or s3tlspid
start_s3rver() {
    local side=$1 port
    shift
    port=$(url $side | sed 's/.*://')
    mkdir -p $dir/$side
    node_modules/.bin/s3rver -d $dir/$side -a 127.0.0.1 -p $port --silent \
        --configure-bucket bucket "$@" > $dir/$side.log 2>&1 &
    eval "${side}pid=$!"
    for _ in $(seq 100); do
        curl -s -o /dev/null $(curl_tls $side) $(url $side)/ && break
        sleep 0.1
    done

    # A fresh s3rver (node.js) spends about twice the CPU on its first GB
    # as on the next ones (6.8 s against 3.0-4.3 s here), and the round's
    # cycle would pay for that alone, curl's copy coming after it: one
    # throwaway PUT of the same order of bytes first.
    curl -s -f -o /dev/null $(curl_tls $side) -T $dir/hot.db.copy \
        --user S3RVER:S3RVER --aws-sigv4 "aws:amz:us-east-1:s3" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
        "$(url $side)/bucket/warm-up"
    rm -rf $dir/$side/bucket/warm-up*
}

start_s3rver s3
start_s3rver s3tls --key $dir/key.pem --cert $dir/cert.pem
s3store="s3://bucket/archive endpoint=$(url s3) region=us-east-1 credentials=$dir/s3.cred"
s3tlsstore="s3://bucket/archive endpoint=$(url s3tls) region=us-east-1 credentials=$dir/s3.cred ca=$dir/cert.pem"

restore() {
    cp $dir/hot.db.copy $dir/hot/hot.db
    rm -f $dir/hot/hot.db-wal $dir/hot/hot.db-shm
}

# timed CMD...: runs it, sets secs
timed() {
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
}

copy_files() {
    for f in $files; do
        curl -s -T "$f" "file://$dir/plain/$(basename "$f")"
    done
    sync
}

# put_files SIDE: curl streams each file and signs it as UNSIGNED-PAYLOAD
# (it cannot hash an upload it has not read): less work than the
# archiver, which hashes every byte (SHA-256 for the catalog, and over
# http MD5 against the ETag)
put_files() {
    for f in $files; do
        curl -s -f -o /dev/null $(curl_tls $1) -T "$f" \
            --user S3RVER:S3RVER --aws-sigv4 "aws:amz:us-east-1:s3" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
            "$(url $1)/bucket/plain/$(basename "$f")"
    done
}

mbs() { echo "$1 / $2 / 1000000" | bc -l; }

# result SIDE ROUND: one line of the round, and its ratio kept
result() {
    local bytes
    bytes=$(json_field "$summary" bytes)
    printf '%-6s round %d: archive %7.1f MB/s (%.2f s; ms: claim %d, build %d, put %d, commit %d, checkpoint %d); curl %7.1f MB/s (%.2f s); ratio %.3f; RSS growth %d KiB\n' \
        "$1" "$2" "$(mbs "$bytes" "$secs")" "$secs" "$(json_field "$summary" claim)" \
        "$(json_field "$summary" build)" "$(json_field "$summary" put)" \
        "$(json_field "$summary" commit)" "$(json_field "$summary" checkpoint)" \
        "$(mbs "$bytes" "$bsecs")" "$bsecs" "$(echo "$bsecs / $secs" | bc -l)" "$growth"
    eval "${1}_ratios+=\" $(echo "$bsecs / $secs" | bc -l)\""
    eval "${1}_mbs+=\" $(mbs "$bytes" "$secs")\" ${1}_bmbs+=\" $(mbs "$bytes" "$bsecs")\""
    eval "[ $growth -gt \${${1}_growth:-0} ] && ${1}_growth=$growth || true"
    [ "$bytes" = "$archived" ] || echo "warning: $1 round $2 archived $bytes bytes, not $archived"
}

# The archived files of the first file: cycle, kept for the copies.
keep_files() {
    [ -z "$files" ] || return 0
    mkdir -p $dir/src
    cp $(find $dir/cold -name '*.avro' | sort) $dir/src/
    files=$(find $dir/src -name '*.avro' | sort)
    archived=$(json_field "$summary" bytes)
    file_summary=$summary
}

# copy_file_side / copy_s3_side: the plain copy of one side, timed
copy_file_side() {
    local j0
    sync
    j0=$(machine_jiffies)
    timed copy_files
    copy_machine=$(machine_since "$j0")
}

copy_s3_side() {
    local c0 j0 side=${1:-s3}
    sync
    c0=$(cpu_secs "$srvpid")
    k0=$(children_cpu_secs)
    j0=$(machine_jiffies)
    timed put_files $side
    copy_machine=$(machine_since "$j0")
    copy_s3cpu=$(echo "$(cpu_secs "$srvpid") - $c0" | bc -l)
    copy_curlcpu=$(echo "$(children_cpu_secs) - $k0" | bc -l)
}

copy_s3tls_side() { copy_s3_side s3tls; }

# side NAME STORE ROUND COPY_FIRST: the cycle of one side and its plain
# copy, in the order given, each from the same restored hot store
side() {
    eval "srvpid=\${${1}pid:-}"      # the side's s3rver, none for file:
    restore
    if [ "$4" = 1 ]; then
        copy_$1_side
    fi
    start_nginx "$2"
    cycle $1
    stop_nginx
    if [ "$1" = file ]; then
        keep_files
    fi
    if [ "$4" = 0 ]; then
        copy_$1_side
    fi
    bsecs=$secs secs=$cycle_secs
    echo "$1 round $3: the machine during the cycle: $cycle_machine; during the copy: $copy_machine"
    if [ -n "$srvpid" ]; then
        echo "$1 round $3: s3rver's CPU: $s3cpu s during the cycle, $copy_s3cpu s during curl's copy"
        echo "$1 round $3: the sender's CPU: the workers $wcpu s during the cycle, curl $copy_curlcpu s during the copy"
    fi
    result $1 $3
}

# What runs first ran slower in trials here, in both senses: the side that
# runs second in a round, and within a side the step after the other.  So
# both orders alternate, and every 4 rounds hold each combination once:
# rounds 1, 2: file:, s3://, s3tls; 3, 4: the other way round; odd
# rounds: each cycle before its copy, even rounds: the copy first (round
# 1's file: cycle makes the files that the copies send).
file_ratios= s3_ratios= s3tls_ratios= file_mbs= s3_mbs= s3tls_mbs=
file_bmbs= s3_bmbs= s3tls_bmbs=
files= archived=
for round in $(seq $ROUNDS); do
    rm -rf $dir/cold $dir/plain $dir/s3/bucket/archive $dir/s3/bucket/plain \
        $dir/s3tls/bucket/archive $dir/s3tls/bucket/plain
    mkdir -p $dir/plain
    copy_first=$(( (round + 1) % 2 ))
    if [ $(( (round - 1) / 2 % 2 )) = 0 ]; then
        side file "file:$dir/cold" $round $copy_first
        side s3 "$s3store" $round $copy_first
        side s3tls "$s3tlsstore" $round $copy_first
    else
        side s3tls "$s3tlsstore" $round $copy_first
        side s3 "$s3store" $round $copy_first
        side file "file:$dir/cold" $round $copy_first
    fi
done

# --- compression ----------------------------------------------------------
gz=$(/usr/bin/python3 - $files <<'PY'
import gzip, sys, zlib
sys.path.insert(0, 't/lib')
import avro_util
raw = 0
per_block = 0
for path in sys.argv[1:]:
    data = open(path, 'rb').read()
    for b in avro_util.parse_ocf(data)['blocks']:
        plain = zlib.decompress(data[b['data_offset']:b['data_offset'] + b['size']], -15)
        raw += len(plain)
        per_block += len(gzip.compress(plain, 6))
print(raw, per_block)
PY
)

echo
printf 'hot store: %d bytes of uploads; %d uploads, %d records\n' "$hot" \
    "$(json_field "$file_summary" uploads)" "$(json_field "$file_summary" records)"
for side in file s3 s3tls; do
    eval "ratios=\$${side}_ratios m=\$${side}_mbs bm=\$${side}_bmbs growth=\$${side}_growth"
    printf '%-6s median of %d rounds: archive %.1f MB/s, curl -T %.1f MB/s; ratio archive/curl %.3f (rounds:%s) (target >= 0.7)\n' \
        "$side" "$ROUNDS" "$(median $m)" "$(median $bm)" "$(median $ratios)" \
        "$(printf ' %.3f' $ratios)"
    printf '%-6s workers'"'"' peak RSS growth, largest of the rounds: %d KiB (target < 65536)\n' "$side" "$growth"
done
set -- $gz
printf 'records: %d bytes raw; archived %d bytes (deflate, %.3f of raw)\n' "$1" "$archived" "$(echo "$archived / $1" | bc -l)"
printf 'gzip -6 of each upload'"'"'s records: %d bytes: archive/gzip %.3f\n' "$2" "$(echo "$archived / $2" | bc -l)"
