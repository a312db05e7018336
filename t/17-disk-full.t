#!/usr/bin/perl
# A disk that fills up, for real: the hot store and the file: cold store
# each on a small tmpfs of their own.  While the hot store's disk is full
# uploads are answered 503 with a JSON body and nothing of them is stored;
# once space is freed they are taken again, without a restart.  While the
# cold store's disk is full the cycle fails, the rows stay hot, and the
# next cycle archives them, each once; so too when the hot store's disk
# fills up under the cycle's commit.  Skipped where tmpfs cannot be
# mounted (not root, or no CAP_SYS_ADMIN).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;

plan skip_all => 'mounting tmpfs needs root' if $> != 0;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
$t->mount_tmpfs('var/hot', '4m') && $t->mount_tmpfs('var/cold', '1m')
    or plan skip_all => 'cannot mount tmpfs here';

$t->archive_conf(workers => 2, cold => 'file:%%PREFIX%%/var/cold',
    archive => 'interval=1h node=df',
    locations => ['location = /status { avro_status; }']);
$t->run;

my $n = 0;
my %file;
sub upload {
    my ($records) = @_;
    my $f = $file{$records} //= slurp($t->avro_gen(table => 'own_ship',
        records => $records, seed => $records, codec => 'null'));
    $n++;
    return $t->post("/upload?dataset_id=u$n&table=own_ship",
        'application/avro', $f);
}

subtest 'the hot store disk fills up' => sub {
    my @w0 = sort $t->worker_pids;
    is upload(20)->{status}, 201, 'an upload while there is room';
    my $ballast = $t->fill_disk('var/hot', 256 * 1024);

    my ($accepted, $r) = (1);
    for (1 .. 200) {
        $r = upload(20);
        last if $r->{status} != 201;
        $accepted++;
    }
    is $r->{status}, 503, "after $accepted uploads: 503";
    is $r->{json}{error}, 'full', 'JSON: full';
    like $r->{json}{message}, qr/full/i, "says so: $r->{json}{message}";
    ok $r->{headers}{'retry-after'}, 'with Retry-After';
    is upload(20)->{status}, 503, 'and again';
    is $t->get('/status')->{status}, 200, 'the status answers';
    ok $t->error_log_matches(qr/\[error\].*full/i), 'the error log says why';

    unlink $ballast;
    $r = upload(20);
    is $r->{status}, 201, 'space freed: uploads are taken again'
        or diag $r->{content};
    $accepted++;
    for (1 .. 5) {
        $accepted++ if upload(20)->{status} == 201;
    }
    is $t->hot_rows, $accepted,
        "every acknowledged upload stored ($accepted), none of the refused";
    is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok',
        'integrity_check';
    is_deeply [sort $t->worker_pids], \@w0, 'the same workers';
};

subtest 'the cold store disk fills up' => sub {
    my $rows = $t->hot_rows;
    my $ballast = $t->fill_disk('var/cold', 8 * 1024);
    my $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 503, 'a cycle into a full disk: 503' or diag $r->{content};
    like $r->{json}{message}, qr/space|full/i, "says so: $r->{json}{message}";
    is $t->hot_rows, $rows,
        'the rows stay hot';
    my @tmp = `find @{[$t->path('var/cold')]} -name '*.tmp'`;
    is scalar @tmp, 0, 'the partial file is removed, its space given back'
        or diag @tmp;
    is upload(2)->{status}, 201, 'uploads go on meanwhile';
    $rows++;

    unlink $ballast;
    $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'room made: the cycle succeeds' or diag $r->{content};
    is $r->{json}{uploads}, $rows, "every hot upload archived ($rows)";
    is $t->hot_rows, 0,
        'no hot row left';
    is $t->sqlite('SELECT count(DISTINCT dataset_id) AS n FROM block_indexes')
        ->[0]{n}, $rows, 'each upload indexed once';
    my $files = $t->sqlite('SELECT file_path, file_size FROM archived_files');
    my $records = 0;
    for my $f (@$files) {
        my $path = $t->path("var/cold/$f->{file_path}");
        is -s $path, $f->{file_size}, "$f->{file_path}: its size";
        $records += @{ $t->avro_dump($path) };
    }
    is $records, ($rows - 1) * 20 + 2, 'python3-avro reads every record';
    @tmp = `find @{[$t->path('var/cold')]} -name '*.tmp'`;
    is scalar @tmp, 0, 'no temporary file left' or diag @tmp;
};

subtest 'the hot store disk fills up during a cycle' => sub {
    is upload(20)->{status}, 201, "upload $_" for 1 .. 3;
    my $ballast = $t->fill_disk('var/hot', 0);
    my $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 503, 'the commit cannot be written: 503'
        or diag $r->{content};
    like $r->{json}{message}, qr/full/i, "says so: $r->{json}{message}";
    is $t->hot_rows, 3,
        'the rows stay hot';
    ok $t->error_log_matches(qr/avro archive cycle failed .*full/),
        'the error log has the failure (the status, kept in the same file, '
        . 'cannot count it)';

    unlink $ballast;
    $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'space freed: the cycle succeeds' or diag $r->{content};
    is $t->hot_rows, 0,
        'no hot row left';
    is $t->sqlite('SELECT count(*) AS n FROM block_indexes WHERE dataset_id '
        . "IN ('u" . ($n - 2) . "', 'u" . ($n - 1) . "', 'u$n')")->[0]{n}, 3,
        'each of the three indexed once';
    is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok',
        'integrity_check';
    my $cold = $t->path('var/cold');
    my @objects = sort map { s{^\Q$cold\E/}{}r } split /\n/,
        `find $cold -type f -name '*.avro'`;
    is_deeply \@objects, [sort map { $_->{file_path} }
        @{ $t->sqlite('SELECT file_path FROM archived_files') }],
        'every object in the cold store is in the catalog, and no other';
};

is_deeply [$t->check_log_clean], [], 'no alert, crit or crash';
done_testing;
