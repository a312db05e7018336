#!/usr/bin/perl
# The S3 archive streams each file from the hot store into its PUT (no
# temporary file), signed UNSIGNED-PAYLOAD and checked by the ETag (the
# MD5 of the bytes sent).  Through the fault proxy, which checks every
# request's SigV4 signature: the streamed PUTs pass it; a PUT whose body
# is corrupted on the way is detected by its ETag, fails, and is done
# again by the next cycle; a worker killed after the PUT leaves the object
# and its pending job, and the next cycle stores the same bytes under the
# same key.  Every object is read back by python3-avro, its SHA-256 is
# the catalog's, and each dataset is indexed once.

use strict;
use warnings;
use Test::More;
use Digest::SHA;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;
use AvroTest::Archive;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $s3 = AvroTest::S3->new($t);
my $proxy = $s3->proxy(sigv4 => 1);
my $cred = $s3->credentials;
my $stop = $t->mkdir('var/stop');

$t->archive_conf(env => ["AVRO_TEST_ARCHIVE_STOP=$stop"],
    cold => "s3://bucket/stream endpoint=http://127.0.0.1:$proxy credentials=$cred",
    archive => 'interval=1h segment_size=8k lease=1s node=s1');
$t->run;

sub object { $s3->object("bucket/stream/$_[0]") }

my $ar = AvroTest::Archive->new($t, period => 'p4');
sub upload  { $ar->upload(@_) }
sub archive { $ar->archive }

# --- streamed PUTs pass the signature check -------------------------------
my $r = $ar->through_proxy($s3, qr/\(unsigned payload\)$/, 'each unsigned');
is $r->{json}{steps_ms}{build}, 0, 'no separate build: streamed into the PUT';

# --- a corrupted transfer is caught by its ETag ---------------------------
$r = $ar->under_fault($s3, 'put_corrupt');
is $r->{status}, 503, 'a PUT corrupted on the way: the cycle fails';
like $r->{json}{message}, qr/is not the MD5 .* the transfer was corrupted/,
    'the ETag differs from the MD5 of the bytes sent' or diag $r->{content};
my ($bad) = $r->{json}{message} =~ m{(battle/p4/\w+/s1-\d+\.avro)};
my $stored = slurp(object($bad));
ok defined $stored, 'the store kept the corrupted object';
is $t->sqlite(qq{SELECT state FROM archive_jobs WHERE key = '$bad'})->[0]{state},
    'pending', 'its job stays pending';
is $t->sqlite(q{SELECT count(*) AS n FROM buffer_logs WHERE dataset_id LIKE 'b%'})
    ->[0]{n}, 3, 'its uploads stay hot';

$s3->fault('pass');
$r = archive();
is $r->{status}, 200, 'store fixed: the next cycle succeeds' or diag $r->{content};
cmp_ok $r->{json}{recovered_jobs}, '>=', 1, 'it ran the failed job again';
isnt slurp(object($bad)), $stored, 'the object was stored again, whole';

# --- kill -9 after the streamed PUT -----------------------------------------
is upload("c$_"), 201, "upload c$_" for 1 .. 3;
my ($pid, $key, $child) = AvroTest::Archive::stop_at($t, $stop, 'put');
ok $pid, "a worker stopped after the PUT of $key" or BAIL_OUT('no stop');
AvroTest::Archive::kill_stopped($pid, $child);

my $sha = Digest::SHA::sha256_hex(slurp(object($key)) // '');
ok -f object($key), 'the object is there';
is $t->sqlite(qq{SELECT state FROM archive_jobs WHERE key = '$key'})->[0]{state},
    'pending', 'its job is pending';

for (1 .. 40) {
    $r = archive();
    last if $r->{status} == 200 && $r->{json}{pending_jobs} == 0;
    sleep 0.25;
}
is $r->{status}, 200, 'a later cycle succeeds' or diag $r->{content};
is $r->{json}{pending_jobs}, 0, 'nothing left pending';
is Digest::SHA::sha256_hex(slurp(object($key))), $sha, 'the same bytes under the same key';

# --- what the store holds ---------------------------------------------------
my @wrong = $s3->bad_objects('bucket/stream');
is_deeply \@wrong, [], scalar(@{ $t->sqlite('SELECT id FROM archived_files') })
    . ' objects: size, SHA-256, ETag = MD5, records read back by python3-avro';

is_deeply [$ar->misindexed], [], $ar->records . ' uploads indexed once, all records';
is $t->hot_rows, 0, 'nothing hot left';
ok !(grep { /S3RVER/ } $t->error_log), 'no credentials in the error log';
my @alerts = grep { !/exited on signal 9/ } $t->check_log_clean;
is_deeply \@alerts, [], 'no alert but the killed worker';
done_testing;
