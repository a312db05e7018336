#!/usr/bin/perl
# The module built with AddressSanitizer and UBSan (make module-san,
# build/san/nginx/) in the real nginx: uploads of every body format and
# codec, the hostile files, duplicates, the status, reads of hot and
# archived rows, archive cycles into file: and into s3rver through the
# fault proxy (5xx, a PUT whose answer is lost), reloads in between, and
# parallel uploads from wrk into two workers.
# Every nginx process that ends (the old workers at each reload, the
# workers and the master at the stop, each nginx -s) must have reported
# no leak, no access out of bounds and no undefined behaviour.

use strict;
use warnings;
use Test::More;
use File::Path qw(make_path remove_tree);
use JSON::PP;
use MIME::Base64;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::Read;
use AvroTest::S3;

my $ROOT = $AvroTest::Nginx::ROOT;
my $san = "$ROOT/build/san/nginx/ngx_http_avro_module.so";
plan skip_all => "$san is not built (make module-san)" unless -f $san;

chomp(my $libasan = `gcc -print-file-name=libasan.so`);
plan skip_all => "no libasan: $libasan" unless $libasan =~ m{^/} && -e $libasan;

# The workers run as nobody: the report directory must take their files.
# The module is preloaded as well, so that nginx's dlclose() at exit
# leaves it mapped and the leak reports can name its functions.
my $reports = "$ROOT/t/tmp/sanitized-$$";
make_path($reports);
chmod 01777, $reports;
my $wrapper = "$reports/nginx";
open my $w, '>', $wrapper or die "$wrapper: $!";
print $w <<"SH";
#!/bin/sh
export LD_PRELOAD="$libasan $san"
export ASAN_OPTIONS="log_path=$reports/report:detect_leaks=1:fast_unwind_on_malloc=0:malloc_context_size=40"
export UBSAN_OPTIONS="log_path=$reports/report:print_stacktrace=1:halt_on_error=1"
exec /usr/sbin/nginx "\$@"
SH
close $w;
chmod 0755, $wrapper;

$AvroTest::Nginx::NGINX = $wrapper;
$AvroTest::Nginx::MODULE = $san;


subtest 'file: cold store, reads, reloads' => sub {
    my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
    $t->archive_conf(workers => 2, body_size => '4m',
        cold => 'file:%%PREFIX%%/var/cold',
        archive => 'interval=1h segment_size=24k lease=5s node=n1',
        locations => [
            'location = /status { avro_status; }',
            "include $ROOT/conf/avro-read-file.conf;",
            'location = /read { avro_read /_avro_cold/; }',
            'location = /strict { avro_upload; '
                . 'avro_schemas %%TESTDATA%%/fusou/schema_v0_4.json; }']);
    $t->run;

    my $seed = 0;
    my $uploads = 0;
    for my $codec (qw(null deflate snappy zstandard)) {
        for my $ds (qw(alice bob)) {
            my $f = $t->avro_gen(table => 'own_ship', records => 5,
                codec => $codec, seed => ++$seed);
            my $r = $t->post("/upload?dataset_id=$ds&table=own_ship",
                'application/avro', slurp($f));
            is $r->{status}, 201, "$codec upload for $ds";
            $uploads++;
            is $t->post("/upload?dataset_id=$ds&table=own_ship",
                'application/avro', slurp($f))->{status}, 200,
                "$codec upload again for $ds: a duplicate";
        }
    }

    my $a = $t->avsc_gen(table => 'battle', records => 4, seed => ++$seed);
    my $b = $t->avro_gen(table => 'battle', records => 3, seed => ++$seed);
    my $r = $t->post('/upload', 'application/json', encode_json({
        dataset_id => 'carol', table_name => 'battle',
        slices => [map { encode_base64(slurp($_), '') } $a, $b] }));
    is $r->{status}, 201, 'an envelope of two slices';
    $uploads += 2;

    my $m = $t->hostile;
    my $refused = 0;
    for my $c (@{ $m->{cases} }) {
        $r = $t->post("/upload?dataset_id=h&table=$m->{control}{table}",
            'application/avro', slurp($c->{path}));
        $refused++ if $r->{status} == $c->{status};
    }
    is $refused, scalar @{ $m->{cases} },
        "every hostile file refused as expected (" . @{ $m->{cases} } . ')';
    is $t->post('/upload', 'text/plain', 'x')->{status}, 415, 'a bad type';
    is $t->post('/strict?dataset_id=s&table=own_ship', 'application/avro',
        slurp($t->avro_gen(table => 'own_ship', records => 2, seed => 99)))
        ->{status}, 422, 'a schema the location does not accept';

    is $t->get('/status')->{status}, 200, 'status';
    my $rd = AvroTest::Read->new($t);
    is scalar @{ $rd->read_ok('/read?dataset_id=alice&table=own_ship',
        'hot rows') }, 4 * 5, 'the read has every hot record';

    $t->reload;
    $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'archive cycle' or diag $r->{content};
    is $r->{json}{uploads}, $uploads, "it archived the $uploads uploads";

    $r = $t->post('/upload?dataset_id=alice&table=own_ship', 'application/avro',
        slurp($t->avro_gen(table => 'own_ship', records => 2, seed => ++$seed)));
    is $r->{status}, 201, 'one more upload, hot';
    is scalar @{ $rd->read_ok('/read?dataset_id=alice&table=own_ship',
        'archived and hot rows') }, 4 * 5 + 2, 'the read has every record';

    $t->reload;
    is $t->get('/status')->{status}, 200, 'status after a reload';
    $t->stop;
    is_deeply [$t->check_log_clean], [], 'no alert, crit or crash';
};

