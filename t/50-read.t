#!/usr/bin/perl
# The read path with a file: cold store, through the real nginx: avro_read
# answers one dataset's data of one table as one container file, archived
# ranges (fetched by subrequests to the static location of
# conf/avro-read-file.conf) then hot uploads, read back by python3-avro,
# avrocat and avsc; never a byte of another dataset; the period, time and
# schema choices; the 409, the empty answer, the 4xx; basic auth with
# avro_dataset $remote_user; a damaged object aborts the answer.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64);
use Cwd qw(getcwd);
use Time::HiRes qw(time sleep);
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::Read;

my $ROOT = getcwd();
my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');

# alice:secret and bob:secret (crypt, as nginx's auth_basic reads them)
open my $pw, '>', $t->path('htpasswd') or die $!;
print $pw 'alice:' . crypt('secret', 'ab') . "\n", 'bob:' . crypt('secret', 'cd') . "\n";
close $pw;

$t->write_conf(<<"CONF");
worker_processes 2;
events {}
http {
    avro_hot_store  %%PREFIX%%/var/hot/hot.db;
    avro_cold_store file:%%PREFIX%%/var/cold;
    avro_archive    interval=1h segment_size=24k lease=5s node=n1;

    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 4m;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }

        include $ROOT/conf/avro-read-file.conf;
        location = /read { avro_read /_avro_cold/; }

        # without the shipped conf's open_file_cache, so that a damaged
        # object is seen at once
        location /_avro_raw/ { internal; alias %%PREFIX%%/var/cold/; }
        location = /read-raw { avro_read /_avro_raw/; }

        # hot blocks past 1 KiB wait in a temporary file
        location = /read-spill { avro_read /_avro_cold/; avro_read_hot_memory 1k; }
        location = /read-few { avro_read /_avro_cold/; avro_read_max_ranges 1; }

        # each user reads their own data: the dataset is the user name
        location /me/ {
            auth_basic           "avro";
            auth_basic_user_file %%PREFIX%%/htpasswd;
            avro_dataset         \$remote_user;
            avro_table           own_ship;
            avro_read            /_avro_cold/;
        }
    }

    # a tiny send buffer: the answers wait for a slow client at every part
    server {
        listen 127.0.0.1:%%PORT2%% sndbuf=2k;
        include $ROOT/conf/avro-read-file.conf;
        location = /read { avro_read /_avro_cold/; }
    }
}
CONF
$t->run;

my $rd = AvroTest::Read->new($t);
sub upload  { $rd->upload(@_) }
sub all_of  { $rd->all_of(@_) }
sub read_ok { $rd->read_ok(@_) }
sub save    { $rd->save(@_) }

subtest 'hot only, then archived, then archived and hot' => sub {
    for my $round (1 .. 2) {
        for my $ds (qw(u1 u2 u3 u4)) {
            upload($ds, 'own_ship', 'p1', records => 2 + $round);
            upload($ds, 'battle', 'p1');
        }
    }

    for my $ds (qw(u1 u2 u3 u4)) {
        my $got = read_ok("/read?dataset_id=$ds&table=own_ship", "$ds hot");
        is_deeply $got, all_of($ds, 'own_ship'), "$ds: hot records in upload order";
    }

    my $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'archive cycle' or diag $r->{content};
    is $t->hot_rows, 0, 'all archived';
    cmp_ok $t->sqlite('SELECT count(*) AS n FROM archived_files')->[0]{n}, '>=', 2,
        'several files';

    for my $ds (qw(u1 u2 u3 u4)) {
        my $got = read_ok("/read?dataset_id=$ds&table=own_ship", "$ds cold");
        is_deeply $got, all_of($ds, 'own_ship'), "$ds: archived records in order";
    }

    # more uploads stay hot: cold first, then hot, in upload order
    upload($_, 'own_ship', 'p1', records => 5) for qw(u1 u2 u3 u4);
    for my $ds (qw(u1 u2 u3 u4)) {
        my $got = read_ok("/read?dataset_id=$ds&table_name=own_ship", "$ds cold+hot");
        is_deeply $got, all_of($ds, 'own_ship'), "$ds: cold then hot";
        $got = read_ok("/read?dataset_id=$ds&table=battle", "$ds battle");
        is_deeply $got, all_of($ds, 'battle'), "$ds: the other table";
    }
};

