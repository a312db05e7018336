package AvroTest::Read;

# What the read tests share: uploads that remember their records, and a
# read checked by three Avro readers that must agree.
#
#   my $rd = AvroTest::Read->new($t);        # $t: an AvroTest::Nginx
#   my ($recs, $fp) = $rd->upload('u1', 'own_ship', 'p1', records => 3);
#   my $got = $rd->read_ok('/read?dataset_id=u1&table=own_ship', 'name');
#   is_deeply $got, $rd->all_of('u1', 'own_ship');     # every period
#   my $n = $rd->during_cycle(sub { ... });   # runs while a cycle runs

use strict;
use warnings;
use AvroTest::Nginx qw(slurp);
use Test::More;
use POSIX ();
use Time::HiRes ();

sub new {
    my ($class, $t, %o) = @_;
    return bless { t => $t, want => {}, seed => $o{seed} // 0, n => 0 }, $class;
}


# Writes bytes to a new file of the test's prefix; returns its path.
sub save {
    my ($self, $bytes) = @_;
    my $f = $self->{t}->path(sprintf 'var/answer-%d.avro', ++$self->{n});
    open my $fh, '>:raw', $f or die "$f: $!";
    print $fh $bytes;
    close $fh;
    return $f;
}

# Uploads a python3-avro file of the table (schemas => BUNDLE for another
# client version); returns its records and, in list context, the schema
# fingerprint the module answered.
sub upload {
    my ($self, $ds, $table, $period, %o) = @_;
    my $f = $self->{t}->avro_gen(table => $table, records => $o{records} // 3,
        seed => ++$self->{seed}, ($o{schemas} ? (schemas => $o{schemas}) : ()));
    return $self->upload_file($ds, $table, $period, $f);
}

# The same with a file already written; its records are read once.
sub upload_file {
    my ($self, $ds, $table, $period, $f) = @_;
    my $t = $self->{t};
    my $r = $t->post("/upload?dataset_id=$ds&table=$table&period_tag=$period",
        'application/avro', slurp($f));
    is $r->{status}, 201, "upload $ds $table $period" or diag $r->{content};
    my $recs = $self->{dump}{$f} //= $t->avro_dump($f);
    push @{ $self->{want}{$ds}{$table}{$period} }, @$recs;
    return wantarray ? ($recs, $r->{json}{schema_fingerprint}) : $recs;
}

# The records uploaded for a dataset and table, periods in order.
sub all_of {
    my ($self, $ds, $table, @periods) = @_;
    my $w = $self->{want}{$ds}{$table} // {};
    @periods = sort keys %$w unless @periods;
    return [ map { @{ $w->{$_} // [] } } @periods ];
}

# GETs a read and checks it whole; returns the records python3-avro reads
# (and the response in list context).
sub read_ok {
    my ($self, $uri, $name, %o) = @_;
    my $t = $self->{t};
    my $r = $t->get($uri, %o);
    is $r->{status}, 200, "$name: 200" or do { diag $r->{content}; return };
    is $r->{headers}{'content-type'}, 'application/avro', "$name: application/avro";
    is length $r->{content}, $r->{headers}{'content-length'}, "$name: whole";
    my $f = $self->save($r->{content});
    my $py = $t->avro_dump($f);
    is_deeply $t->avsc_dump($f), $py, "$name: avsc reads what python3-avro reads";
    is scalar @{ $t->avrocat($f) }, scalar @$py, "$name: avrocat reads as many";
    return wantarray ? ($py, $r) : $py;
}

# Runs one archive cycle (POST $uri) in a child while $check runs in a
# loop here; returns how many times $check ran during the cycle.
sub during_cycle {
    my ($self, $uri, $check) = @_;
    my $t = $self->{t};
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        my $r = $t->post($uri, 'application/json', '');
        POSIX::_exit($r->{status} == 200 ? 0 : 1);
    }
    my $n = 0;
    while (waitpid($pid, POSIX::WNOHANG()) == 0) {
        $check->();
        $n++;
    }
    is $?, 0, 'the cycle ran';
    return $n;
}

1;
