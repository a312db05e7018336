#!/usr/bin/perl
# The directories the workers write to: the master makes the missing ones,
# the parents as "mkdir -p" would (the workers pass through them) and the
# last one for the worker user alone.  A reload whose directory cannot be
# made does not end the master: the workers go on, and what needs the
# directory fails until it is there.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;

plan skip_all => 'needs root (the workers run as another user)' if $> != 0;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/new/a/hot.db',
                             log_level => 'info');

sub conf {
    my ($cold) = @_;
    $t->write_conf(<<"CONF");
worker_processes 1;
events {}
http {
    avro_hot_store  %%PREFIX%%/var/new/a/hot.db;
    avro_cold_store file:$cold;
    avro_archive    interval=1h;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }
    }
}
CONF
}

conf('%%PREFIX%%/var/cold/x/y');
$t->run;

my $f = $t->avro_gen(table => 'own_ship', records => 4, seed => 7);
my $upload = sub {
    $t->post("/upload?dataset_id=$_[0]&table=own_ship", 'application/avro',
             slurp($f))->{status};
};

my $nobody = getpwnam('nobody');
for my $d (qw(var/new var/cold var/cold/x)) {
    my @st = stat $t->path($d);
    is sprintf('%o', $st[2] & 07777), '755', "parent $d: 0755";
}
for my $d (qw(var/new/a var/cold/x/y)) {
    my @st = stat $t->path($d);
    is sprintf('%o', $st[2] & 07777), '700', "$d: 0700";
    is $st[4], $nobody, "$d: the worker user's";
}

is $upload->('d1'), 201, 'the workers open the store through the new parents';
my $r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'and archive into the new cold store'
    or diag $r->{content};
is $r->{json}{files}, 1, 'one file';

# /proc takes no directory: the reload cannot make it
conf('/proc/avro-no-such-dir/cold');
$t->reload;
ok kill(0, $t->master_pid), 'a reload whose directory cannot be made: '
    . 'the master lives';
ok scalar($t->error_log_matches(
        qr/\[alert\].*avro_cold_store: cannot create directory/)),
    'the error log says which directory';
is $upload->('d2'), 201, 'uploads go on';
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'the archive fails meanwhile';
is $r->{json}{error}, 'store_failed', 'with a JSON body'
    or diag $r->{content};

conf('%%PREFIX%%/var/cold/x/y');
$t->reload;
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'reloaded with a good directory: archived again';
is $t->hot_rows, 0,
    'nothing left hot';

is_deeply [$t->check_log_clean(ignore => qr/cannot create directory|runs without its directories|\/proc\/avro-no-such-dir/)], [],
    'no other alert';
done_testing;
