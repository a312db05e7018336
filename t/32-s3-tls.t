#!/usr/bin/perl
# An S3 store over https (s3rver with a self-signed certificate): ca= takes
# the certificates to trust and needs an https endpoint; without it the
# store's certificate is refused, the cycle fails with a 503 that says so
# and the uploads stay hot; with it every upload is archived, and the
# objects hold the bytes the catalog says (TLS protects the transfer, so
# no MD5 of the bytes is computed, but the store's ETag is still its MD5).

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $s3 = AvroTest::S3->new($t, tls => 1);
my ($port, $cred, $ca) = ($s3->port, $s3->credentials, $s3->ca);

sub conf {
    my ($endpoint, $more) = @_;
    $t->archive_conf(
        cold => "s3://bucket/tls endpoint=$endpoint credentials=$cred$more",
        archive => 'interval=1h node=t1');
}

conf("http://127.0.0.1:$port", " ca=$ca");
my $check = $t->nginx_t;
isnt $check->{exit}, 0, 'ca= with an http endpoint: nginx -t fails';
like $check->{err}, qr/ca= needs an https:\/\/ endpoint/, 'and says why';

conf("https://127.0.0.1:$port", " ca=$ca.missing");
$check = $t->nginx_t;
isnt $check->{exit}, 0, 'a ca= file that does not exist: nginx -t fails';
like $check->{err}, qr/ca=\S+\.missing: No such file/, 'and names it';

my $n = 0;
sub upload {
    my ($ds, $table) = @_;
    my $f = $t->avro_gen(table => $table, records => 4, seed => ++$n);
    return $t->post("/upload?dataset_id=$ds&table=$table&period_tag=p1",
        'application/avro', slurp($f))->{status};
}

# --- the store's certificate is not trusted ---------------------------------
conf("https://127.0.0.1:$port", '');
$t->run;
is upload('a', 'battle'), 201, 'upload a';
my $r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'without ca=: the cycle fails with 503';
like $r->{json}{message}, qr/certificate/i, 'the message says the certificate was refused';
unlike $r->{content}, qr/S3RVER/, 'no credentials in the answer';
is $t->hot_rows, 1,
    'the upload stays hot';
$t->stop;

# --- ca= trusts it ----------------------------------------------------------
conf("https://127.0.0.1:$port", " ca=$ca");
is $t->nginx_t->{exit}, 0, 'ca= with an https endpoint: nginx -t passes';
$t->run;
is upload('b', 'battle'), 201, 'upload b';
is upload('c', 'own_ship'), 201, 'upload c';
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'with ca=: the cycle succeeds' or diag $r->{content};
is $r->{json}{uploads}, 3, 'all three uploads archived';
is $t->hot_rows, 0, 'no hot row left';

my $files = $t->sqlite('SELECT etag FROM archived_files');
is scalar @$files, 3, 'three files: the job that failed, then one per table';
is scalar(grep { $_->{etag} =~ /^[0-9a-f]{32}$/ } @$files), 3,
    'the catalog keeps the store\'s ETags';
is_deeply [ $s3->bad_objects('bucket/tls') ], [],
    'every object has its catalog size, SHA-256, MD5 and records';
$t->stop;

# --- files only root can read ----------------------------------------------
# The master reads ca= and credentials= as root at configuration, like TLS
# keys; the workers (nobody) use its copy and never open the files.
SKIP: {
    skip 'the workers run as another user only when the tests run as root', 5
        unless $> == 0;

    my %private;
    for my $f ([ ca => $ca ], [ cred => $cred ]) {
        $private{$f->[0]} = $t->path("var/private-$f->[0]");
        open my $in, '<', $f->[1] or die $!;
        open my $out, '>', $private{$f->[0]} or die $!;
        print $out $_ while <$in>;
        close $out;
        chmod 0600, $private{$f->[0]} or die $!;
    }

    $t->archive_conf(
        cold => "s3://bucket/private endpoint=https://127.0.0.1:$port "
            . "credentials=$private{cred} ca=$private{ca}",
        archive => 'interval=1h node=t1');
    is $t->nginx_t->{exit}, 0,
        'ca= and credentials= files only root can read: nginx -t passes';
    $t->run;
    is upload('d', 'battle'), 201, 'upload d';
    $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'the workers archive with them'
        or diag $r->{content};
    is_deeply [ $s3->bad_objects('bucket/private',
        'id = (SELECT max(id) FROM archived_files)') ], [],
        'the object has its catalog size, SHA-256, MD5 and records';
    $t->stop;
    unlike $t->error_log, qr/Permission denied/, 'no worker tried to read them';
}

is_deeply [ $t->check_log_clean(ignore => qr/certificate|ca=/) ], [], 'no other alert in the log';
done_testing;
