#!/usr/bin/perl
# The S3 store failing behind a fault-injecting proxy: 5xx answers, dropped
# connections, and a PUT whose answer is lost after the object was stored.
# Meanwhile uploads are accepted; each failure is logged with the key and
# the store's answer; once the store is back everything is archived, and
# nothing twice.

use strict;
use warnings;
use Test::More;
use Time::HiRes qw(sleep);
use JSON::PP;
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db', log_level => 'info');
my $s3 = AvroTest::S3->new($t);
my $proxy = $s3->proxy;
my $cred = $s3->credentials;

$t->archive_conf(
    cold => "s3://bucket/faults endpoint=http://127.0.0.1:$proxy credentials=$cred",
    archive => 'interval=1h node=f1',
    locations => ['location = /status  { avro_status; }']);
$t->run;


my $n = 0;
sub upload {
    my ($ds) = @_;
    my $f = $t->avro_gen(table => 'battle', records => 3, seed => ++$n);
    return $t->post("/upload?dataset_id=$ds&table=battle&period_tag=p3",
        'application/avro', slurp($f))->{status};
}

is upload('a'), 201, 'upload a';

$s3->fault('503');
my $r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'store answers 503: the cycle fails with 503';
like $r->{json}{message}, qr{battle/p3/[0-9a-f]{16}/f1-\d+\.avro}, 'the message names the key';
like $r->{json}{message}, qr/the store answered 503/, 'and the store\'s answer';
unlike $r->{content}, qr/S3RVER/, 'no credentials in the answer';
is upload('b'), 201, 'uploads are accepted meanwhile';

$s3->fault('drop');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'dropped connection: 503';

my $status = $t->get('/status')->{json}{archive};
cmp_ok $status->{consecutive_failures}, '>=', 2, 'status counts the failures';
cmp_ok $status->{pending_jobs}, '>=', 1, 'and the pending job';

$s3->fault('drop_after_put');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'PUT stored but its answer lost: 503';
my @objects = glob $s3->dir . '/bucket/faults/battle/p3/*/*._S3rver_object';
is scalar @objects, 1, 'the object is in the bucket nonetheless';
is upload('c'), 201, 'upload c';

$s3->fault('pass');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'store back: the cycle succeeds' or diag $r->{content};
cmp_ok $r->{json}{recovered_jobs}, '>=', 1, 'the pending job was run again';

is $t->hot_rows, 0, 'no hot row left';
my $idx = $t->sqlite('SELECT dataset_id AS d, count(*) AS n FROM block_indexes GROUP BY 1');
is_deeply { map { $_->{d} => $_->{n} } @$idx }, { a => 1, b => 1, c => 1 },
    'each dataset indexed once';
is $t->sqlite('SELECT count(*) AS n FROM archived_files')->[0]{n},
    scalar(() = glob $s3->dir . '/bucket/faults/battle/p3/*/*._S3rver_object'),
    'as many objects as archived files: the lost answer made no second object';

# One table whose PUTs keep failing: the other tables are archived, the
# failing one stays hot, and the answer says what the cycle did.
sub upload_to {
    my ($ds, $table, $period) = @_;
    $period //= 'p3';
    my $f = $t->avro_gen(table => $table, records => 3, seed => ++$n);
    return $t->post("/upload?dataset_id=$ds&table=$table&period_tag=$period",
        'application/avro', slurp($f))->{status};
}
is upload_to('g1', 'own_ship'), 201, 'upload g1 own_ship';
is upload_to('g2', 'own_ship'), 201, 'upload g2 own_ship';
is upload_to('h1', 'battle'), 201, 'upload h1 battle';
$s3->fault('put_fail own_ship');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'one table\'s PUTs fail: 503';
like $r->{json}{message}, qr{own_ship/p3/[0-9a-f]{16}/f1-\d+\.avro},
    'the message names its key';
like $r->{json}{message}, qr/500/, 'and the store\'s answer';
is $r->{json}{cycle}{files}, 1, 'the answer says the other table was archived'
    or diag $r->{content};
is $r->{json}{cycle}{failed_jobs}, 1, 'and that one job failed';
my $hot = $t->sqlite('SELECT table_name AS t, count(*) AS n FROM buffer_logs'
    . ' GROUP BY 1');
is_deeply { map { $_->{t} => $_->{n} } @$hot }, { own_ship => 2 },
    'only the failing table is hot';