subtest 'reads during an archive cycle see every upload once' => sub {
    my @files = map { $t->avro_gen(table => 'own_ship', records => 60, seed => 500 + $_) } 1 .. 10;
    for my $f (@files) {
        $rd->upload_file($_, 'own_ship', 'p7', $f) for qw(d1 d2 d3);
    }
    # the answers are kept and checked after the cycle, each distinct one
    # once, so that many reads fall inside the cycle
    my (%seen, %hot, $reads, $failed);
    my $n = $rd->during_cycle('/archive', sub {
        $hot{ $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE dataset_id LIKE 'd_'")->[0]{n} }++;
        for my $ds (qw(d1 d2 d3)) {
            my $r = $t->get("/read?dataset_id=$ds&table=own_ship");
            $reads++;
            $failed++, next if $r->{status} != 200;
            $seen{$ds}{ $r->{content} }++;
        }
    });
    cmp_ok $n, '>=', 2, "$n rounds of reads during the cycle";
    ok((grep { $_ > 0 && $_ < 30 } keys %hot), 'some rounds saw the cycle half done ('
        . join(',', sort { $b <=> $a } keys %hot) . ' hot)');
    is $failed // 0, 0, "all $reads reads answered 200";
    for my $ds (qw(d1 d2 d3)) {
        my @answers = keys %{ $seen{$ds} };
        my $bad = grep { !Test::More::_deep_check($t->avro_dump(save($_)), all_of($ds, 'own_ship')) } @answers;
        is $bad, 0, "$ds: each of its " . scalar(@answers) . ' distinct answers held every record once, in order';
    }
    is $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE dataset_id LIKE 'd_'")->[0]{n}, 0,
        'then all archived';
    is_deeply scalar(read_ok("/read?dataset_id=d2&table=own_ship", "d2 after")), all_of("d2", "own_ship"),
        'and read whole after';
};

subtest 'hot blocks past avro_read_hot_memory go through a temporary file' => sub {
    $rd->upload('big', 'own_ship', 'p1', records => 30) for 1 .. 3;
    my ($got, $r) = read_ok('/read-spill?dataset_id=big&table=own_ship', 'spilled');
    is_deeply $got, all_of('big', 'own_ship'), 'every record, in order';
    cmp_ok length $r->{content}, '>', 4096, 'more than the 1 KiB kept in memory';
    is $r->{content}, $t->get('/read?dataset_id=big&table=own_ship')->{content},
        'the same bytes as from memory';
    opendir my $dh, $t->path('tmp/client_body') or die $!;
    is scalar(grep { !/^\./ } readdir $dh), 0, 'no temporary file left behind';
};

subtest 'a slow client gets the same bytes' => sub {
    for my $ds (qw(d1 big)) {
        my $uri = "/read?dataset_id=$ds&table=own_ship";
        my $want = $t->get($uri)->{content};
        my $f = $t->path("var/slow-$ds.avro");
        my $r = AvroTest::Nginx::run_cmd('curl', '-sS', '--limit-rate', '400k', '-o', $f,
            'http://127.0.0.1:' . $t->port(2) . $uri);
        is $r->{exit}, 0, "$ds: curl at 400 KB/s" or diag $r->{err};
        ok slurp($f) eq $want, "$ds: the same " . length($want) . ' bytes';
    }

    # a client that leaves in the middle: no error, the worker goes on
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port(2))
        or die "connect: $!";
    print $s "GET /read?dataset_id=d1&table=own_ship HTTP/1.1\r\nHost: x\r\n\r\n";
    my $got = '';
    sysread $s, $got, 4096;
    like $got, qr{^HTTP/1.1 200}, 'a client reads the start of an answer';
    close $s;
    sleep 0.5;
    my @lines = grep { /host: "x"/ } split /\n/, $t->error_log;
    ok((grep { /\[info\].*(?:client prematurely closed|client went away)/ } @lines),
        'its leaving is noted at info');
    is scalar(grep { /\[(?:error|crit|alert)\]/ } @lines), 0, 'as no error';
    is $t->get('/read?dataset_id=d1&table=own_ship')->{status}, 200, 'and nginx goes on';
};

