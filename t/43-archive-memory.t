#!/usr/bin/perl
# Memory stays bounded whatever the batch: a hot store of more than twice
# the bound (about 130 MB of battle uploads) is archived in one cycle, with
# small segments (many files) and with the default 512 MiB (one file
# larger than the bound), while the worker's RSS is sampled every 10 ms.
# Its growth during the cycle must stay under 64 MiB: a resource bound,
# generous, not a timing.

use strict;
use warnings;
use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $BOUND = 64 * 1024;    # KiB
my $UPLOADS = 110;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');

sub conf {
    my ($segment) = @_;
    $t->archive_conf(hot => 'synchronous=normal', body_size => '4m',
        cold => 'file:%%PREFIX%%/var/cold',
        archive => "interval=1h $segment node=m1");
}

sub rss {
    open my $fh, '<', "/proc/$_[0]/status" or return 0;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)/ }
    return 0;
}

my $file = $t->avro_gen(table => 'battle', records => 3000, codec => 'deflate', seed => 7);
my $body = do { open my $fh, '<:raw', $file or die $!; local $/; <$fh> };

conf('segment_size=1m');
$t->run;

for my $round (['segment_size=1m', 'small segments', 's'],
               ['', 'one 512 MiB segment', 'l'])
{
    my ($segment, $name, $tag) = @$round;
    if ($segment eq '') {
        conf('');
        $t->reload;
    }

    my $acked = 0;
    for my $i (1 .. $UPLOADS) {
        my $r = $t->post("/upload?dataset_id=m$tag$i&table=battle",
            'application/avro', $body, timeout => 30);
        $acked++ if $r->{status} == 201;
    }
    is $acked, $UPLOADS, "$name: $UPLOADS uploads of " . length($body) . ' bytes';
    my $hot = $t->sqlite('SELECT sum(length(data)) AS n FROM buffer_logs')->[0]{n};
    cmp_ok $hot, '>', 2 * $BOUND * 1024, "$name: $hot bytes hot, more than twice the bound";

    my ($worker) = $t->worker_pids;
    my $base = rss($worker);
    my $peak_file = $t->path("var/peak");
    unlink $peak_file;

    my $sampler = fork // die;
    if ($sampler == 0) {
        my $peak = 0;
        while (1) {
            my $r = rss($worker);
            last unless $r;
            if ($r > $peak) {
                $peak = $r;
                open my $fh, '>', "$peak_file.new" or POSIX::_exit(1);
                print $fh "$peak\n";
                close $fh;
                rename "$peak_file.new", $peak_file;
            }
            sleep 0.01;
        }
        POSIX::_exit(0);
    }

    my $r = $t->post('/archive', 'application/json', '', timeout => 120);
    kill 'KILL', $sampler;
    waitpid $sampler, 0;

    is $r->{status}, 200, "$name: archived" or diag $r->{content};
    is $r->{json}{uploads}, $UPLOADS, "$name: every upload";
    cmp_ok $r->{json}{files}, $segment ? '>' : '==', $segment ? 50 : 1,
        "$name: $r->{json}{files} files";

    my $peak = do { open my $fh, '<', $peak_file or die $!; <$fh> } + 0;
    my $growth = $peak - $base;
    cmp_ok $growth, '<', $BOUND, "$name: RSS $base KiB before, peak $peak KiB: "
        . "growth $growth KiB";
}

is $t->hot_rows, 0, 'nothing hot left';
is_deeply [$t->check_log_clean], [], 'error log clean';
done_testing;
