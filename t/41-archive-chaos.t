#!/usr/bin/perl
# The archiver under abuse: uploads keep coming while the timer archives
# every second, nginx reloads every second and workers are killed with
# SIGKILL in the middle of cycles.  Afterwards every acknowledged upload is
# either hot or indexed, once, never both and never neither.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
$t->archive_conf(workers => 2, hot => 'busy_timeout=10s',
    cold => 'file:%%PREFIX%%/var/cold',
    archive => 'interval=1s segment_size=16k lease=2s node=c1');
$t->run;


my @bodies = map { slurp($t->avro_gen(table => 'own_ship', records => 7,
    codec => 'deflate', seed => $_)) } 1 .. 3;

# one client: an upload per dataset, acknowledged ones written down
my $client = fork // die;
if ($client == 0) {
    my $http = HTTP::Tiny->new(timeout => 30);
    open my $log, '>', $t->path('var/acked') or POSIX::_exit(2);
    my $end = time + 10;
    for (my $i = 1; time < $end; $i++) {
        my $r = $http->post($t->url("/upload?dataset_id=x$i&table=own_ship"),
            { headers => { 'Content-Type' => 'application/avro' },
              content => $bodies[$i % 3] });
        print $log "x$i\n" if $r->{status} == 201;
        sleep 0.01;
    }
    close $log;
    POSIX::_exit(0);
}

my ($reloads, $kills) = (0, 0);
for my $s (1 .. 9) {
    sleep 0.5;
    $t->post('/archive', 'application/json', '', timeout => 30) if $s % 3 == 0;
    if ($s % 2) {
        eval { $t->reload; $reloads++ };
    } else {
        my @w = $t->worker_pids;
        if (@w) { kill 'KILL', $w[0]; $kills++ }
    }
}
waitpid $client, 0;
ok $reloads >= 3, "$reloads reloads";
ok $kills >= 3, "$kills workers killed";

# let the archiver finish what was left (a killed owner's lease expires)
my $left;
for (1 .. 40) {
    sleep 0.5;
    $left = $t->hot_rows;
    my $pending = $t->sqlite(q{SELECT count(*) AS n FROM archive_jobs
                               WHERE state <> 'done'})->[0]{n};
    last if $left == 0 && $pending == 0;
}
is $left, 0, 'everything archived in the end';

open my $fh, '<', $t->path('var/acked') or die $!;
chomp(my @acked = <$fh>);
close $fh;
cmp_ok scalar @acked, '>', 50, scalar(@acked) . ' uploads acknowledged';

my %hot = map { $_->{d} => $_->{n} } @{ $t->sqlite(
    'SELECT dataset_id AS d, count(*) AS n FROM buffer_logs GROUP BY 1') };
my %indexed = map { $_->{d} => [$_->{n}, $_->{r}] } @{ $t->sqlite(
    'SELECT dataset_id AS d, count(*) AS n, sum(record_count) AS r '
    . 'FROM block_indexes GROUP BY 1') };

my (@neither, @both, @twice);
for my $ds (@acked) {
    my $h = $hot{$ds} // 0;
    my $i = $indexed{$ds} ? $indexed{$ds}[0] : 0;
    push @neither, $ds if !$h && !$i;
    push @both, $ds if $h && $i;
    push @twice, $ds if $i > 1 || ($indexed{$ds} && $indexed{$ds}[1] != 7);
}
is_deeply \@neither, [], 'no acknowledged upload lost';
is_deeply \@both, [], 'none both hot and indexed';
is_deeply \@twice, [], 'none indexed twice';

is $t->sqlite('SELECT count(*) AS n FROM (SELECT file_path FROM archived_files '
    . 'GROUP BY 1 HAVING count(*) > 1)')->[0]{n}, 0, 'no object recorded twice';
my $sizes = $t->sqlite('SELECT file_path AS k, file_size AS s FROM archived_files');
my @wrong = grep { (-s $t->path("var/cold/$_->{k}") // -1) != $_->{s} } @$sizes;
is_deeply \@wrong, [], 'every recorded object exists with its size';
is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
my @bad = grep { !/exited on signal 9/ } $t->check_log_clean;
is_deeply \@bad, [], 'no alert but the killed workers';
done_testing;
