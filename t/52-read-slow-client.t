#!/usr/bin/perl
# A read whose client stops reading: nginx's send_timeout ends the answer
# while an archived range is being sent.  That is the client's doing, told
# at the info level, not a fetch from the cold store that failed; the
# worker serves on.

use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Socket qw(SOL_SOCKET SO_RCVBUF);
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db',
                             log_level => 'info');
$t->write_conf(<<'CONF');
worker_processes 1;
events {}
http {
    avro_hot_store   %%PREFIX%%/var/hot/hot.db;
    avro_cold_store  file:%%PREFIX%%/var/cold;
    avro_archive     interval=1h;
    client_max_body_size 16m;
    send_timeout     1s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }
        location = /read    { avro_read /_avro_cold/; }
        location /_avro_cold/ { internal; alias %%PREFIX%%/var/cold/; }
    }
}
CONF
$t->run;

# archived ranges of several MB: more than the sockets' buffers hold
for my $i (1 .. 2) {
    my $f = $t->avro_gen(table => 'own_ship', records => 20000, seed => $i,
                         codec => 'null');
    is $t->post('/upload?dataset_id=slow&table=own_ship&period_tag=p1',
                'application/avro', slurp($f))->{status}, 201, "upload $i";
}
is $t->post('/archive', 'application/json', '')->{status}, 200, 'archived';
cmp_ok -s $_, '>', 4_000_000, 'the archived file is larger than 4 MB'
    for glob $t->path('var/cold/own_ship/p1/*/*.avro');

my @workers = $t->worker_pids;
my $off = -s $t->path('logs/error.log');

my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $t->port)
    or die "connect: $!";
setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', 4096));
print $s "GET /read?dataset_id=slow&table=own_ship HTTP/1.1\r\n"
    . "Host: localhost\r\n\r\n";
my $head = '';
sysread $s, $head, 1000;
like $head, qr{^HTTP/1.1 200}, 'the read starts';
sleep 3;       # reading nothing: the send timeout ends the answer
close $s;
sleep 0.3;

my $log = substr $t->error_log, $off;
like $log, qr/client timed out/, 'nginx says the client timed out';
like $log, qr/\[info\].*avro read: the client timed out during "own_ship/,
    'the module says so too, at the info level';
unlike $log, qr/\[error\].*avro read/, 'and logs no failed fetch';

my $r = $t->get('/read?dataset_id=slow&table=own_ship');
is $r->{status}, 200, 'the next read is answered';
is_deeply [$t->worker_pids], \@workers, 'by the same worker';
is_deeply [$t->check_log_clean], [], 'no alert';
done_testing;