subtest 'isolation: no byte of another dataset' => sub {
    my $idx = $t->sqlite('SELECT b.dataset_id, f.file_path, b.start_byte, b.length'
        . ' FROM block_indexes b JOIN archived_files f ON f.id = b.file_id'
        . " WHERE b.table_name = 'own_ship'");
    my %shared;
    $shared{ $_->{file_path} }{ $_->{dataset_id} } = 1 for @$idx;
    ok((grep { keys %$_ > 1 } values %shared), 'datasets share archived files');

    my $r = $t->get('/read?dataset_id=u1&table=own_ship');
    is $r->{status}, 200, 'u1 read';
    my ($mine, $others) = (0, 0);
    for my $i (@$idx) {
        my $obj = slurp($t->path("var/cold/$i->{file_path}"));
        my $bytes = substr $obj, $i->{start_byte}, $i->{length};
        if ($i->{dataset_id} eq 'u1') {
            $mine++ if index($r->{content}, $bytes) >= 0;
        } else {
            $others++ if index($r->{content}, $bytes) >= 0;
        }
    }
    is $mine, scalar(grep { $_->{dataset_id} eq 'u1' } @$idx), "each of u1's ranges is in the answer";
    is $others, 0, "none of the other datasets' ranges is";
    my $hot = $t->sqlite("SELECT coalesce(sum(length(data)), 0) AS n FROM buffer_logs WHERE dataset_id = 'u1'"
        . " AND table_name = 'own_ship'")->[0]{n};
    my $cold = 0;
    $cold += $_->{length} for grep { $_->{dataset_id} eq 'u1' } @$idx;
    my $header = $t->avro_dump(save($r->{content}), '--blocks');
    cmp_ok length($r->{content}), '==', $hot + $cold + $header->[0]{offset},
        'answer = header + its ranges + its hot rows, nothing else';
};

