#!/usr/bin/perl
# The test tooling itself, without the module: the nginx harness on a plain
# nginx, and the Avro generators/dumpers against each other and avrocat.
# Run from the repository root: prove t/00-harness.t

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use lib 't/lib';
use AvroTest::Nginx;

my $CONF = <<'EOF';
worker_processes 2;
events {}
http {
    server {
        listen 127.0.0.1:%%PORT%%;
        location / { return 204; }
        location /echo { return 200 "hi"; }
        location /json {
            default_type application/json;
            return 200 '{"ok":true,"port":$server_port}';
        }
    }
    server {
        listen 127.0.0.1:%%PORT2%%;
        location / { return 200 "second"; }
    }
}
EOF

subtest 'nginx harness' => sub {
    my $t = AvroTest::Nginx->new(no_module => 1, sqlite_file => 'var/test.db');
    my $p = $t->prefix;
    ok -d "$p/$_", "$_/ exists" for qw(logs var tmp);
    like $p, qr{/t/tmp/[\w.-]+-\w+$}, 'prefix under t/tmp';

    my $conf = $t->write_conf($CONF);
    unlike $conf, qr/load_module/, 'no load_module with no_module';
    like $conf, qr/^\s*client_body_temp_path \Q$p\E\/tmp\/client_body;/m, 'temp paths injected in http';
    like $conf, qr/^pid \Q$p\E\/nginx.pid;/m, 'pid in prefix';
    unlike $conf, qr/%%/, 'all placeholders replaced';
    isnt $t->port(1), $t->port(2), 'two distinct ports';

    # someone takes the first port before nginx binds it: run() re-picks
    my $first = $t->port(1);
    my $squat = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $first,
        Proto => 'tcp', Listen => 1, ReuseAddr => 1);
    ok $squat, "holding port $first";
    $t->run;
    isnt $t->port(1), $first, 'port race: ports re-picked';
    close $squat;

    ok $t->master_pid, 'master pid ' . $t->master_pid;
    my @w = $t->worker_pids;
    is scalar @w, 2, "two workers (@w)";

    is $t->get('/')->{status}, 204, 'GET / -> 204';
    my $r = $t->get('/echo');
    is $r->{status}, 200, 'GET /echo -> 200';
    is $r->{content}, 'hi', 'body "hi"';
    $r = $t->get_json('/json');
    ok $r->{json}{ok}, 'JSON body decoded';
    is $r->{json}{port}, $t->port, 'JSON has the port';
    is $t->post('/echo', 'application/avro', "\0" x 5000)->{status}, 200, 'POST with body';
    is $t->request('GET', '/', port => 2)->{content}, 'second', 'second port';
    like $t->raw("GET /echo HTTP/1.0\r\nHost: x\r\n\r\n"), qr{^HTTP/1\.1 200 .*\r\n\r\nhi$}s, 'raw request';

    $t->reload;
    my @w2 = $t->worker_pids;
    is scalar @w2, 2, 'two workers after reload';
    ok !(grep { my $x = $_; grep { $_ == $x } @w } @w2), 'all workers are new';

    (my $changed = $CONF) =~ s/"hi"/"ho"/;
    $t->write_conf($changed);
    $t->reload;
    is $t->get('/echo')->{content}, 'ho', 'reload picked up the new conf';

    $t->write_conf("bogus_directive on;\n$CONF");
    ok !eval { $t->reload; 1 }, 'reload with a bad conf dies';
    like $@, qr/unknown directive "bogus_directive"/, '... with the [emerg] line';
    is $t->get('/echo')->{content}, 'ho', '... and the old conf keeps serving';
    $t->write_conf($CONF);
    is $t->nginx_t->{exit}, 0, 'nginx -t on the good conf';

    ok $t->error_log_matches(qr/\[notice\].*signal process started|reconfiguring/), 'error_log_matches';
    ok -s "$p/logs/access.log", 'access log written in the prefix';

    my $rows = $t->sqlite("CREATE TABLE t(a INTEGER, b TEXT); INSERT INTO t VALUES (1, 'x'), (2, 'y');",
        write => 1);
    is_deeply $rows, [], 'sqlite write';
    is_deeply $t->sqlite('SELECT a, b FROM t ORDER BY a'), [{a => 1, b => 'x'}, {a => 2, b => 'y'}],
        'sqlite read rows';
    ok !eval { $t->sqlite('INSERT INTO t VALUES (3, 1)'); 1 }, 'sqlite is read-only by default';

    my $cold = $t->mkdir('var/cold');
    ok -d $cold, 'mkdir';
    is((stat $cold)[4], scalar getpwnam('nobody'), 'owned by the worker user') if $> == 0;

    my $master = $t->master_pid;
    my @workers = $t->worker_pids;
    $t->stop;
    ok !(grep { AvroTest::Nginx::alive($_) } $master, @workers), 'master and workers gone after stop';
    is_deeply [$t->check_log_clean(ignore => qr/bogus_directive/)], [], 'log clean';
    ok scalar($t->check_log_clean) >= 1, 'the [emerg] of the bad reload is reported without ignore';
};

