# What the benchmark scripts share; sourced by bench/*.sh from the
# repository root.

# The top of a benchmark's nginx.conf, up to and inside "http {": the
# module (BENCH_MODULE, to compare builds), 2 workers, files in $1, no
# access log.  The caller appends the rest of the http block.
bench_conf_head() {
    cat <<CONF
load_module ${BENCH_MODULE:-$PWD/build/nginx/ngx_http_avro_module.so};
worker_processes 2;
user root;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/body;
CONF
}

# The value of key $2 in a wrk script's "RESULT k=v k=v" line $1.
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# The median of the arguments (numbers); of an even count, the mean of
# the middle two.
median() {
    printf '%s\n' "$@" | sort -g \
        | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}
