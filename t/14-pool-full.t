#!/usr/bin/perl
# The module's thread pool with its queue full (thread_pool max_queue):
# every request that needs the pool is answered 503 with Retry-After and
# a JSON body, not nginx's 500 page, and nothing else happens; the work
# already queued is done once the pool is free.
#
# One pool thread and a queue of one: the test holds <hot store>.lock, so
# the first upload's commit waits in the thread for it; a status request
# then fills the queue.  Then a queue of none, the thread held by an
# archive cycle: uploads validated on the event loop cannot post their
# commit.

use strict;
use warnings;
use Test::More;
use Fcntl qw(:flock);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
# one pool thread, a queue of max_queue tasks
sub pool_conf {
    my ($max_queue) = @_;
    return $t->write_conf(<<CONF);
worker_processes 1;
thread_pool avro threads=1 max_queue=$max_queue;
events {}
http {
    avro_hot_store   %%PREFIX%%/var/hot/hot.db busy_timeout=5s;
    avro_thread_pool avro;
    avro_cold_store  file:%%PREFIX%%/var/cold;
    avro_archive     interval=1h;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload  { avro_upload; }
        location = /status  { avro_status; }
        location = /archive { avro_archive_now; }
        location = /read    { avro_read /_avro_cold/; }
        location /_avro_cold/ { internal; alias %%PREFIX%%/var/cold/; }
        location = /bare    { return 204; }
    }
}
CONF
}
pool_conf(1);
$t->run;

my $small = slurp($t->avro_gen(table => 'own_ship', records => 2, seed => 1));
my $big = slurp($t->avro_gen(table => 'own_ship', records => 3000, seed => 2,
                             codec => 'null'));
cmp_ok length $big, '>', 300000, 'a file of ' . length($big) . ' bytes, '
    . 'validated in the pool';

# a request in a child process; its status and body land in a file
sub later {
    my ($name, $method, $uri, $body) = @_;
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $r = $method eq 'GET' ? $t->get($uri)
              : $t->post($uri, 'application/avro', $body);
        open my $fh, '>', $t->path("$name.out") or die $!;
        print $fh "$r->{status}\n$r->{content}";
        close $fh;
        exit 0;
    }
    return $pid;
}

sub outcome {
    my ($name) = @_;
    my $s = slurp($t->path("$name.out")) // '';
    return (split /\n/, $s, 2)[0] // '';
}

open my $lock, '>>', $t->path('var/hot/hot.db.lock') or die "lock: $!";
ok flock($lock, LOCK_EX | LOCK_NB), 'the test holds the store\'s file lock';

my @pids;
push @pids, later('a', 'POST', '/upload?dataset_id=a&table=own_ship', $small);
sleep 0.5;     # its commit waits for the file lock in the pool's thread
push @pids, later('b', 'GET', '/status');
sleep 0.5;     # and the status request waits in the queue

for my $case (['GET', '/status', undef, 'status'],
              ['POST', '/upload?dataset_id=big&table=own_ship', $big,
               'a large upload'],
              ['GET', '/read?dataset_id=a&table=own_ship', undef, 'a read'],
              ['POST', '/archive', '', 'archive now'])
{
    my ($method, $uri, $body, $what) = @$case;
    my $r = $method eq 'GET' ? $t->get($uri)
          : $t->post($uri, 'application/avro', $body);
    is $r->{status}, 503, "queue full: $what is 503" or diag $r->{content};
    is $r->{json}{error}, 'busy', "$what: JSON, busy";
    like $r->{json}{message}, qr/thread pool's queue is full/, "$what: says why";
    ok $r->{headers}{'retry-after'}, "$what: with Retry-After";
}

flock($lock, LOCK_UN);    # the children share its open file: close is not enough
waitpid $_, 0 for @pids;

is outcome("a"), 201, "the upload whose commit waited is stored"
    or diag slurp($t->path("a.out"));
is outcome('b'), 200, 'the queued status request is answered';
my $rows = $t->sqlite('SELECT dataset_id AS d FROM buffer_logs ORDER BY 1');
is_deeply [map { $_->{d} } @$rows], ['a'], 'nothing of the refused upload'
    or diag explain $rows;
is $t->sqlite('SELECT count(*) AS n FROM archived_files')->[0]{n}, 0,
    'no archive cycle ran';

is $t->post('/upload?dataset_id=big&table=own_ship', 'application/avro',
            $big)->{status}, 201, 'the pool free: the large upload is stored';
is $t->post('/archive', 'application/json', '')->{status}, 200,
    'and a cycle runs';
is $t->get('/read?dataset_id=a&table=own_ship')->{status}, 200, 'a read too';
ok scalar $t->error_log_matches(qr/queue overflow/),
    'the error log has nginx\'s overflow messages';
is_deeply [$t->check_log_clean], [], 'no alert';

# A pool whose queue holds nothing (max_queue=0: a task is taken only by
# an idle thread), its one thread busy with an archive cycle that waits
# for the file lock: an upload small enough to be validated on the event
# loop gets as far as posting its commit, which is refused; it is
# answered 503 and not stored.
$t->stop;
pool_conf(0);
$t->run;
# The first upload of a schema looks its stream up in the store, in the
# pool; the ones after it are validated on the event loop.  (The first
# one's commit may be refused: it is posted as its thread returns, before
# the thread counts itself idle again.)
my $warm;
for my $try (1 .. 10) {
    $warm = $t->post('/upload?dataset_id=warm&table=own_ship',
                     'application/avro', $small)->{status};
    last if $warm == 201;
    sleep 0.1;
}
is $warm, 201, 'an upload while the pool is idle';
ok flock($lock, LOCK_EX | LOCK_NB), 'the test holds the file lock again';
my $cycle = later('c', 'POST', '/archive', '');
sleep 0.5;     # the cycle waits for the file lock in the pool's thread
my @workers = $t->worker_pids;
my $before = $t->hot_rows;

for my $i (1 .. 3) {
    my $r = $t->post("/upload?dataset_id=posted$i&table=own_ship",
                     'application/avro', $small);
    is $r->{status}, 503, "no commit can be posted: upload $i is 503"
        or diag $r->{content};
    is $r->{json}{error}, 'busy', "upload $i: JSON, busy";
    like $r->{json}{message}, qr/commit could not be posted/,
        "upload $i: says why";
    ok $r->{headers}{'retry-after'}, "upload $i: with Retry-After";
}
is $t->hot_rows, $before,
    'nothing of the refused uploads is stored';
flock($lock, LOCK_UN);
waitpid $cycle, 0;
is outcome('c'), 200, 'the cycle that held the thread ends'
    or diag slurp($t->path('c.out'));
is $t->get('/bare')->{status}, 204, 'the worker serves on';
is_deeply [$t->worker_pids], \@workers, 'the same worker';
ok scalar $t->error_log_matches(qr/cannot post a commit/),
    'the error log says the commit could not be posted';
is_deeply [$t->check_log_clean], [], 'no alert';
done_testing;
