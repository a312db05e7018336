#!/usr/bin/perl
# The configurations shipped in conf/ work as shipped: conf/nginx.conf
# (the embedded default `make run` starts) and conf/nginx-s3.conf (against
# s3rver) each pass nginx -t, start, take uploads, archive them and read a
# dataset back, cold and hot merged.  Only what a test machine must change
# is changed: the port, the module's and the logs' paths, the temporary
# body path the harness sets itself, and for S3 the endpoint, bucket and
# credentials file.  The S3 example's own credentials path does not exist
# here, and nginx -t says so.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;

my $ROOT = $AvroTest::Nginx::ROOT;
plan skip_all => 'module not built' unless AvroTest::Nginx::module_built();


# The shipped file, with the test machine's changes; dies when one of them
# no longer applies, so that the test follows the file.
sub shipped {
    my ($t, $file, %s3) = @_;
    my $conf = AvroTest::Nginx::slurp("$ROOT/conf/$file") // die "$file: $!";
    my @edits = (
        [ qr{^load_module build/nginx/ngx_http_avro_module\.so;$}m,
          'load_module %%MODULE%%;' ],
        [ qr{^pid +var/nginx\.pid;$}m, 'pid %%PREFIX%%/nginx.pid;' ],
        [ qr{^error_log +var/logs/error\.log info;$}m,
          'error_log %%PREFIX%%/logs/error.log info;' ],
        [ qr{^ *access_log +var/logs/access\.log;\n}m, '' ],
        [ qr{^ *client_body_temp_path +var/tmp/body;\n}m, '' ],
        [ qr{listen +127\.0\.0\.1:8080;}, 'listen 127.0.0.1:%%PORT%%;' ],
    );

    if (%s3) {
        push @edits,
            [ qr{s3://avro-archive/prod}, 's3://bucket/prod' ],
            [ qr{endpoint=http://127\.0\.0\.1:9000},
              "endpoint=http://127.0.0.1:$s3{port}" ],
            [ qr{server +127\.0\.0\.1:9000;}, "server 127.0.0.1:$s3{port};" ];
        push @edits, [ qr{credentials=/etc/nginx/avro-s3\.cred},
                       "credentials=$s3{cred}" ] if $s3{cred};
    }

    for my $e (@edits) {
        $conf =~ s/$e->[0]/$e->[1]/ or die "$file: no match for $e->[0]";
    }

    for my $inc ($conf =~ /^\s*include\s+(\S+);/mg) {
        system('cp', "$ROOT/conf/$inc", $t->path($inc)) == 0 or die $inc;
    }

    $t->write_conf($conf);
}


# Uploads, an archive cycle, another upload, a read of the dataset.
sub tour {
    my ($t, $name, %log) = @_;
    my @files = map {
        $t->avro_gen(table => 'own_ship', records => 5, codec => 'deflate',
                     seed => $_)
    } 1 .. 2;

    my $r = $t->post('/upload?dataset_id=alice&table=own_ship',
                     'application/avro', AvroTest::Nginx::slurp($files[0]));
    is $r->{status}, 201, "$name: an upload is taken" or diag $r->{content};

    $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, "$name: an archive cycle" or diag $r->{content};
    is $r->{json}{uploads}, 1, "$name: it archived the upload";

    $r = $t->post('/api/battle-data/upload?dataset_id=alice&table=own_ship',
                  'application/avro', AvroTest::Nginx::slurp($files[1]));
    is $r->{status}, 201, "$name: the clients' path takes one too";

    $r = $t->get('/read?dataset_id=alice&table=own_ship');
    is $r->{status}, 200, "$name: the dataset is read back";
    my $out = $t->path('var/read.avro');
    open my $fh, '>', $out or die $!;
    print $fh $r->{content};
    close $fh;
    is scalar @{ $t->avro_dump($out) }, 10,
        "$name: python3-avro finds its 10 records, cold and hot";

    $r = $t->get_json('/status');
    is $r->{json}{hot}{rows}, 1, "$name: the status shows one hot upload";
    is_deeply [$t->check_log_clean(%log)], [],
        "$name: nothing alarming logged";
}


subtest 'conf/nginx.conf' => sub {
    my $t = AvroTest::Nginx->new(preamble => 0, sqlite_file => 'var/hot/hot.db');
    shipped($t, 'nginx.conf');
    is $t->nginx_t->{exit}, 0, 'nginx -t passes' or diag $t->nginx_t->{err};
    $t->run;
    tour($t, 'file:');
    $t->stop;
};

subtest 'conf/nginx-s3.conf' => sub {
    my $t = AvroTest::Nginx->new(preamble => 0, sqlite_file => 'var/hot/hot.db');
    my $s3 = AvroTest::S3->new($t);

    shipped($t, 'nginx-s3.conf', port => $s3->port);
    my $check = $t->nginx_t;
    isnt $check->{exit}, 0, 'as shipped, nginx -t fails on this machine';
    like $check->{err}, qr{credentials /etc/nginx/avro-s3\.cred: No such file},
        'and names the missing credentials file';

    shipped($t, 'nginx-s3.conf', port => $s3->port, cred => $s3->credentials);
    is $t->nginx_t->{exit}, 0, 'with a credentials file, nginx -t passes'
        or diag $t->nginx_t->{err};
    $t->run;
    # the only [emerg] is that of the nginx -t above
    tour($t, 's3://', ignore => qr{\[emerg\] .*avro-s3\.cred});
    is $t->sqlite('SELECT count(*) AS n FROM archived_files')->[0]{n}, 1,
        'one object archived';
    is_deeply [$s3->bad_objects('bucket/prod')], [],
        'the bucket holds it: size, SHA-256, ETag, records';
    $t->stop;
};

done_testing;
