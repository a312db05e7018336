#!/usr/bin/perl
# A hot store that cannot be opened when the workers start (here: the file
# is not a database).  The workers live on and answer 503 with a JSON body
# and Retry-After, the error log says why, and once the cause is gone each
# worker opens the store by itself, without a reload.  While the cause
# stays, the attempts space out, and nginx -s quit does not wait for the
# next one.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep time);
use lib 't/lib';
use AvroTest::Nginx;

my $CONF = <<'CONF';
worker_processes 2;
events {}
http {
    avro_hot_store %%PREFIX%%/var/hot/hot.db busy_timeout=400ms;

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /upload { avro_upload; }
        location = /status { avro_status; }
    }
}
CONF

# an nginx whose hot store file holds text, not a database
sub broken_nginx {
    my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db',
                                 log_level => 'info');
    my $dir = $t->mkdir('var/hot');
    open my $fh, '>', "$dir/hot.db" or die "hot.db: $!";
    print $fh "these are not the pages of a database\n" x 200;
    close $fh;
    $t->_chown_worker("$dir/hot.db");
    $t->write_conf($CONF);
    $t->run;
    return $t;
}

sub upload {
    my ($t, $f, $dataset) = @_;
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    my $body = <$fh>;
    return $t->post("/upload?dataset_id=$dataset&table=own_ship",
                    'application/avro', $body);
}

sub wait_until {
    my ($timeout, $cond) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 if $cond->();
        sleep 0.1;
    }
    return $cond->();
}

subtest 'unavailable at start: 503, then opened without a reload' => sub {
    my $t = broken_nginx();
    my @workers = $t->worker_pids;
    my $f = $t->avro_gen(table => 'own_ship', records => 3, seed => 1101);

    for my $i (1 .. 4) {
        my $r = upload($t, $f, "early$i");
        is $r->{status}, 503, "upload $i: 503";
        is $r->{json}{error}, 'store_failed', 'the JSON body says why';
        like $r->{json}{message}, qr/hot store unavailable/, 'and where to look';
        ok $r->{headers}{'retry-after'}, 'Retry-After';
    }
    my $r = $t->get('/status');
    is $r->{status}, 503, 'status: 503 too';

    my @alerts = $t->error_log_matches(qr/\[alert\].*hot\.db.*tries again/);
    is scalar(@alerts), 2, 'one alert per worker, with the file and the retry'
        or diag $t->log_excerpt;
    like $alerts[0], qr/not a database/, "SQLite's reason in it";

    unlink $t->path('var/hot/hot.db') or die "unlink: $!";

    ok wait_until(40, sub {
            $t->error_log_matches(qr/\[notice\].*hot\.db.*opened at attempt/)
                == 2 }),
        'both workers opened the store by themselves'
        or diag $t->log_excerpt;

    my %ids;
    for my $i (1 .. 10) {
        $r = upload($t, $f, "late$i");
        is $r->{status}, 201, "upload $i afterwards: 201" or diag $r->{content};
        $ids{ $r->{json}{id} // 'none' }++;
    }
    is scalar(keys %ids), 10, 'ten rows';
    is $t->hot_rows, 10,
        'all in buffer_logs, none of the refused ones';
    is $t->get('/status')->{status}, 200, 'status: 200';
    is_deeply [$t->worker_pids], \@workers, 'the same workers, no reload';
    is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok',
        'integrity_check';

    my @other = $t->check_log_clean(ignore => qr/not a database/);
    is_deeply \@other, [], 'no other alert';
    $t->stop;
};

subtest 'while it stays unavailable: attempts space out, quit is prompt' => sub {
    my $t = broken_nginx();
    my ($w) = $t->worker_pids;

    # attempts 1 s, 3 s and 7 s after the start; the next not before 15 s
    sleep 8;

    my @tries = $t->error_log_matches(qr/\[error\] $w#.*not a database.*attempt \d+/);
    cmp_ok scalar(@tries), '>=', 2, 'the worker tried again';
    cmp_ok scalar(@tries), '<=', 4, 'with a growing delay (once a second: 7)';
    is $t->post('/upload?dataset_id=x&table=own_ship', 'application/avro',
                'x')->{status}, 503, 'still 503';

    my $master = $t->master_pid;
    my $start = time;
    kill 'QUIT', $master;
    ok wait_until(5, sub { !AvroTest::Nginx::alive($master) }),
        'quit does not wait for the next attempt';
    note sprintf 'quit took %.2f s', time - $start;
    $t->stop;
};

done_testing;
