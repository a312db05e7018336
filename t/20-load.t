#!/usr/bin/perl
# Two workers under parallel load: every acknowledged upload is in
# buffer_logs exactly once and the file stays sound, also when workers are
# killed with SIGKILL in the middle of the load.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $CLIENTS = 6;
my $UPLOADS = 120;


sub start {
    my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
    $t->write_conf(<<'CONF');
worker_processes 2;
events {}
http {
    avro_hot_store %%PREFIX%%/var/hot/hot.db busy_timeout=10s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload { avro_upload; }
    }
}
CONF
    $t->run;
    return $t;
}

# Each client posts its uploads, one dataset each, and writes down what was
# acknowledged: "dataset id status" per line.
sub load {
    my ($t, @files) = @_;
    my @bodies = map { slurp($_) } @files;
    my @pids;
    for my $c (1 .. $CLIENTS) {
        my $pid = fork // die "fork: $!";
        if ($pid == 0) {
            my $http = HTTP::Tiny->new(timeout => 30, keep_alive => 1);
            open my $log, '>', $t->path("var/acked-$c") or POSIX::_exit(2);
            for my $i (1 .. $UPLOADS) {
                my $ds = "c$c-u$i";
                my $r = $http->post($t->url("/upload?dataset_id=$ds&table=t$c"),
                    { headers => { 'Content-Type' => 'application/avro' },
                      content => $bodies[$i % @bodies] });
                if ($r->{status} == 201 && $r->{content} =~ /"id":(\d+)/) {
                    print $log "$ds $1 201\n";
                } else {
                    print $log "$ds - $r->{status}\n";
                }
            }
            close $log;
            POSIX::_exit(0);
        }
        push @pids, $pid;
    }
    return @pids;
}

sub acked {
    my ($t) = @_;
    my (%acked, %refused);
    for my $c (1 .. $CLIENTS) {
        open my $fh, '<', $t->path("var/acked-$c") or die $!;
        while (<$fh>) {
            my ($ds, $id, $st) = split;
            if ($st == 201) { $acked{$ds} = $id } else { $refused{$ds} = $st }
        }
    }
    return (\%acked, \%refused);
}

sub check_stored {
    my ($t, $acked) = @_;
    my $rows = $t->sqlite('SELECT dataset_id AS d, id, record_count AS n FROM buffer_logs');
    my %rows;
    $rows{ $_->{d} }{count}++, $rows{ $_->{d} }{id} = $_->{id} for @$rows;
    my @missing = grep { !$rows{$_} || $rows{$_}{id} != $acked->{$_} } sort keys %$acked;
    my @twice = grep { $rows{$_}{count} > 1 } sort keys %rows;
    is_deeply \@missing, [], 'every acknowledged upload is stored, under its id';
    is_deeply \@twice, [], 'nothing is stored twice';
    is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok',
        'integrity_check ok';
    return scalar @$rows;
}

my $seed = 0;
sub files {
    my ($t) = @_;
    return ($t->avro_gen(table => 'own_ship', records => 20, codec => 'deflate', seed => ++$seed),
            $t->avro_gen(table => 'battle', records => 8, codec => 'null', seed => ++$seed),
            $t->avro_gen(table => 'cells', records => 5, codec => 'snappy', seed => ++$seed));
}

subtest 'parallel load on two workers' => sub {
    my $t = start();
    my @pids = load($t, files($t));
    waitpid $_, 0 for @pids;
    my ($acked, $refused) = acked($t);
    is scalar(keys %$acked), $CLIENTS * $UPLOADS, 'every upload acknowledged';
    is_deeply $refused, {}, 'none refused';
    is check_stored($t, $acked), $CLIENTS * $UPLOADS, 'as many rows as uploads';
    is_deeply [$t->check_log_clean], [], 'error log clean';
    $t->stop;
};

subtest 'kill -9 of workers under load' => sub {
    my $t = start();
    my @pids = load($t, files($t));
    my $killed = 0;
    for my $round (1 .. 4) {
        sleep 0.7;
        my @w = $t->worker_pids;
        last unless @w;
        kill 'KILL', $w[$round % @w];
        $killed++;
    }
    waitpid $_, 0 for @pids;
    ok $killed >= 3, "$killed workers killed during the load";

    my ($acked, $refused) = acked($t);
    cmp_ok scalar(keys %$acked), '>', $CLIENTS * $UPLOADS / 2,
        scalar(keys %$acked) . ' uploads acknowledged, '
        . scalar(keys %$refused) . ' cut off by the kills';
    my $rows = check_stored($t, $acked);
    cmp_ok $rows, '>=', scalar(keys %$acked), "$rows rows";

    # the lock a killed worker may have held is taken over: uploads go on
    my $f = $t->avro_gen(table => 'own_ship', records => 3, seed => 999);
    my $r = $t->post('/upload?dataset_id=after&table=own_ship', 'application/avro', slurp($f),
        timeout => 15);
    is $r->{status}, 201, 'an upload after the kills is stored';
    my @bad = grep { !/exited on signal 9/ } $t->check_log_clean;
    is_deeply \@bad, [], 'no other alert than the killed workers';
    $t->stop;
};

done_testing;
