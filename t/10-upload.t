#!/usr/bin/perl
# Uploads through the real nginx with the module loaded: files written by
# python3-avro and avsc for the game client's real tables, both body forms,
# every codec; what is stored is read back by python3-avro, avsc and
# avrocat; duplicates, slices, names, accepted schemas, limits and errors.

use strict;
use warnings;
use Test::More;
use MIME::Base64 qw(encode_base64);
use JSON::PP;
use lib 't/lib';
use AvroTest::Nginx;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
$t->write_conf(<<'CONF');
worker_processes 2;
events {}
http {
    avro_hot_store %%PREFIX%%/var/hot/hot.db busy_timeout=400ms;
    client_max_body_size 4m;

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /upload { avro_upload; }
        location = /fixed {
            avro_dataset fixed_user;
            avro_table   own_ship;
            avro_period  p1;
            avro_uploaded_by $http_x_client;
            avro_upload;
        }
        location = /user {
            avro_dataset $http_x_user;
            avro_upload;
        }
        location = /strict {
            avro_schemas %%TESTDATA%%/fusou/schema_v0_4.json
                         %%TESTDATA%%/fusou/schema_v0_5_1.json;
            avro_upload;
        }
        location = /few { avro_max_records 5; avro_upload; }
        location = /tiny { client_max_body_size 1k; avro_upload; }
        location = /status { avro_status; }
    }
}
CONF
$t->run;

my $json = JSON::PP->new->canonical;
my $hot  = $t->path('var/hot/hot.db');


sub upload {
    my ($uri, $file, %o) = @_;
    return $t->post($uri, 'application/avro', slurp($file), %o);
}

# the stored row as a container file, read by three Avro implementations
sub stored_records {
    my ($id) = @_;
    my $out = $t->path("var/row-$id.avro");
    my $r = AvroTest::Nginx::run_cmd($AvroTest::Nginx::PYTHON,
        "$AvroTest::Nginx::LIB/hot_export.py", $hot, $id, $out);
    die "hot_export: $r->{err}" if $r->{exit};
    return ($t->avro_dump($out), $t->avsc_dump($out), $t->avrocat($out));
}

my @w0 = sort $t->worker_pids;

subtest 'real tables, every codec, both writers' => sub {
    my $n = 0;
    for my $v (qw(0_4 0_5 0_5_1)) {
        my $bundle = "$AvroTest::Nginx::TESTDATA/fusou/schema_v$v.json";
        for my $table (qw(own_ship battle cells)) {
            for my $codec (qw(null deflate snappy zstandard)) {
                $n++;
                my $f = $t->avro_gen(schemas => $bundle, table => $table,
                    records => 12, codec => $codec, seed => $n,
                    block_records => 5);
                my $r = upload("/upload?dataset_id=py$n&table=$table", $f);
                is $r->{status}, 201, "python3-avro $v $table $codec: 201"
                    or diag $r->{content};
                my $a = $r->{json};
                is $a->{record_count}, 12, 'record count';
                is $a->{dataset_id}, "py$n", 'dataset';
                like $a->{schema_fingerprint}, qr/^[0-9a-f]{16}$/, 'fingerprint';
                my $want = $t->avro_dump($f);
                my ($py, $js, $cat) = stored_records($a->{id});
                is_deeply $py, $want, 'stored blocks read by python3-avro';
                is_deeply $js, $want, 'and by avsc';
                is scalar @$cat, 12, 'and by avrocat';
            }
        }
    }

    for my $codec (qw(null deflate)) {
        my $f = $t->avsc_gen(table => 'own_ship', records => 9, codec => $codec,
            seed => 77, block_size => 1000);
        my $r = upload("/upload?dataset_id=js&table=own_ship", $f);
        is $r->{status}, 201, "avsc $codec: 201" or diag $r->{content};
        my ($py) = stored_records($r->{json}{id});
        is_deeply $py, $t->avsc_dump($f), 'stored records as avsc wrote them';
    }
};

