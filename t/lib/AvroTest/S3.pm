package AvroTest::S3;

# A real S3-compatible server for the tests (s3rver from the npm registry,
# pinned in package.json), and the fault-injecting proxy t/lib/faultproxy.pl
# in front of it.  Both run inside the test's prefix and stop with it.
#
#   my $s3 = AvroTest::S3->new($t);      # $t: an AvroTest::Nginx
#   AvroTest::S3->new($t, tls => 1);     # https, certificate in $s3->ca
#   $s3->port; $s3->dir;                 # bucket "bucket" is created
#   $s3->credentials;                    # a credentials file for it
#   my $p = $s3->proxy; $s3->fault('503');   # proxy port, switch faults
#   $s3->proxy(sigv4 => 1);              # the proxy also checks signatures
#   $s3->object("bucket/pfx/$key");      # where s3rver keeps an object
#   $s3->bad_objects('bucket/pfx');      # archived_files rows it disagrees with
#   $s3->proxied('PUT');                 # the proxy's log lines of PUTs

use strict;
use warnings;
use AvroTest::Nginx qw(slurp);
use Digest::MD5;
use Digest::SHA;
use IO::Socket::INET;
use Time::HiRes qw(sleep);

my @PIDS;
END { kill 'TERM', @PIDS if @PIDS; }

sub _free_port {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 1, ReuseAddr => 1) or die "port: $!";
    my $p = $s->sockport;
    close $s;
    return $p;
}

sub _spawn {
    my ($log, @argv) = @_;
    my $pid = fork // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', $log;
        open STDERR, '>&', \*STDOUT;
        exec @argv;
        exit 127;
    }
    push @PIDS, $pid;
    return $pid;
}

sub _wait_port {
    my ($port) = @_;
    for (1 .. 100) {
        return 1 if IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port);
        sleep 0.1;
    }
    die "nothing listens on $port\n";
}

sub new {
    my ($class, $t, %o) = @_;
    my $bin = "$AvroTest::Nginx::ROOT/node_modules/.bin/s3rver";
    -x $bin or die "s3rver is not installed: run npm ci\n";
    my $self = bless { t => $t, dir => $t->path('s3'), port => _free_port() }, $class;
    mkdir $self->{dir};
    my @tls;
    if ($o{tls}) {
        # a self-signed certificate for 127.0.0.1, its own CA
        $self->{ca} = $t->path('var/s3-cert.pem');
        my $key = $t->path('var/s3-key.pem');
        my $r = AvroTest::Nginx::run_cmd('openssl', 'req', '-x509', '-newkey', 'ec',
            '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
            '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
            '-keyout', $key, '-out', $self->{ca});
        $r->{exit} == 0 or die "openssl req: $r->{err}\n";
        chmod 0644, $self->{ca};
        @tls = ('--key', $key, '--cert', $self->{ca});
    }
    _spawn($t->path('logs/s3rver.log'), $bin, '-d', $self->{dir},
        '-a', '127.0.0.1', '-p', $self->{port}, @tls, '--configure-bucket', 'bucket');
    _wait_port($self->{port});
    my $cred = $t->path('var/s3.cred');
    open my $fh, '>', $cred or die $!;
    print $fh "# test server\naccess_key_id=S3RVER\nsecret_access_key=S3RVER\n";
    close $fh;
    chmod 0644, $cred;
    $self->{cred} = $cred;
    return $self;
}

sub port        { $_[0]{port} }
sub dir         { $_[0]{dir} }
sub credentials { $_[0]{cred} }
sub ca          { $_[0]{ca} }

sub proxy {
    my ($self, %o) = @_;
    return $self->{proxy} if $self->{proxy};
    $self->{proxy} = _free_port();
    $self->{mode} = $self->{t}->path('var/fault');
    $self->fault('pass');
    _spawn($self->{t}->path('logs/proxy.log'), $^X,
        "$AvroTest::Nginx::LIB/faultproxy.pl", $self->{proxy}, $self->{port},
        $self->{mode}, ($o{sigv4} ? 'S3RVER:S3RVER' : ()));
    _wait_port($self->{proxy});
    return $self->{proxy};
}

sub fault {
    my ($self, $mode) = @_;
    open my $fh, '>', $self->{mode} or die $!;
    print $fh "$mode\n";
    close $fh;
}


sub object { "$_[0]{dir}/$_[1]._S3rver_object" }

sub proxied {
    my ($self, $method) = @_;
    open my $fh, '<', $self->{t}->path('logs/proxy.log') or return ();
    return grep { /^$method / } <$fh>;
}

# Checks every archived_files row against the object s3rver holds under
# $where (bucket/prefix): size, SHA-256, ETag = MD5, and the record count
# read back by python3-avro (the rows $filter, an SQL condition, selects).
# Returns what differs.
sub bad_objects {
    my ($self, $where, $filter) = @_;
    my $t = $self->{t};
    my @wrong;
    for my $f (@{ $t->sqlite('SELECT file_path, file_size, record_count, '
                             . 'sha256, etag FROM archived_files'
                             . ($filter ? " WHERE $filter" : '')) }) {
        my $file = $self->object("$where/$f->{file_path}");
        my $data = slurp($file) // '';
        my $p = $f->{file_path};
        push @wrong, "$p: size" if length $data != $f->{file_size};
        push @wrong, "$p: sha256" if Digest::SHA::sha256_hex($data) ne $f->{sha256};
        push @wrong, "$p: etag" if Digest::MD5::md5_hex($data) ne $f->{etag};
        push @wrong, "$p: records"
            if @{ $t->avro_dump($file) } != $f->{record_count};
    }
    return @wrong;
}

1;
