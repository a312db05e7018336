package AvroTest::Archive;

# What the archive tests share: uploads of small python3-avro files that
# remember their records, a cycle run now, and the check that each upload
# is indexed once with all its records.
#
#   my $ar = AvroTest::Archive->new($t, period => 'p4');  # table battle
#   is $ar->upload('a1'), 201;
#   my $r = $ar->archive;                     # POST /archive
#   is_deeply [$ar->misindexed], [];          # datasets indexed wrongly
#   my $r = $ar->through_proxy($s3, qr/\(unsigned payload\)$/, 'each unsigned');
#   $r = $ar->under_fault($s3, 'put_corrupt');   # 3 more uploads, one cycle
#
#   my ($pid, $key, $child) = AvroTest::Archive::stop_at($t, $stop, 'put');
#   AvroTest::Archive::kill_stopped($pid, $child);   # kill -9 there

use strict;
use warnings;
use HTTP::Tiny;
use POSIX ();
use Time::HiRes qw(sleep time);
use AvroTest::Nginx qw(slurp);

sub new {
    my ($class, $t, %o) = @_;
    return bless { t => $t, table => $o{table} // 'battle',
                   period => $o{period} // 'p1', n => 0, records => {} },
                 $class;
}

# Uploads a new file of 4 records for dataset $ds; returns the status.
sub upload {
    my ($self, $ds) = @_;
    my $t = $self->{t};
    my $f = $t->avro_gen(table => $self->{table}, records => 4,
        codec => 'deflate', seed => ++$self->{n});
    my $body = slurp($f) // die "$f: $!";
    $self->{records}{$ds} += 4;
    return $t->post("/upload?dataset_id=$ds&table=$self->{table}"
        . "&period_tag=$self->{period}", 'application/avro', $body)->{status};
}

sub records { scalar keys %{ $_[0]{records} } }

sub archive {
    $_[0]{t}->post('/archive', 'application/json', '', timeout => 30);
}

# Uploads a1..a6, archives them through the fault proxy of $s3 and checks
# that the cycle succeeded with at least two PUTs, each of whose proxy log
# lines matches $put_re ($what says how); returns the cycle's answer.
sub through_proxy {
    my ($self, $s3, $put_re, $what) = @_;
    Test::More::is($self->upload("a$_"), 201, "upload a$_") for 1 .. 6;
    my $r = $self->archive;
    Test::More::is($r->{status}, 200, 'archived through the SigV4-checking proxy')
        or Test::More::diag($r->{content});
    my @puts = $s3->proxied('PUT');
    Test::More::ok(@puts >= 2, scalar(@puts) . ' PUTs went through the proxy');
    Test::More::is_deeply([grep { !/$put_re/ } @puts], [], "$what, none refused");
    return $r;
}

# Uploads b1..b3, switches the proxy of $s3 to $fault and runs a cycle;
# returns its answer.
sub under_fault {
    my ($self, $s3, $fault) = @_;
    Test::More::is($self->upload("b$_"), 201, "upload b$_") for 1 .. 3;
    $s3->fault($fault);
    return $self->archive;
}

# The datasets uploaded whose block_indexes rows are not exactly one with
# all their records.
sub misindexed {
    my ($self) = @_;
    my %ix = map { $_->{d} => [$_->{n}, $_->{r}] } @{ $self->{t}->sqlite(
        'SELECT dataset_id AS d, count(*) AS n, sum(record_count) AS r '
        . 'FROM block_indexes GROUP BY 1') };
    my $want = $self->{records};
    return grep { !$ix{$_} || $ix{$_}[0] != 1 || $ix{$_}[1] != $want->{$_} }
        sort keys %$want;
}

# Arms the module's test stop $step (in $stop, the directory nginx has in
# AVRO_TEST_ARCHIVE_STOP), runs a cycle from a child process and waits up to
# 20 s for a worker to stop there.  Returns the worker's pid and the job's
# key (both undef when none stopped) and the child's pid.
sub stop_at {
    my ($t, $stop, $step) = @_;
    my $arm = "$stop/$step.arm";
    open my $fh, '>', $arm or die "$arm: $!";
    close $fh;
    chmod 0666, $arm;

    my $child = fork // die "fork: $!";
    if ($child == 0) {
        HTTP::Tiny->new(timeout => 60)->post($t->url('/archive'));
        POSIX::_exit(0);
    }

    my $end = time + 20;
    while (time < $end) {
        my ($pid, $key) = (slurp("$stop/$step.pid") // '') =~ /^(\d+) (\S+)\n/;
        return ($pid, $key, $child) if $pid;
        sleep 0.05;
    }
    return (undef, undef, $child);
}

# kill -9 of the worker stop_at found, then waits for it and for the child.
sub kill_stopped {
    my ($pid, $child) = @_;
    my $killed = kill 'KILL', $pid;
    waitpid $child, 0;
    sleep 0.1 while AvroTest::Nginx::alive($pid);
    return $killed;
}

1;
