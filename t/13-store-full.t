#!/usr/bin/perl
# A hot store at its max_size: uploads that would pass it are answered 503
# "full" with Retry-After and a JSON body, nothing of them is stored, and
# what still fits is accepted.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
$t->write_conf(<<'CONF');
worker_processes 1;
events {}
http {
    avro_hot_store %%PREFIX%%/var/hot/hot.db max_size=1m;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload { avro_upload; }
        location = /status { avro_status; }
    }
}
CONF
$t->run;

my $big = slurp($t->avro_gen(table => 'own_ship', records => 400, seed => 1,
                             codec => 'null'));
my $small = slurp($t->avro_gen(table => 'own_ship', records => 1, seed => 2));
cmp_ok length $big, '>', 60000, 'a file of ' . length($big) . ' bytes';

my ($accepted, $r) = (0);
for my $i (1 .. 40) {
    $r = $t->post("/upload?dataset_id=d$i&table=own_ship", 'application/avro', $big);
    last if $r->{status} != 201;
    $accepted++;
}
cmp_ok $accepted, '>=', 5, "$accepted uploads accepted first";
is $r->{status}, 503, 'then 503';
is $r->{json}{error}, 'full', 'JSON: full';
like $r->{json}{message}, qr/hot store full: \d+ of 1048576 bytes in use/,
    'says how full';
ok $r->{headers}{'retry-after'}, 'with Retry-After';
is $t->hot_rows, $accepted,
    'nothing of the refused upload stored';

$r = $t->post('/upload?dataset_id=s&table=own_ship', 'application/avro', $small);
is $r->{status}, 201, 'a small upload still fits';
is $t->get('/status')->{json}{store}{max_size}, 1048576, 'status shows max_size';

is_deeply [$t->check_log_clean], [], 'no alert';
done_testing;
