#!/usr/bin/perl
# A reload while the hot store's write lock is held for long (another
# worker's archive commit, here the test holding <hot store>.lock): the
# new worker does not wait for it in init_process, which would keep every
# location of nginx from answering.  It serves at once, answers uploads
# 503 until its thread pool has opened the store, then takes them again.
# A store that is not migrated yet is still opened in init_process.

use strict;
use warnings;
use Test::More;
use Fcntl qw(:flock);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
$t->write_conf(<<CONF);
worker_processes 1;
events {}
http {
    avro_hot_store %%PREFIX%%/var/hot/hot.db;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload { avro_upload; }
        location = /bare   { return 204; }
    }
}
CONF
$t->run;

my $body = slurp($t->avro_gen(table => 'own_ship', records => 2, seed => 3));
sub upload {
    my ($dataset, %o) = @_;
    return $t->post("/upload?dataset_id=$dataset&table=own_ship",
                    'application/avro', $body, %o);
}

is upload('a')->{status}, 201, 'upload a';

open my $lock, '>>', $t->path('var/hot/hot.db.lock') or die "lock: $!";
ok flock($lock, LOCK_EX | LOCK_NB), 'the test holds the store\'s file lock';

# the old worker's last checkpoint waits for the lock too: do not wait for it
$t->reload(wait_old => 0);

my $r = $t->get('/bare', timeout => 5);
is $r->{status}, 204, 'the new worker serves while the lock is held';

$r = upload('b', timeout => 5);
is $r->{status}, 503, 'an upload before the store is open: 503';
ok $r->{headers}{'retry-after'}, 'with Retry-After';
like $r->{json}{message} // '', qr/hot store unavailable/,
    'and a JSON body that says why';
ok scalar($t->error_log_matches(qr/\[notice\].*opens it in its thread pool/)),
    'the error log says the store is opened in the thread pool';

flock($lock, LOCK_UN);
close $lock;

my $status = 0;
for (1 .. 100) {
    $status = upload('b', timeout => 5)->{status};
    last if $status == 201;
    sleep 0.1;
}
is $status, 201, 'once the lock is free, the store opens and takes uploads';
ok scalar($t->error_log_matches(qr/\[notice\].*opened at attempt/)),
    'the error log says it opened';

my $rows = $t->sqlite("SELECT dataset_id AS d, count(*) AS n FROM buffer_logs"
    . " GROUP BY 1 ORDER BY 1");
is_deeply [map { "$_->{d}=$_->{n}" } @$rows], ['a=1', 'b=1'],
    'each upload stored once, none of the refused one';

$t->stop;
is_deeply [$t->check_log_clean], [], 'no alert, crit or emerg in the error log';

done_testing;