is $t->sqlite("SELECT count(*) AS n FROM block_indexes WHERE dataset_id = 'h1'")
    ->[0]{n}, 1, 'h1 indexed';
is upload_to('h2', 'battle'), 201, 'upload h2 battle';
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'still failing: 503';
is $r->{json}{cycle}{files}, 1, 'the other table\'s new upload archived';
my $failing = $t->get('/status')->{json}{archive}{failing_jobs};
is scalar @$failing, 1, 'status lists one failing job' or diag explain $failing;
is $failing->[0]{table}, 'own_ship', 'its table';
like $failing->[0]{key}, qr{^own_ship/p3/}, 'its key';
cmp_ok $failing->[0]{attempts}, '>=', 2, 'its attempts';
like $failing->[0]{last_error}, qr/500/, 'and the store\'s answer';
$s3->fault('pass');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'store back: the cycle succeeds' or diag $r->{content};
is $r->{json}{failed_jobs}, 0, 'no failed job';
is_deeply $t->get('/status')->{json}{archive}{failing_jobs}, [],
    'status lists no failing job';
is $t->hot_rows, 0, 'no hot row left';
$idx = $t->sqlite("SELECT dataset_id AS d, count(*) AS n FROM block_indexes"
    . " WHERE dataset_id IN ('g1', 'g2', 'h1', 'h2') GROUP BY 1");
is_deeply { map { $_->{d} => $_->{n} } @$idx }, { g1 => 1, g2 => 1, h1 => 1, h2 => 1 },
    'each dataset indexed once';
is_deeply [$s3->bad_objects('bucket/faults')], [], 'every object matches its catalog row';

my $other = "stored by another writer\n";

# The next cycle archives the group of period $period, whose key $taken
# holds another writer's object, under another key, leaving that object
# as it was, each of the datasets indexed once.
sub next_cycle_takes_next_key {
    my ($period, $taken, @datasets) = @_;
    my $r = $t->post('/archive', 'application/json', '');
    is $r->{status}, 200, 'the next cycle succeeds' or diag $r->{content};
    my $files = $t->sqlite("SELECT file_path AS p FROM archived_files"
        . " WHERE file_path LIKE 'battle/$period/%'");
    is scalar @$files, 1, 'one file for the group';
    isnt $files->[0]{p}, $taken, 'under another key';
    is slurp($s3->object("bucket/faults/$taken")), $other,
        'the other writer\'s object is left as it was';
    my $in = join ', ', map { "'$_'" } @datasets;
    my $idx = $t->sqlite("SELECT dataset_id AS d, count(*) AS n"
        . " FROM block_indexes WHERE dataset_id IN ($in) GROUP BY 1");
    is_deeply { map { $_->{d} => $_->{n} } @$idx }, { map { $_ => 1 } @datasets },
        'each dataset indexed once';
    is_deeply [$s3->bad_objects('bucket/faults')], [],
        'every object matches its catalog row';
}

# Another writer (a second node given the same name) stores an object
# under the key between the job's HEAD and its first PUT: the PUT is
# conditional (If-None-Match), the store refuses it, nothing of the other
# writer's is replaced, and the next cycle gives the job the next key.
is upload_to('k1', 'battle', 'p4'), 201, 'upload k1';
is upload_to('k2', 'battle', 'p4'), 201, 'upload k2';
$s3->fault('put_taken p4');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'the key was taken meanwhile: 503' or diag $r->{content};
like $r->{json}{message}, qr/key is taken.*412 PreconditionFailed/,
    'the message says so, with the store\'s answer';
