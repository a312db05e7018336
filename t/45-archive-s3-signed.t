#!/usr/bin/perl
# avro_cold_store s3://... payload=signed: for buckets whose ETags are not
# MD5s (SSE-KMS, SSE-C), the archiver builds each file in its temporary
# directory (next to the hot store) and PUTs it with its SHA-256 signed,
# so that the store checks the bytes.  Through the fault proxy, which
# checks every signature and that a signed hash is the body's: the PUTs
# pass it, each says its payload is signed; a body corrupted before the
# check is refused as a store that checks it would refuse it, the cycle
# fails, and the next one stores the same job whole.  No temporary file is
# left; every object is read back by python3-avro.  A bad payload= value
# stops nginx -t.  nginx runs at the debug log level, so that the debug
# lines of the module's events (the busy timer's too) are written.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;
use AvroTest::Archive;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
my $s3 = AvroTest::S3->new($t);
my $proxy = $s3->proxy(sigv4 => 1);
my $cred = $s3->credentials;

sub conf {
    my ($payload) = @_;
    $t->archive_conf(
        cold => "s3://bucket/signed endpoint=http://127.0.0.1:$proxy"
            . " credentials=$cred payload=$payload",
        archive => 'interval=1h segment_size=8k');
}

conf('sometimes');
my $check = $t->nginx_t;
isnt $check->{exit}, 0, 'payload=sometimes: nginx -t fails';
like $check->{err}, qr/invalid payload "sometimes", use "signed" or "unsigned"/,
    'and says which values it takes';

conf('signed');
is $t->nginx_t->{exit}, 0, 'payload=signed: nginx -t passes';
$t->run;

my $ar = AvroTest::Archive->new($t, period => 'p5');
sub upload  { $ar->upload(@_) }
sub archive { $ar->archive }

# --- signed PUTs ------------------------------------------------------------
my $r = $ar->through_proxy($s3, qr/\(signed payload\)/,
    'each with its SHA-256 signed');
cmp_ok $r->{json}{files}, '>=', 2, "$r->{json}{files} files";

# --- a body corrupted before a store that checks it -------------------------
$r = $ar->under_fault($s3, 'put_corrupt_early');
is $r->{status}, 503, 'a corrupted PUT is refused: the cycle fails';
like $r->{json}{message}, qr/XAmzContentSHA256Mismatch/,
    'the store said why' or diag $r->{content};
cmp_ok $t->sqlite(q{SELECT count(*) AS n FROM archive_jobs WHERE state = 'pending'})
    ->[0]{n}, '>=', 1, 'its job stays pending';
is $t->sqlite(q{SELECT count(*) AS n FROM buffer_logs WHERE dataset_id LIKE 'b%'})
    ->[0]{n}, 3, 'its uploads stay hot';

$s3->fault('pass');
$r = archive();
is $r->{status}, 200, 'store fixed: the next cycle succeeds' or diag $r->{content};
cmp_ok $r->{json}{recovered_jobs}, '>=', 1, 'it ran the failed job again';

# --- what the store holds ---------------------------------------------------
opendir my $dh, $t->path('var/hot/hot.db.archive') or die $!;
is_deeply [grep { !/^\.\.?$/ } readdir $dh], [], 'no temporary file left';

my @wrong = $s3->bad_objects('bucket/signed');
is_deeply \@wrong, [], scalar(@{ $t->sqlite('SELECT id FROM archived_files') })
    . ' objects: size, SHA-256, ETag, records read back by python3-avro';

is_deeply [$ar->misindexed], [], $ar->records . ' uploads indexed once, all records';
is $t->hot_rows, 0, 'nothing hot left';
ok !(grep { /S3RVER/ } $t->error_log), 'no credentials in the error log';
is_deeply [$t->check_log_clean(ignore => qr/invalid payload "sometimes"/)], [],
    'no alert in the error log but nginx -t\'s';
done_testing;
