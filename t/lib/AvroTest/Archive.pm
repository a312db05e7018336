package AvroTest::Archive;

# What the archive tests share: uploads of small python3-avro files that
# remember their records, a cycle run now, and the check that each upload
# is indexed once with all its records.
#
#   my $ar = AvroTest::Archive->new($t, period => 'p4');  # table battle
#   is $ar->upload('a1'), 201;
#   my $r = $ar->archive;                     # POST /archive
#   is_deeply [$ar->misindexed], [];          # datasets indexed wrongly

use strict;
use warnings;

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
    open my $fh, '<:raw', $f or die "$f: $!";
    local $/;
    my $body = <$fh>;
    $self->{records}{$ds} += 4;
    return $t->post("/upload?dataset_id=$ds&table=$self->{table}"
        . "&period_tag=$self->{period}", 'application/avro', $body)->{status};
}

sub records { scalar keys %{ $_[0]{records} } }

sub archive {
    $_[0]{t}->post('/archive', 'application/json', '', timeout => 30);
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

1;