subtest 'JSON envelope, slices, duplicates' => sub {
    my $f1 = $t->avro_gen(table => 'own_ship', records => 4, codec => 'deflate', seed => 101);
    my $f2 = $t->avro_gen(table => 'own_ship', records => 6, codec => 'null', seed => 102);
    my $b1 = encode_base64(slurp($f1), '');
    my $b2 = encode_base64(slurp($f2), '');

    my $r = $t->post('/upload', 'application/json', $json->encode({
        dataset_id => 'env1', table_name => 'own_ship', period_tag => '2025-12-18',
        avro_base64 => $b1 }));
    is $r->{status}, 201, 'envelope: 201' or diag $r->{content};
    is $r->{json}{period_tag}, '2025-12-18', 'period from the envelope';
    my $id = $r->{json}{id};

    $r = $t->post('/upload', 'application/json; charset=utf-8', $json->encode({
        dataset_id => 'env1', table => 'own_ship', avro_base64 => $b1 }));
    is $r->{status}, 200, 'same file again: 200';
    is $r->{json}{id}, $id, 'with the original id';
    ok $r->{json}{duplicate}, 'marked duplicate';
    $r = upload('/upload?dataset_id=env1&table=own_ship', $f1);
    is $r->{status}, 200, 'as a raw upload too';
    is $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE dataset_id = 'env1'")->[0]{n},
        1, 'stored once';

    $r = $t->post('/upload', 'application/json', $json->encode({
        dataset_id => 'env2', table_name => 'own_ship', slices => [$b1, $b2] }));
    is $r->{status}, 201, 'two slices: 201' or diag $r->{content};
    is $r->{json}{record_count}, 10, 'records of both';
    is scalar @{ $r->{json}{uploads} }, 2, 'two uploads';

    my $bad = slurp($f2);
    substr($bad, -3, 1) = chr(ord(substr($bad, -3, 1)) ^ 0xff);
    $r = $t->post('/upload', 'application/json', $json->encode({
        dataset_id => 'env3', table_name => 'own_ship',
        slices => [$b1, encode_base64($bad, '')] }));
    is $r->{status}, 400, 'a bad slice: 400';
    is $r->{json}{message}, 'slice 2: block 1: sync marker mismatch', 'says which';
    is $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE dataset_id = 'env3'")->[0]{n},
        0, 'nothing of it stored';

    $r = $t->post('/upload', 'application/json', '{"dataset_id":"x","avro_base64":');
    is $r->{status}, 400, 'broken JSON: 400';
    like $r->{json}{message}, qr/^envelope: invalid JSON/, 'says so';
    $r = $t->post('/upload', 'application/json', $json->encode({
        dataset_id => 'x', table => 't', avro_base64 => '!!!' }));
    is $r->{status}, 400, 'bad base64: 400';
};

