#!/usr/bin/perl
# kill -9 of the archiving worker at each step of a cycle: after the claim,
# after the build, after the put, after the commit.  The test-only stop
# points (AVRO_TEST_ARCHIVE_STOP, passed with nginx's env directive) hold
# the cycle's pool thread at the step until the test kills the worker.
# Each time, what the kill left is checked, a later cycle recovers, and
# then every acknowledged upload is hot or indexed, once; a job killed
# after its put stores the same bytes under the same key; no temporary
# file is left in the store.

use strict;
use warnings;
use Test::More;
use Digest::SHA;
use File::Find;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::Archive;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $stop = $t->mkdir('var/stop');
$t->archive_conf(workers => 2, env => ["AVRO_TEST_ARCHIVE_STOP=$stop"],
    cold => 'file:%%PREFIX%%/var/cold',
    archive => 'interval=1h segment_size=4k lease=1s node=k1');
$t->run;


sub sha_of { my $d = slurp($_[0]); defined $d ? Digest::SHA::sha256_hex($d) : '' }

sub temp_files {
    my @found;
    find(sub { push @found, $File::Find::name if -f && /^\.avs-/ }, $t->path('var/cold'))
        if -d $t->path('var/cold');
    return @found;
}

my %bodies = map { my $tb = $_; $tb => [map { slurp($t->avro_gen(table => $tb,
    records => 5, codec => 'deflate', seed => $_)) } 1 .. 2] } qw(own_ship battle);

my (@acked, %records);

# one whole cycle, retried while the killed owner's lease runs out
sub recover {
    my $r;
    for (1 .. 40) {
        $r = $t->post('/archive', 'application/json', '', timeout => 30);
        last if $r->{status} == 200 && $r->{json}{pending_jobs} == 0;
        sleep 0.25;
    }
    return $r;
}

for my $step (qw(claimed built put committed)) {
    for my $i (1 .. 8) {
        my $table = $i % 2 ? 'own_ship' : 'battle';
        my $ds = "$step-$i";
        my $r = $t->post("/upload?dataset_id=$ds&table=$table", 'application/avro',
            $bodies{$table}[$i % 2]);
        is $r->{status}, 201, "$step: upload $ds" or diag $r->{content};
        push @acked, $ds;
        $records{$ds} = 5;
    }

    # arm the step, run a cycle in a child, wait for the worker to stop
    my ($pid, $key, $child) = AvroTest::Archive::stop_at($t, $stop, $step);
    ok $pid, "$step: a worker stopped there (job $key)" or next;
    ok AvroTest::Archive::kill_stopped($pid, $child), "$step: kill -9 $pid";

    # what the kill left
    my $pending = $t->sqlite(q{SELECT count(*) AS n FROM archive_jobs
                               WHERE state = 'pending'})->[0]{n};
    my $hot = $t->sqlite(qq{SELECT count(*) AS n FROM buffer_logs
                            WHERE dataset_id LIKE '$step-%'})->[0]{n};
    my $object = $key eq '-' ? undef : $t->path("var/cold/$key");
    my $sha;

    if ($step eq 'claimed') {
        cmp_ok $pending, '>=', 2, "claimed: $pending jobs pending";
        is $hot, 8, 'claimed: the uploads are hot';
    } elsif ($step eq 'built') {
        ok !-e $object, 'built: no object yet';
        is scalar(() = temp_files()), 1, 'built: its temporary file, in the store';
        is $hot, 8, 'built: the uploads are hot';
    } elsif ($step eq 'put') {
        ok -f $object, 'put: the object is there';
        $sha = sha_of($object);
        is $t->sqlite(qq{SELECT state FROM archive_jobs WHERE key = '$key'})->[0]{state},
            'pending', 'put: its job is pending';
        is $hot, 8, 'put: the uploads are hot';
    } else {
        is $t->sqlite(qq{SELECT state FROM archive_jobs WHERE key = '$key'})->[0]{state},
            'done', 'committed: its job is done';
        cmp_ok $hot, '<', 8, "committed: its uploads are gone from the hot rows ($hot left)";
    }

    my $r = recover();
    is $r->{status}, 200, "$step: a later cycle succeeds" or diag $r->{content};
    is $r->{json}{pending_jobs}, 0, "$step: nothing left pending";
    ok $r->{json}{recovered_jobs} >= 1, "$step: it finished the killed cycle's jobs"
        unless $step eq 'committed' && !$pending;
    is_deeply [temp_files()], [], "$step: no temporary file left";

    if ($step eq 'put') {
        is sha_of($object), $sha, 'put: the same bytes under the same key';
        is $t->sqlite(qq{SELECT sha256 FROM archived_files WHERE file_path = '$key'})
            ->[0]{sha256}, $sha, 'put: recorded with that SHA-256';
    }

    # every acknowledged upload: hot or indexed, once
    my %hot = map { $_->{d} => $_->{n} } @{ $t->sqlite(
        'SELECT dataset_id AS d, count(*) AS n FROM buffer_logs GROUP BY 1') };
    my %ix = map { $_->{d} => [$_->{n}, $_->{r}] } @{ $t->sqlite(
        'SELECT dataset_id AS d, count(*) AS n, sum(record_count) AS r '
        . 'FROM block_indexes GROUP BY 1') };
    my @wrong = grep { ($hot{$_} // 0) + ($ix{$_} ? $ix{$_}[0] : 0) != 1
                       || ($ix{$_} && $ix{$_}[1] != $records{$_}) } @acked;
    is_deeply \@wrong, [], "$step: all " . scalar(@acked) . ' uploads hot or indexed, once';
    $t->worker_pids == 2 or sleep 0.5;
}

# every object reads back whole, with the records the catalog says
my $files = $t->sqlite('SELECT file_path, file_size, record_count FROM archived_files');
my @bad = grep { (-s $t->path("var/cold/$_->{file_path}") // -1) != $_->{file_size}
                 || @{ $t->avro_dump($t->path("var/cold/$_->{file_path}")) }
                    != $_->{record_count} } @$files;
is_deeply \@bad, [], scalar(@$files) . ' objects read back by python3-avro';
is $t->hot_rows, 0, 'nothing hot left';
is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
my @alerts = grep { !/exited on signal 9/ } $t->check_log_clean;
is_deeply \@alerts, [], 'no alert but the killed workers';
done_testing;
