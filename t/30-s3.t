#!/usr/bin/perl
# The s3:// cold store against a real S3-compatible server (s3rver from
# the npm registry, pinned in package.json): the C tests of the backend,
# then nginx archiving to it; every object read back by python3-avro and
# every block index range decoded to exactly its dataset's records.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;

my $ROOT = $AvroTest::Nginx::ROOT;
my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $s3 = AvroTest::S3->new($t);
my ($port, $s3dir, $cred) = ($s3->port, $s3->dir, $s3->credentials);

my $bad = $t->path('var/bad.cred');
open my $bfh, '>', $bad or die $!;
print $bfh "[default]\naws_access_key_id = NOPE\naws_secret_access_key = S3RVER\n";
close $bfh;

subtest 'backend' => sub {
    local $ENV{AVS_S3_ENDPOINT} = "http://127.0.0.1:$port";
    local $ENV{AVS_S3_CREDENTIALS} = $cred;
    local $ENV{AVS_S3_BAD_CREDENTIALS} = $bad;
    my $r = AvroTest::Nginx::run_cmd("$ROOT/build/unit/objstore_s3");
    is $r->{exit}, 0, 'build/unit/objstore_s3 passes' or diag $r->{out};
    unlike $r->{out}, qr/^not ok/m, 'no failed check';
    like $r->{out}, qr/^1\.\.\d+$/m, 'ran its plan';
};

# what the workers would refuse, nginx -t refuses first
my $endpoint = "endpoint=http://127.0.0.1:$port";
for my $case (
    [ "$endpoint credentials=$cred.missing",
      qr/credentials \S+\.missing: No such file/, 'a missing credentials file' ],
    [ "$endpoint credentials=$cred region=us/east", qr/bad region "us\/east"/,
      'a bad region' ],
    [ "endpoint=ftp://127.0.0.1 credentials=$cred",
      qr/endpoint must start with http:\/\/ or https:\/\//, 'an ftp endpoint' ],
    [ "credentials=$cred", qr/s3:\/\/ needs endpoint=http\(s\):\/\/host/,
      'no endpoint' ],
    [ $endpoint, qr/s3:\/\/ needs credentials=<file>/, 'no credentials' ])
{
    my ($more, $why, $name) = @$case;
    $t->archive_conf(cold => "s3://bucket/archive $more", archive => 'interval=1h');
    my $check = $t->nginx_t;
    isnt $check->{exit}, 0, "$name: nginx -t fails";
    like $check->{err}, $why, "$name: and says why";
    unlike $check->{err}, qr/S3RVER/, "$name: no secret in the message";
}

# settings that could never work
for my $case (
    [ 'interval=1h segment_size=6g', [],
      qr/segment_size: an S3 cold store takes at most 5g/,
      'segments larger than one S3 PUT takes' ],
    [ 'interval=1h', ['location = /r { avro_read_max_ranges 0; }'],
      qr/avro_read_max_ranges must be at least 1/, 'reads of no range' ])
{
    my ($archive, $locations, $why, $name) = @$case;
    $t->archive_conf(cold => "s3://bucket/archive $endpoint credentials=$cred",
        archive => $archive, locations => $locations);
    my $check = $t->nginx_t;
    isnt $check->{exit}, 0, "$name: nginx -t fails";
    like $check->{err}, $why, "$name: and says why";
}

$t->archive_conf(workers => 2,
    cold => "s3://bucket/archive endpoint=http://127.0.0.1:$port"
        . " region=us-east-1 credentials=$cred",
    archive => 'interval=1h segment_size=24k node=n2');
$t->run;


my (%want, $records);
my $seed = 100;
for my $round (1 .. 2) {
    for my $ds (map { "s3user$_" } 1 .. 4) {
        my $f = $t->avro_gen(table => 'own_ship', records => 6, codec => 'deflate',
            seed => ++$seed);
        my $r = $t->post("/upload?dataset_id=$ds&table=own_ship&period_tag=p2",
            'application/avro', slurp($f));
        is $r->{status}, 201, "upload $ds $round";
        push @{ $want{$ds}{own_ship} }, @{ $t->avro_dump($f) };
        $records += 6;
    }
}

my $r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'archive to S3: 200' or diag $r->{content};
is $r->{json}{records}, $records, "$records records archived";
is $t->hot_rows, 0, 'no hot row left';

my $files = $t->sqlite('SELECT file_path, etag FROM archived_files');
for my $f (@$files) {
    my $obj = "$s3dir/bucket/archive/$f->{file_path}._S3rver_object";
    ok -f $obj, "object archive/$f->{file_path} is in the bucket";
    ok length($f->{etag} // ''), 'its ETag is recorded';
}

my $lines = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON,
    "$AvroTest::Nginx::LIB/cold_slices.py", $t->path('var/hot/hot.db'),
    "$s3dir/bucket/archive", $t->path('var/slices'), '._S3rver_object');
is $lines->{exit}, 0, 'slices' or diag $lines->{err};
my %got;
for my $line (split /\n/, $lines->{out}) {
    my $s = decode_json($line);
    push @{ $got{ $s->{dataset} }{ $s->{table} } }, @{ $t->avro_dump($s->{slice}) };
}
is_deeply \%got, \%want, 'index ranges hold exactly each dataset\'s records';

is_deeply [$t->check_log_clean(ignore =>
        qr/\[emerg\] .*(?:cold store: |segment_size: |avro_read_max_ranges )/)],
    [], 'error log clean but for nginx -t of the bad confs';
done_testing;
