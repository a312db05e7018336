#!/usr/bin/perl
# The read path with an s3:// cold store: archived ranges are fetched by
# subrequests through nginx's proxy module (conf/avro-read-s3.conf), signed
# with the $avro_s3_* variables, from a real S3-compatible server (s3rver)
# behind t/lib/faultproxy.pl, which checks every signature independently.
# Reads before, during and after archive cycles hold exactly each
# dataset's records; a store that answers wrong (the whole object, a short
# body, another range, 404, 503) aborts the answer and the log says why.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::Read;
use AvroTest::S3;

my $ROOT = $AvroTest::Nginx::ROOT;
my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $s3 = AvroTest::S3->new($t);
my $proxy = $s3->proxy(sigv4 => 1);
my $cred = $s3->credentials;

$t->write_conf(<<"CONF");
worker_processes 2;
events {}
http {
    avro_hot_store  %%PREFIX%%/var/hot/hot.db;
    avro_cold_store s3://bucket/archive endpoint=http://127.0.0.1:$proxy
                    region=us-east-1 credentials=$cred;
    avro_archive    interval=1h segment_size=24k node=n3;

    upstream avro_s3 {
        server     127.0.0.1:$proxy;
    }

    server {
        listen 127.0.0.1:%%PORT%%;
        client_max_body_size 4m;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }

        include $ROOT/conf/avro-read-s3.conf;
        location = /read { avro_read /_avro_s3/; }
    }
}
CONF
$t->run;

my $rd = AvroTest::Read->new($t, seed => 300);
my @ds = map { "s$_" } 1 .. 4;

subtest 'before, during and after archive cycles' => sub {
    my @files = map { $t->avro_gen(table => 'own_ship', records => 40, seed => 700 + $_) } 1 .. 6;
    for my $f (@files) {
        $rd->upload_file($_, 'own_ship', 'p1', $f) for @ds;
    }
    $rd->upload($_, 'battle', 'p1') for @ds;

    for my $d (@ds) {
        is_deeply scalar($rd->read_ok("/read?dataset_id=$d&table=own_ship", "$d before")),
            $rd->all_of($d, 'own_ship'), "$d before: its records";
    }

    # every PUT waits a little: the cycle lasts long enough to read in it
    $s3->fault('delay 50');
    my (%seen, %hot, $failed);
    my $n = $rd->during_cycle('/archive', sub {
        $hot{ $t->hot_rows }++;
        for my $d (@ds) {
            my $r = $t->get("/read?dataset_id=$d&table=own_ship");
            $failed++, next if $r->{status} != 200;
            $seen{$d}{ $r->{content} }++;
        }
    });
    $s3->fault('pass');
    cmp_ok $n, '>=', 2, "$n rounds of reads during the cycle";
    ok((grep { $_ > 0 && $_ < 28 } keys %hot), 'some rounds saw the cycle half done ('
        . join(',', sort { $b <=> $a } keys %hot) . ' hot)');
    is $failed // 0, 0, 'every read during the cycle answered 200';
    for my $d (@ds) {
        my @answers = keys %{ $seen{$d} };
        my $bad = grep { !Test::More::_deep_check($t->avro_dump($rd->save($_)), $rd->all_of($d, 'own_ship')) } @answers;
        is $bad, 0, "$d: each distinct answer during the cycle held every record once";
    }
    is $t->hot_rows, 0, 'all archived';

    $rd->upload($_, 'own_ship', 'p1', records => 7) for @ds;
    for my $d (@ds) {
        is_deeply scalar($rd->read_ok("/read?dataset_id=$d&table=own_ship", "$d after")),
            $rd->all_of($d, 'own_ship'), "$d after: archived then hot";
        is_deeply scalar($rd->read_ok("/read?dataset_id=$d&table=battle", "$d battle")),
            $rd->all_of($d, 'battle'), "$d: the other table";
    }
    my $log = AvroTest::Read::slurp($t->path('logs/proxy.log'));
    like $log, qr{^GET /bucket/archive/own_ship/p1/[0-9a-f]{16}/n3-\d+\.avro: pass$}m,
        'ranges went through the proxy, signed';
    unlike $log, qr/refused/, 'the proxy refused no signature';
};

subtest 'a store that answers wrong aborts the answer' => sub {
    my $d = $ds[0];
    my $want = $rd->all_of($d, 'own_ship');
    for my $c (['get_whole', qr/answered 200/, '200 with the whole object'],
               ['get_short', qr/sent \d+ of \d+ bytes|fetch failed/, 'a short body'],
               ['get_badrange', qr/answered 206, .*Content-Range "bytes \d+/, 'another range'],
               ['get_404', qr/answered 404|fetch failed/, '404'],
               ['503', qr/answered 503|fetch failed/, '503'])
    {
        my ($mode, $why, $name) = @$c;
        my $before = () = $t->error_log_matches(qr/avro read: .*answer aborted/);
        $s3->fault($mode);
        my $r = $t->get("/read?dataset_id=$d&table=own_ship");
        $s3->fault('pass');
        isnt $r->{status}, 200, "$name: the transfer is cut ($r->{status})";
        like $r->{content}, qr/Unexpected end of stream|closed/i, "$name: the client can tell";
        my @lines = $t->error_log_matches(qr/avro read: .*answer aborted/);
        cmp_ok scalar(@lines), '>', $before, "$name: logged";
        like join("\n", @lines[$before .. $#lines]),
            qr{"own_ship/p1/[0-9a-f]{16}/n3-\d+\.avro" bytes \d+-\d+: .*$why}, "$name: the log names the object, the range and why";
    }
    is_deeply scalar($rd->read_ok("/read?dataset_id=$d&table=own_ship", 'store back')), $want,
        'the store back: whole again';
};

is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
is_deeply [$t->check_log_clean], [], 'error log clean';
done_testing;