subtest 'names' => sub {
    my $f = $t->avro_gen(table => 'own_ship', records => 3, seed => 201);
    my $r = upload('/fixed?dataset_id=other&table=battle&period_tag=p9', $f,
        headers => { 'X-Client' => 'client-7' });
    is $r->{status}, 201, 'location names: 201';
    is_deeply [@{ $r->{json} }{qw(dataset_id table_name period_tag)}],
        ['fixed_user', 'own_ship', 'p1'], 'location names win over arguments';
    is $t->sqlite("SELECT uploaded_by FROM buffer_logs WHERE id = $r->{json}{id}")->[0]{uploaded_by},
        'client-7', 'uploaded_by from avro_uploaded_by';

    $r = upload('/upload?table=own_ship', $f);
    is $r->{status}, 400, 'no dataset: 400';
    like $r->{json}{message}, qr/^dataset_id: missing/, 'says what is missing';
    for my $bad ('..', '..%2Fetc', 'a%2Fb', 'a%5Cb', '.hidden', 'a%00b', 'a%0Ab', 'x' x 129) {
        $r = upload("/upload?dataset_id=$bad&table=own_ship", $f);
        is $r->{status}, 400, "dataset '$bad': 400";
        is $r->{json}{error}, 'malformed', 'JSON error body';
    }
    $r = upload('/upload?dataset_id=u&table=own_ship&period_tag=..', $f);
    is $r->{status}, 400, "period '..': 400";
    $r = upload('/upload?dataset_id=u&table=a%2F..%2Fb', $f);
    is $r->{status}, 400, 'table escaping its prefix: 400';
    my $rows = $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE dataset_id LIKE '%/%' "
        . "OR dataset_id LIKE '%..%' OR table_name LIKE '%/%'");
    is $rows->[0]{n}, 0, 'none stored';

    # a set avro_dataset whose value is empty is a 400, not the client's pick
    my $before = $t->hot_rows;
    $r = upload('/user?dataset_id=victim&table=own_ship', $f);
    is $r->{status}, 400, 'empty avro_dataset: 400';
    like $r->{json}{message}, qr/^dataset_id: empty/, 'says the dataset is empty';
    $r = $t->post('/user', 'application/json', $json->encode({
        dataset_id => 'victim', table_name => 'own_ship',
        avro_base64 => MIME::Base64::encode_base64(slurp($f), '') }));
    is $r->{status}, 400, 'nor from the envelope';
    is $t->hot_rows, $before,
        'nothing stored';
    $r = upload('/user?dataset_id=victim&table=own_ship', $f,
        headers => { 'X-User' => 'alice' });
    is $r->{status}, 201, 'with the variable set: 201';
    is $r->{json}{dataset_id}, 'alice', 'the variable names the dataset';
};

subtest 'accepted schemas' => sub {
    my $f = $t->avro_gen(table => 'own_ship', records => 3, seed => 301);
    my $r = upload('/strict?dataset_id=s&table=own_ship', $f);
    is $r->{status}, 201, 'a 0.5.1 schema for its table: 201' or diag $r->{content};
    my $old = $t->avro_gen(table => 'own_ship', records => 3, seed => 302,
        schemas => "$AvroTest::Nginx::TESTDATA/fusou/schema_v0_4.json");
    $r = upload('/strict?dataset_id=s&table=own_ship', $old);
    is $r->{status}, 201, 'a 0.4 schema (second file): 201' or diag $r->{content};
    $r = upload('/strict?dataset_id=s&table=battle', $f);
    is $r->{status}, 422, 'own_ship schema as battle: 422';
    like $r->{json}{message}, qr/is not accepted for table 'battle'/, 'says why';
    $r = upload('/strict?dataset_id=s&table=nope', $f);
    is $r->{status}, 422, 'unknown table: 422';
    my $other = $t->avro_gen(
        schema_json => '{"type":"record","name":"X","fields":[{"name":"a","type":"int"}]}',
        records => 2, seed => 303);
    $r = upload('/strict?dataset_id=s&table=own_ship', $other);
    is $r->{status}, 422, 'foreign schema: 422';
    $r = upload('/upload?dataset_id=s&table=own_ship', $other);
    is $r->{status}, 201, 'accepted where avro_schemas is not set';
};

