#!/bin/sh
# Seeds the fuzzer with real uploads: files written by python3-avro for the
# game client's tables in every codec it has, in both body forms.
set -eu
out=$1
mkdir -p "$out"
schemas=../shared/testdata/fusou/schema_v0_5_1.json
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for table in own_ship battle cells env_info; do
    for codec in null deflate; do
        f=$tmp/$table-$codec.avro
        /usr/bin/python3 t/lib/avro_gen.py --schemas $schemas --table $table \
            --records 3 --codec $codec --seed 7 --out "$f" > /dev/null
        { printf '\000'; cat "$f"; } > "$out/file-$table-$codec"
        { printf '\001{"dataset_id":"d","table":"t","avro_base64":"';
          base64 -w0 "$f"; printf '"}'; } > "$out/json-$table-$codec"
    done
done
printf '\002\000\002\000\000\000' > "$out/records-0"
