#!/usr/bin/perl
# The module's thread pool with its queue full (thread_pool max_queue):
# every request that needs the pool is answered 503 with Retry-After and
# a JSON body, not nginx's 500 page, and nothing else happens; the work
# already queued is done once the pool is free.
#
# One pool thread and a queue of one: the test holds <hot store>.lock, so
# the first upload's commit waits in the thread for it; a status request
# then fills the queue.

use strict;
use warnings;
use Test::More;
use Fcntl qw(:flock);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
$t->write_conf(<<'CONF');
worker_processes 1;
thread_pool avro threads=1 max_queue=1;
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
    }
}
CONF
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
done_testing;