subtest 'periods and time' => sub {
    upload('u5', 'own_ship', 'p1');
    upload('u5', 'own_ship', 'p2');
    my $got = read_ok('/read?dataset_id=u5&table=own_ship&period_tag=p2', 'period p2');
    is_deeply $got, all_of('u5', 'own_ship', 'p2'), 'period_tag selects p2 only';
    $got = read_ok('/read?dataset_id=u5&table=own_ship&period=p1', 'period p1');
    is_deeply $got, all_of('u5', 'own_ship', 'p1'), 'period selects p1 only';
    $got = read_ok('/read?dataset_id=u5&table=own_ship', 'every period');
    is_deeply $got, all_of('u5', 'own_ship', 'p1', 'p2'), 'no period: both, in upload order';

    sleep 0.05;
    my $mid = int(time * 1000);
    sleep 0.05;
    my $late = upload('u5', 'own_ship', 'p2');
    $got = read_ok("/read?dataset_id=u5&table=own_ship&from=$mid", 'from');
    is_deeply $got, $late, 'from: only the uploads received since';
    $got = read_ok("/read?dataset_id=u5&table=own_ship&to=$mid", 'to');
    my @all = @{ all_of('u5', 'own_ship', 'p1', 'p2') };
    is_deeply $got, [ @all[0 .. $#all - @$late] ], 'to: only the uploads received before';
    $got = read_ok("/read?dataset_id=u5&table=own_ship&from=1&to=2", 'empty window');
    is scalar @$got, 0, 'a window with no upload: no record';
};

subtest 'several schemas: 409, then schema=' => sub {
    my $old = "$AvroTest::Nginx::TESTDATA/fusou/schema_v0_4.json";
    my (undef, $new_fp) = upload('u6', 'own_ship', 'p1');
    my $v04 = $t->avro_gen(table => 'own_ship', records => 2, seed => 999, schemas => $old);
    my $r = $t->post('/upload?dataset_id=u6&table=own_ship&period_tag=p9', 'application/avro', slurp($v04));
    is $r->{status}, 201, 'upload with the v0.4 schema';
    my $old_fp = $r->{json}{schema_fingerprint};
    isnt $old_fp, $new_fp, 'two fingerprints';

    $r = $t->get('/read?dataset_id=u6&table=own_ship');
    is $r->{status}, 409, 'two schemas, none chosen: 409';
    is $r->{json}{error}, 'conflict', 'JSON body';
    my %listed = map { $_->{fingerprint} => $_->{periods} } @{ $r->{json}{schemas} // [] };
    is_deeply \%listed, { $new_fp => ['p1'], $old_fp => ['p9'] }, 'lists each schema with its periods';

    my $got = read_ok("/read?dataset_id=u6&table=own_ship&schema=$old_fp", 'schema=old');
    is_deeply $got, $t->avro_dump($v04), 'schema= picks the v0.4 records';
    ($got, $r) = read_ok("/read?dataset_id=u6&table=own_ship&schema=$new_fp", 'schema=new');
    is_deeply $got, all_of('u6', 'own_ship', 'p1'), 'and the other one';
    is $r->{headers}{'x-avro-schema'}, $new_fp, 'X-Avro-Schema names it';
    $got = read_ok('/read?dataset_id=u6&table=own_ship&period_tag=p9', 'period with one schema');
    is scalar @$got, 2, 'a period with one schema needs no choice';

    $r = $t->get('/read?dataset_id=u6&table=own_ship&schema=0123456789abcdef');
    is $r->{status}, 404, 'a schema the table never had: 404';
    is $r->{json}{error}, 'not_found', 'JSON body';
};

subtest 'empty answers' => sub {
    my ($got, $r) = read_ok('/read?dataset_id=nobody&table=battle', 'no data');
    is scalar @$got, 0, 'a valid file of no record';
    ok $r->{headers}{'x-avro-schema'}, 'with the table\'s only schema';
    ($got, $r) = read_ok('/read?dataset_id=nobody&table=own_ship', 'no data, several schemas');
    is scalar @$got, 0, 'a valid file of no record';
    ($got, $r) = read_ok('/read?dataset_id=nobody&table=never', 'unknown table');
    is scalar @$got, 0, 'a valid file of no record';
    $r = $t->request('HEAD', '/read?dataset_id=u1&table=own_ship');
    is $r->{status}, 200, 'HEAD: 200';
    cmp_ok $r->{headers}{'content-length'}, '>', 1000, 'HEAD: the length of the file';
    is length($r->{content} // ''), 0, 'HEAD: no body';
};

subtest 'more ranges than avro_read_max_ranges: 413' => sub {
    my $n = $t->sqlite("SELECT count(*) AS n FROM block_indexes WHERE dataset_id = 'u1'"
        . " AND table_name = 'own_ship'")->[0]{n};
    cmp_ok $n, '>', 1, "u1 has $n ranges";
    my $r = $t->get('/read-few?dataset_id=u1&table=own_ship');
    is $r->{status}, 413, 'more than 1: 413';
    like $r->{json}{message} // '', qr/avro_read_max_ranges/, 'the JSON says why';
    is $t->get('/read-few?dataset_id=u1&table=battle')->{status}, 200, 'one range: 200';
};

subtest 'bad requests' => sub {
    for my $c (['/read?table=own_ship', 'no dataset'],
               ['/read?dataset_id=u1', 'no table'],
               ['/read?dataset_id=../etc&table=own_ship', 'dataset with ..'],
               ['/read?dataset_id=u1&table=own%2Fship', 'table with a slash'],
               ['/read?dataset_id=u1&table=own_ship&period_tag=.hidden', 'period with a dot'],
               ['/read?dataset_id=u1&table=own_ship&schema=xyz', 'bad schema'],
               ['/read?dataset_id=u1&table=own_ship&schema=0123456789ABCDEF', 'upper case schema'],
               ['/read?dataset_id=u1&table=own_ship&from=yesterday', 'bad from'],
               ['/read?dataset_id=u1&table=own_ship&from=5&to=4', 'from after to'])
    {
        my $r = $t->get($c->[0]);
        is $r->{status}, 400, "$c->[1]: 400";
        is $r->{json}{error}, 'malformed', "$c->[1]: JSON body" or diag $r->{content};
    }
    my $r = $t->post('/read?dataset_id=u1&table=own_ship', 'application/json', '{}');
    is $r->{status}, 405, 'POST: 405';
    is $r->{headers}{allow}, 'GET, HEAD', 'Allow: GET, HEAD';
    $r = $t->get('/_avro_cold/own_ship/');
    is $r->{status}, 404, 'the internal location is not reachable from outside';
};

subtest 'basic auth: avro_dataset $remote_user' => sub {
    upload('alice', 'own_ship', 'p1');
    upload('bob', 'own_ship', 'p1');
    my $r = $t->get('/me/own_ship');
    is $r->{status}, 401, 'no credentials: 401';
    my %auth = (headers => { Authorization => 'Basic ' . encode_base64('alice:secret', '') });
    my $got = read_ok('/me/own_ship', 'alice', %auth);
    is_deeply $got, all_of('alice', 'own_ship'), 'alice reads her records';
    $got = read_ok('/me/own_ship?dataset_id=bob', 'alice asks for bob', %auth);
    is_deeply $got, all_of('alice', 'own_ship'), 'the query cannot choose another dataset';
};

subtest 'a damaged object aborts the answer' => sub {
    my $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'archive cycle';
    my $f = $t->sqlite("SELECT f.file_path, b.start_byte, b.length FROM block_indexes b"
        . " JOIN archived_files f ON f.id = b.file_id WHERE b.dataset_id = 'u2'"
        . " AND b.table_name = 'battle' ORDER BY f.id DESC LIMIT 1")->[0];
    my $path = $t->path("var/cold/$f->{file_path}");
    my $saved = slurp($path);

    truncate $path, $f->{start_byte} + int($f->{length} / 2) or die $!;
    $r = $t->get('/read-raw?dataset_id=u2&table=battle');
    isnt $r->{status}, 200, 'a short object: the transfer is cut (' . $r->{status} . ')';
    ok $t->error_log_matches(qr/avro read: "\Q$f->{file_path}\E" bytes \d+-\d+: .*answer aborted/),
        'the error log names the object and the range';

    unlink $path or die $!;
    $r = $t->get('/read-raw?dataset_id=u2&table=battle');
    isnt $r->{status}, 200, 'a missing object: the transfer is cut (' . $r->{status} . ')';
    like $r->{content}, qr/(?:closed|EOF|short|Unexpected)/i, 'the client can tell' or diag $r->{content};

    open my $fh, '>:raw', $path or die $!;
    print $fh $saved;
    close $fh;
    my $got = read_ok('/read-raw?dataset_id=u2&table=battle', 'object back');
    is_deeply $got, all_of('u2', 'battle'), 'whole again';
};

is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
# nginx itself reports the short file it was asked to send
is_deeply [$t->check_log_clean(ignore => qr/sendfile\(\) reported that .* was truncated/)], [],
    'error log clean';
done_testing;
