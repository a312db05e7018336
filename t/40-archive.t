#!/usr/bin/perl
# The archiver with a file: cold store, through the real nginx: a cycle run
# by avro_archive_now packs the hot rows into container files that
# python3-avro and avrocat read back whole, every block index range holds
# exactly its dataset's records, small segments make several files, the
# group with the most rows runs first, and a lease held elsewhere is a 409.

use strict;
use warnings;
use Test::More;
use JSON::PP;
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
$t->archive_conf(workers => 2, body_size => '4m',
    cold => 'file:%%PREFIX%%/var/cold',
    archive => 'interval=1h segment_size=24k lease=5s node=n1',
    locations => ['location = /status  { avro_status; }']);
$t->run;


# uploads: 5 datasets x 2 tables x 3 uploads, in an interleaved order
my (%want, $uploads, $records);
my $seed = 0;
for my $round (1 .. 3) {
    for my $ds (map { "user$_" } 1 .. 5) {
        for my $table (qw(own_ship battle)) {
            my $f = $t->avro_gen(table => $table, records => 4 + $round,
                codec => $round == 2 ? 'null' : 'deflate', seed => ++$seed);
            my $r = $t->post("/upload?dataset_id=$ds&table=$table&period_tag=p1",
                'application/avro', slurp($f));
            is $r->{status}, 201, "upload $ds $table $round" or diag $r->{content};
            push @{ $want{$ds}{$table} }, @{ $t->avro_dump($f) };
            $uploads++;
            $records += 4 + $round;
        }
    }
}

my $r = $t->request('GET', '/archive');
is $r->{status}, 405, 'GET on avro_archive_now: 405';

$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'archive now: 200' or diag $r->{content};
my $sum = $r->{json};
is $sum->{uploads}, $uploads, "summary: $uploads uploads";
is $sum->{records}, $records, "summary: $records records";
cmp_ok $sum->{files}, '>=', 3, "summary: $sum->{files} files";

is $t->hot_rows, 0, 'no hot rows left';

my $files = $t->sqlite('SELECT file_path, file_size FROM archived_files ORDER BY id');
is scalar @$files, $sum->{files}, 'one archived_files row per file';
my ($total, $bad_keys) = (0, 0);
for my $f (@$files) {
    my $path = $t->path("var/cold/$f->{file_path}");
    ok -f $path, "object $f->{file_path} exists";
    $bad_keys++ unless $f->{file_path} =~ m{^(own_ship|battle)/p1/[0-9a-f]{16}/n1-\d+\.avro$};
    is -s $path, $f->{file_size}, 'file_size is the object size';
    cmp_ok $f->{file_size}, '<=', 24 * 1024, 'no file larger than segment_size';
    my $py = $t->avro_dump($path);
    my $cat = $t->avrocat($path);
    is scalar @$cat, scalar @$py, 'avrocat reads as many records as python3-avro';
    $total += @$py;
}
is $bad_keys, 0, 'keys are {table}/{period}/{fingerprint}/{node}-{seq}.avro';
my %per_table;
$per_table{ (split m{/}, $_->{file_path})[0] }++ for @$files;
ok((grep { $_ > 1 } values %per_table), 'a group larger than segment_size became several files');
is $total, $records, 'the objects hold every record once';

# every index range: header + range decodes to exactly that dataset's records
my $lines = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON,
    "$AvroTest::Nginx::LIB/cold_slices.py", $t->path('var/hot/hot.db'),
    $t->path('var/cold'), $t->path('var/slices'));
is $lines->{exit}, 0, 'slices written' or diag $lines->{err};
my %got;
for my $line (split /\n/, $lines->{out}) {
    my $s = decode_json($line);
    my $recs = $t->avro_dump($s->{slice});
    is scalar @$recs, $s->{records}, "index $s->{index}: record_count matches";
    push @{ $got{ $s->{dataset} }{ $s->{table} } }, @$recs;
}
is_deeply \%got, \%want, 'index ranges hold exactly each dataset\'s records, in upload order';

$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'second cycle: 200';
is $r->{json}{files}, 0, 'nothing left to archive';

$r = $t->get('/status');
is $r->{status}, 200, 'status';
is $r->{json}{archive}{files}, $sum->{files}, 'status: files archived';
is $r->{json}{archive}{pending_jobs}, 0, 'status: no pending job';

# the group with the most rows runs first, so the cycle's last commit, which
# nothing overlaps, is the smallest; here it is not the first by name
for my $u (['own_ship', 1], ['own_ship', 2], ['battle', 3]) {
    my $f = $t->avro_gen(table => $u->[0], records => 2, seed => 100 + $u->[1]);
    $r = $t->post("/upload?dataset_id=order$u->[1]&table=$u->[0]&period_tag=p2",
        'application/avro', slurp($f));
    is $r->{status}, 201, "upload $u->[0] for the order check";
}
$r = $t->post('/archive', 'application/json', '');
is $r->{json}{files}, 2, 'third cycle: one file per table';
my %seq = map { m{^(\w+)/p2/.*-(\d+)\.avro$} ? ($1 => $2) : () }
    map { $_->{file_path} } @{ $t->sqlite('SELECT file_path FROM archived_files') };
cmp_ok $seq{own_ship}, '<', $seq{battle},
    'the larger group (own_ship, 2 uploads) got the earlier sequence';

# each stored file has its info line, written by the worker's own thread
# (pid#tid with tid = pid): nginx's log writers are not the pool's
my @stored = $t->error_log_matches(qr/avro archive: stored "/);
is scalar @stored, scalar @{ $t->sqlite('SELECT id FROM archived_files') },
    'a line per stored file';
is_deeply [grep { !/ (\d+)#\1: / } @stored], [],
    'all from the event loop\'s thread';

# another process holds the lease: 409
$t->sqlite("INSERT OR REPLACE INTO archive_lease (id, owner, acquired_at, expires_at) "
    . "VALUES (1, 'elsewhere:1:1', 0, CAST(strftime('%s','now') AS INTEGER) * 1000 + 60000)",
    write => 1);
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 409, 'lease held by another process: 409';
is $r->{json}{error}, 'busy', 'JSON body';

is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
is_deeply [$t->check_log_clean], [], 'error log clean';
done_testing;