my ($taken) = ($r->{json}{message} // '') =~ m{(battle/p4/[0-9a-f]{16}/f1-\d+\.avro)};
ok $taken, 'and names the key';
is slurp($s3->object("bucket/faults/$taken")), $other,
    'the other writer\'s object is there';
is $t->sqlite("SELECT count(*) AS n FROM buffer_logs WHERE period_tag = 'p4'")
    ->[0]{n}, 2, 'both uploads still hot';
next_cycle_takes_next_key('p4', $taken, 'k1', 'k2');

# The same, but the store's 412 is lost on the way: the job has counted a
# put, so its next run must not take the object under its key for its own
# lost answer's.  Each object names its writer; this one names another, so
# the job moves to the next key instead of replacing it.
is upload_to('m1', 'battle', 'p5'), 201, 'upload m1';
is upload_to('m2', 'battle', 'p5'), 201, 'upload m2';
$s3->fault('put_taken_lost p5');
$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 503, 'the conditional PUT\'s answer is lost: 503'
    or diag $r->{content};
my $lost = $t->sqlite("SELECT key, put_attempts AS n FROM archive_jobs"
    . " WHERE period_tag = 'p5' AND state = 'pending'");
is scalar @$lost, 1, 'one pending job';
is $lost->[0]{n}, 1, 'which counted its put';
is slurp($s3->object("bucket/faults/$lost->[0]{key}")), $other,
    'the other writer\'s object is under its key';
next_cycle_takes_next_key('p5', $lost->[0]{key}, 'm1', 'm2');

# A reload while a cycle the timer started waits for a slow store: the old
# worker finishes the cycle asleep, not spinning in the thread pool's
# exit, and leaves once it is done.
my $archived = $t->error_log_matches(qr/avro archive: \d+ files/);
$s3->fault('delay 4000');
$t->archive_conf(
    cold => "s3://bucket/faults endpoint=http://127.0.0.1:$proxy credentials=$cred",
    archive => 'interval=1s node=f1',
    locations => ['location = /status  { avro_status; }']);
$t->reload;
is upload('e'), 201, 'upload e';
sleep 2.2;    # the timer fires after 1-2 s; the store holds each request 4 s
my ($old) = $t->worker_pids;
$t->reload(wait_old => 0);
sub cpu_ticks {
    my @f = split ' ', (AvroTest::Nginx::_slurp("/proc/$_[0]/stat") =~ /\)\s+(.*)/)[0];
    return $f[11] + $f[12];
}
my $ticks = cpu_ticks($old);
sleep 1;
ok AvroTest::Nginx::alive($old), 'the old worker waits for its cycle';
cmp_ok cpu_ticks($old) - $ticks, '<', 30, 'asleep: under 0.3 s of CPU in 1 s';
my $gone;
for (1 .. 150) { last if $gone = !AvroTest::Nginx::alive($old); sleep 0.1 }
ok $gone, 'and leaves once it is done';
is scalar($t->error_log_matches(qr/avro archive: \d+ files/)), $archived + 1,
    'its cycle archived e';
is $t->sqlite("SELECT count(*) AS n FROM block_indexes WHERE dataset_id = 'e'")->[0]{n},
    1, 'e indexed once';
$s3->fault('pass');

# A put that lasts longer than the lease: the archiver renews it while it
# waits, so the other worker, trying every second, never takes the job
# over and puts it a second time.
my @stored = $t->error_log_matches(qr/avro archive: stored/);
my $puts = () = $s3->proxied('PUT');
$s3->fault('delay 2500');
$t->archive_conf(workers => 2,
    cold => "s3://bucket/faults endpoint=http://127.0.0.1:$proxy credentials=$cred",
    archive => 'interval=1s lease=3s node=f1',
    locations => ['location = /status  { avro_status; }']);
$t->reload;
is upload('f'), 201, 'upload f';
my $waited = 0;
for (1 .. 150) {
    last if $t->sqlite("SELECT count(*) AS n FROM block_indexes WHERE dataset_id = 'f'")->[0]{n};
    sleep 0.1;
    $waited += 0.1;
}
cmp_ok $waited, '>', 4, sprintf('its HEAD and PUT took longer than the lease (%.1f s)', $waited);
# the cycle logs its files on the event loop once it has ended, a moment
# after the commit that indexed f
my @new;
for (1 .. 50) {
    @new = $t->error_log_matches(qr/avro archive: stored/);
    last if @new > @stored;
    sleep 0.1;
}
splice @new, 0, scalar @stored;
is scalar @new, 1, 'one archiver put it, once' or diag join "\n", @new;
ok !(grep { /recovered job/ } @new), 'no other took it over';
is scalar(() = $s3->proxied('PUT')) - $puts, 1, 'one PUT reached the store';
is $t->sqlite("SELECT count(*) AS n FROM block_indexes WHERE dataset_id = 'f'")->[0]{n},
    1, 'f indexed once';
$s3->fault('pass');

my @log = $t->error_log_matches(qr/avro archive cycle failed/);
cmp_ok scalar @log, '>=', 3, 'each failure is in the error log';
ok !(grep { /S3RVER/ } $t->error_log), 'no credentials in the error log';
is_deeply [$t->check_log_clean], [], 'no alert';
done_testing;
