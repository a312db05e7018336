#!/usr/bin/perl
# The WAL's checkpoint runs right after a commit, in the same call: when
# it cannot write the database file (its disk full), the commit is done
# all the same, so the upload is acknowledged; an upload answered 503 is
# one that is not stored.  The hot store sits on a small tmpfs of its own,
# filled so that the WAL still has room for its frames but the database
# file has none to grow into.  Skipped where tmpfs cannot be mounted.

use strict;
use warnings;
use Test::More;
use lib 't/lib';
use AvroTest::Nginx;

plan skip_all => 'mounting tmpfs needs root' if $> != 0;

my $t = AvroTest::Nginx->new(sqlite_file => 'var/hot/hot.db');
$t->mount_tmpfs('var/hot', '48m')
    or plan skip_all => 'cannot mount tmpfs here';

$t->archive_conf(workers => 1, cold => 'file:%%PREFIX%%/var/cold',
    archive => 'interval=1h node=wal');
$t->run;

# SQLite checkpoints by itself once the WAL holds 1000 frames of the
# store's 16 KiB pages (a frame: 24 bytes of header and the page)
my $frame = 24 + 16384;
my $wal = $t->path('var/hot/hot.db-wal');
sub wal_frames { int(((-s $wal // 32) - 32) / $frame) }

my $body = slurp($t->avro_gen(table => 'own_ship', records => 200,
    seed => 7, codec => 'null'));
my $n = 0;
sub upload {
    $n++;
    return $t->post("/upload?dataset_id=u$n&table=own_ship",
        'application/avro', $body);
}

my $accepted = 0;
while (wal_frames() < 900 && $n < 2000) {
    my $r = upload();
    is $r->{status}, 201, 'filling the WAL' or last if $r->{status} != 201;
    $accepted++;
}
my $frames = wal_frames();
cmp_ok $frames, '>=', 900, "$accepted uploads: $frames WAL frames";

# room for the WAL's last frames before 1000, not for the checkpoint,
# which copies every page they hold into the database file
my $ballast = $t->fill_disk('var/hot', 2_400_000);

my ($refused, $r) = (0);
for (1 .. 400) {
    $r = upload();
    if ($r->{status} == 201) {
        $accepted++;
        next;
    }
    $refused++;
    last;
}
is $r->{status}, 503, "the disk fills up: 503 after $accepted uploads"
    or diag explain $r->{json};
is $r->{json}{error}, 'full', 'JSON: full';
cmp_ok wal_frames(), '>', 1000, 'the WAL went past its checkpoint: '
    . wal_frames() . ' frames';
my $db = $t->path('var/hot/hot.db');
cmp_ok -s $db, '<', $frames * 16384 / 2, 'which could not copy them into '
    . 'the database file: ' . (-s $db) . ' bytes';
like $r->{json}{message}, qr/full/, "says so: $r->{json}{message}";

is $t->hot_rows, $accepted,
    "every acknowledged upload stored ($accepted), not the refused one";

unlink $ballast;
$r = upload();
is $r->{status}, 201, 'space freed: the next upload is taken'
    or diag $r->{content};
$accepted++;

# the refused one again: not a duplicate, stored now
$r = $t->post("/upload?dataset_id=u" . ($n - 1) . "&table=own_ship",
    'application/avro', $body);
is $r->{status}, 201, 'the refused upload, sent again, is stored'
    or diag $r->{content};
$accepted++;

is $t->hot_rows, $accepted,
    "all $accepted stored";
is $t->sqlite('PRAGMA integrity_check')->[0]{integrity_check}, 'ok',
    'integrity_check';

$r = $t->post('/archive', 'application/json', '');
is $r->{status}, 200, 'a cycle archives them' or diag $r->{content};
is $r->{json}{uploads}, $accepted, "all $accepted";
cmp_ok -s $wal // 0, '<', 4 * $frame, 'its checkpoint gave the WAL back: '
    . (-s $wal) . ' bytes';

is_deeply [$t->check_log_clean], [], 'no alert, crit or crash';
done_testing;