subtest 's3 cold store through the fault proxy' => sub {
    my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
    my $s3 = AvroTest::S3->new($t);
    my $proxy = $s3->proxy;
    $t->archive_conf(
        cold => "s3://bucket/san endpoint=http://127.0.0.1:$proxy "
            . 'credentials=' . $s3->credentials,
        archive => 'interval=1h node=s1',
        http => ["upstream avro_s3 { server 127.0.0.1:$proxy; }"],
        locations => ['location = /status  { avro_status; }',
            "include $ROOT/conf/avro-read-s3.conf;",
            'location = /read { avro_read /_avro_s3/; }']);
    $t->run;

    my $n = 0;
    my $up = sub {
        my $f = $t->avro_gen(table => 'battle', records => 3, seed => ++$n);
        $t->post("/upload?dataset_id=d$n&table=battle", 'application/avro',
            slurp($f))->{status};
    };
    is $up->(), 201, 'upload';
    $s3->fault('503');
    is $t->post('/archive', 'application/json', '')->{status}, 503,
        'the store answers 503';
    $s3->fault('drop_after_put');
    is $t->post('/archive', 'application/json', '')->{status}, 503,
        'a PUT stored, its answer lost';
    is $up->(), 201, 'upload meanwhile';
    $s3->fault('pass');
    is $t->post('/archive', 'application/json', '')->{status}, 200,
        'the store is back';
    is $t->sqlite('SELECT count(*) AS n FROM block_indexes')->[0]{n}, 2,
        'each upload indexed once';
    is_deeply [$s3->bad_objects('bucket/san')], [], 'objects match the catalog';
    is $up->(), 201, 'one more upload, hot';
    my $rd = AvroTest::Read->new($t);
    is scalar @{ $rd->read_ok("/read?dataset_id=d1&table=battle", 'archived') },
        3, 'a read by Range requests to the store';
    $s3->fault('503');
    my $r = $t->get('/read?dataset_id=d1&table=battle');
    isnt $r->{status}, 200, "the store failing: the read is cut ($r->{status})";
    $s3->fault('pass');
    is scalar @{ $rd->read_ok("/read?dataset_id=d3&table=battle", 'hot') },
        3, 'a read of hot rows';
    $t->stop;
    is_deeply [$t->check_log_clean], [], 'no alert, crit or crash';
};

subtest 'parallel uploads (wrk), two workers' => sub {
    my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
    $t->archive_conf(workers => 2, cold => 'file:%%PREFIX%%/var/cold',
        archive => 'interval=1h node=w1');
    $t->run;
    my $body = $t->avro_gen(table => 'own_ship', records => 22,
        codec => 'deflate', seed => 7);
    local @ENV{qw(BENCH_BODY BENCH_PATH)} = ($body, '/upload');
    my $r = AvroTest::Nginx::run_cmd('wrk', '-t2', '-c32', '-d3s',
        '-s', "$ROOT/bench/upload.lua", $t->url('/upload'));
    my ($acked, $other) = $r->{out} =~ /RESULT .*acked=(\d+) other=(\d+)/;
    ok $acked, "wrk: ${\($acked // 0)} uploads acknowledged" or diag $r->{out}, $r->{err};
    is $other, 0, 'no other answer';
    cmp_ok $t->hot_rows, '>=',
        $acked // 1, 'every acknowledged upload stored';
    is $t->post('/archive', 'application/json', '')->{status}, 200,
        'then archived';
    $t->stop;
    is_deeply [$t->check_log_clean], [], 'no alert, crit or crash';
};

# What the sanitizers said, process by process.  Every error counts; of
# the leaks, those allocated on a path through the module's code (nginx's
# workers leave their connection and event arrays to the exit, which is
# nginx's own affair).
my @files = glob "$reports/report.*";
my (@bad, $leaks_elsewhere);
for my $f (@files) {
    my $text = slurp($f) // '';
    for my $part (split /\n(?=\S)/, $text) {
        if ($part =~ /^(Direct|Indirect) leak of/) {
            if ($part =~ m{\b(?:avs_\w+|ngx_http_avro_\w+)\b|\Q$ROOT\E/}) {
                push @bad, "$f: $part";
            } else {
                $leaks_elsewhere++;
            }
        } elsif ($part =~ /ERROR: \w+Sanitizer: (?!detected memory leaks)|runtime error/) {
            push @bad, "$f: $part";
        }
    }
}
is scalar @bad, 0, 'no sanitizer report of the module from any nginx '
    . 'process (' . scalar(@files) . ' report files, '
    . ($leaks_elsewhere // 0) . ' leaks of nginx itself)'
    or diag join "\n", @bad;

remove_tree($reports) if Test::More->builder->is_passing;
done_testing;