subtest 'methods, types, sizes' => sub {
    my $f = $t->avro_gen(table => 'own_ship', records => 6, seed => 401);
    my $r = $t->get('/upload');
    is $r->{status}, 405, 'GET: 405';
    is $r->{headers}{allow}, 'POST', 'Allow: POST';
    is $r->{json}{error}, 'method_not_allowed', 'JSON body';
    $r = $t->request('PUT', '/upload', body => 'x');
    is $r->{status}, 405, 'PUT: 405';
    $r = $t->post('/upload?dataset_id=u&table=t', 'text/plain', slurp($f));
    is $r->{status}, 415, 'text/plain: 415';
    is $r->{json}{error}, 'unsupported', 'JSON body';
    $r = $t->request('POST', '/upload?dataset_id=u&table=t', body => slurp($f));
    is $r->{status}, 415, 'no Content-Type: 415';
    $r = upload('/few?dataset_id=u&table=own_ship', $f);
    is $r->{status}, 413, 'more records than avro_max_records: 413';
    like $r->{json}{message}, qr/more than 5 records/, 'says the limit';
    $r = upload('/tiny?dataset_id=u&table=own_ship', $f);
    is $r->{status}, 413, 'over client_max_body_size: 413 (nginx)';
    $r = $t->post('/upload?dataset_id=u&table=t', 'application/avro', '');
    is $r->{status}, 400, 'empty body: 400';

    # 724 bytes that decompress to 300 KB: more than the event loop takes
    # on, so the validation begun there is finished in a pool thread
    my $e = '{"type":"enum","name":"E","symbols":["A"]}';
    my $z = $t->avro_gen(records => 75000, codec => 'deflate',
        schema_json => qq({"type":"record","name":"Z","fields":[{"name":"a","type":$e},)
            . '{"name":"b","type":"E"},{"name":"c","type":"E"},{"name":"d","type":"E"}]}');
    $r = upload('/upload?dataset_id=zz&table=zz', $z);
    is $r->{status}, 201, 'a small file of many records: 201';
    is $r->{json}{record_count}, 75000, 'every record counted';
};

subtest 'hostile files' => sub {
    my $m = $t->hostile;
    my $before = $t->hot_rows;
    for my $c (@{ $m->{cases} }) {
        my $r = upload("/upload?dataset_id=h&table=$m->{control}{table}", $c->{path});
        is $r->{status}, $c->{status}, "$c->{name}: $c->{status}"
            or diag $r->{content};
        ok $r->{json} && $r->{json}{message}, "$c->{name}: JSON reason: "
            . ($r->{json} ? $r->{json}{message} : '-');
    }
    is $t->hot_rows, $before,
        'none stored';
    my $r = upload("/upload?dataset_id=h&table=$m->{control}{table}", $m->{control}{path});
    is $r->{status}, 201, 'the valid control file: 201';
    is $r->{json}{record_count}, $m->{control}{records}, 'with its records';
    is_deeply [sort $t->worker_pids], \@w0, 'the same workers live on';
};

subtest 'busy store: 503, then accepted' => sub {
    my $f = $t->avro_gen(table => 'own_ship', records => 3, seed => 501);
    open my $sq, '|-', 'sqlite3', $hot or die "sqlite3: $!";
    select((select($sq), $| = 1)[0]);
    print $sq "PRAGMA busy_timeout = 5000;\nBEGIN IMMEDIATE;\n"
        . "INSERT INTO schemas VALUES ('ffffffffffffffff', '\"int\"', '\"int\"', 0);\n";
    sleep 1;
    my $r = upload('/upload?dataset_id=busy&table=own_ship', $f);
    is $r->{status}, 503, 'write lock held elsewhere: 503';
    ok $r->{headers}{'retry-after'}, 'Retry-After';
    is $r->{json}{error}, 'busy', 'JSON body says busy';
    print $sq "ROLLBACK;\n.quit\n";
    close $sq;
    $r = upload('/upload?dataset_id=busy&table=own_ship', $f);
    is $r->{status}, 201, 'released: the retry is stored';
};

subtest 'status' => sub {
    my $r = $t->get('/status');
    is $r->{status}, 200, 'GET status: 200';
    my $rows = $t->sqlite('SELECT count(*) AS n, sum(length(data)) AS b, '
        . 'sum(record_count) AS r FROM buffer_logs')->[0];
    is $r->{json}{hot}{rows}, $rows->{n}, 'hot rows';
    is $r->{json}{hot}{bytes}, $rows->{b}, 'hot bytes';
    is $r->{json}{hot}{records}, $rows->{r}, 'hot records';
    is $t->request('POST', '/status', body => 'x')->{status}, 405, 'POST: 405';
};

is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok', 'integrity_check';
is_deeply [$t->check_log_clean], [], 'no alert, crit or crash in the error log';
done_testing;