subtest 'nginx stopped when the object goes away' => sub {
    my $master;
    {
        my $t = AvroTest::Nginx->new(no_module => 1);
        $t->write_conf($CONF);
        $t->run;
        $master = $t->master_pid;
        ok AvroTest::Nginx::alive($master), 'running';
    }
    ok !AvroTest::Nginx::alive($master), 'stopped (the prefix is removed at exit if all tests passed)';
};

subtest 'python3-avro writer vs three readers' => sub {
    my $t = AvroTest::Nginx->new(no_module => 1);
    my %gen = (table => 'own_ship', records => 20, codec => 'deflate', seed => 1, sync_interval => 2000);
    my $f = $t->avro_gen(%gen);
    ok -s $f, 'avro_gen.py wrote a deflate file';
    my $again = $t->avro_gen(%gen);
    is slurp($again), slurp($f), 'same seed, same bytes';

    my $blocks = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON, "$AvroTest::Nginx::LIB/avro_dump.py",
        '--blocks', '--strict', $f);
    is $blocks->{exit}, 0, 'framing ok, no empty block';
    cmp_ok scalar(split /\n/, $blocks->{out}), '>', 1, 'several blocks';

    my $py = $t->avro_dump($f);
    my $cat = $t->avrocat($f);
    my $js = $t->avsc_dump($f);
    is scalar @$py, 20, 'avro_dump.py: 20 records';
    is scalar @$cat, 20, 'avrocat: 20 records';
    is scalar @$js, 20, 'avsc_dump.js: 20 records';
    is_deeply $js, $py, 'avsc and python3-avro decode the same values';
    is $cat->[0]{uuid}, $py->[0]{uuid}, 'avrocat agrees on a uuid';
    like $py->[0]{uuid}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
        'uuid fields hold v4 UUIDs';
};

subtest 'avsc writer vs three readers' => sub {
    my $t = AvroTest::Nginx->new(no_module => 1);
    my $f = $t->avsc_gen(table => 'battle', records => 20, codec => 'deflate', seed => 1, block_size => 2000);
    ok -s $f, 'avsc_gen.js wrote a deflate file';
    my $py = $t->avro_dump($f);
    is scalar @$py, 20, 'avro_dump.py: 20 records';
    is scalar @{ $t->avrocat($f) }, 20, 'avrocat: 20 records';
    is_deeply $t->avsc_dump($f), $py, 'avsc_dump.js: same records';

    my $s = $t->avsc_gen(table => 'env_info', records => 7, codec => 'snappy', seed => 2);
    is scalar @{ $t->avrocat($s) }, 7, 'snappy file read by avrocat';
    is scalar @{ $t->avsc_dump($s) }, 7, 'snappy file read by avsc_dump.js';
};

subtest 'hostile files' => sub {
    my $t = AvroTest::Nginx->new(no_module => 1);
    my $m = $t->hostile;
    my %status = map { $_->{name} => $_->{status} } @{ $m->{cases} };
    is_deeply \%status, {
        truncated => 400, bad_magic => 400, bad_sync => 400, negative_length => 400,
        huge_length => 400, huge_count => 413, zero_count_block => 400, deep_nesting => 413,
        deflate_bomb => 413, nulls_2_40 => 413, unknown_codec => 415, schema_deep => 413,
        not_avro => 400,
    }, 'manifest statuses';
    ok -s $_->{path}, "$_->{name}: file" for @{ $m->{cases} };
    is scalar @{ $t->avro_dump($m->{control}{path}) }, 15, 'control file: 15 records';

    my %case = map { $_->{name} => $_ } @{ $m->{cases} };
    for my $name (qw(truncated bad_magic bad_sync huge_length not_avro zero_count_block)) {
        my $r = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON, "$AvroTest::Nginx::LIB/avro_dump.py",
            '--strict', '--blocks', $case{$name}{path});
        is $r->{exit}, 1, "$name: rejected by the framing check";
    }
    my $bomb = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON, "$AvroTest::Nginx::LIB/avro_dump.py",
        '--blocks', $case{deflate_bomb}{path});
    like $bomb->{out}, qr/"count":(\d+)/, 'bomb block';
    my ($n) = $bomb->{out} =~ /"count":(\d+)/;
    cmp_ok $n, '>', 2**30, 'bomb declares > 1 GiB of one-byte records';
    cmp_ok -s $case{deflate_bomb}{path}, '<', 2 * 2**20, 'bomb file is small';
};

done_testing;

