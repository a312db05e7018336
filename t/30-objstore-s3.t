#!/usr/bin/perl
# The S3 backend of the object store (src/avs_objstore.c) against a real
# S3-compatible server: s3rver from the npm registry (pinned in
# package.json), with t/lib/faultproxy.pl in front of it checking every
# request's SigV4 signature (s3rver does not) and injecting faults.  The
# checks themselves are the C program build/unit/objstore_s3, run straight
# to s3rver, then through the proxy (signatures checked on the wire; 503,
# dropped connections, a PUT whose answer is lost, a stall), then through
# the proxy again built with the sanitizers.

use strict;
use warnings;
use Test::More;
use HTTP::Tiny;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep);
use lib 't/lib';
use AvroTest::Nginx;
use AvroTest::S3;

my $ROOT = $AvroTest::Nginx::ROOT;
my $unit = "$ROOT/build/unit/objstore_s3";
-x $unit or BAIL_OUT("$unit is not built: run make unit");

my $t = AvroTest::Nginx->new;
my $s3 = AvroTest::S3->new($t);
my ($port, $cred) = ($s3->port, $s3->credentials);

# the verifying proxy, on a port of its own
my $proxy_port = do {
    my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
        Listen => 1, ReuseAddr => 1) or die "port: $!";
    my $p = $s->sockport;
    close $s;
    $p;
};
my $mode = $t->path('var/sigv4-fault');
my $proxy_pid = fork // die "fork: $!";
if (!$proxy_pid) {
    open STDOUT, '>>', $t->path('logs/sigv4-proxy.log');
    open STDERR, '>&', \*STDOUT;
    exec $^X, "$AvroTest::Nginx::LIB/faultproxy.pl", $proxy_port, $port, $mode,
        'S3RVER:S3RVER'
        or POSIX::_exit(127);
}
END { kill 'TERM', $proxy_pid if $proxy_pid; }

my $proxy_runs = 0;
my $up;
for (1 .. 100) {
    last if $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $proxy_port);
    sleep 0.1;
}
ok $up, 'the proxy listens' or BAIL_OUT('no proxy');
my $proxy = "http://127.0.0.1:$proxy_port";

sub run_unit {
    my ($name, %env) = @_;
    my $bin = delete $env{bin} // $unit;
    local @ENV{ keys %env } = values %env;
    my $r = AvroTest::Nginx::run_cmd($bin);
    $proxy_runs++ if $env{AVS_S3_PROXY};
    (my $shown = $bin) =~ s{^\Q$ROOT\E/}{};
    is $r->{exit}, 0, "$name: $shown passes"
        or diag $r->{out}, $r->{err};
    unlike $r->{out}, qr/^not ok/m, "$name: no failed check";
    my ($plan) = $r->{out} =~ /^1\.\.(\d+)$/m;
    ok $plan && $plan > 20, "$name: ran its plan (" . ($plan // 'none') . ' checks)';
    note $r->{out};
    return $r;
}

subtest 'straight to s3rver' => sub {
    run_unit('direct', AVS_S3_ENDPOINT => "http://127.0.0.1:$port",
        AVS_S3_CREDENTIALS => $cred);
};

subtest 'through the proxy: signatures checked, faults' => sub {
    run_unit('proxy', AVS_S3_ENDPOINT => "http://127.0.0.1:$port",
        AVS_S3_CREDENTIALS => $cred, AVS_S3_PROXY => $proxy,
        AVS_S3_PROXY_SIGV4 => 1);
};

# the same through the proxy with AddressSanitizer and UBSan (make
# unit-san): the answers the faults cut short must not be read past their
# end, nor leak
subtest 'through the proxy, sanitized' => sub {
    my $san = "$ROOT/build/san/unit/objstore_s3";
    plan skip_all => "$san is not built (make unit-san)" unless -x $san;
    run_unit('sanitized', bin => $san,
        AVS_S3_ENDPOINT => "http://127.0.0.1:$port",
        AVS_S3_CREDENTIALS => $cred, AVS_S3_PROXY => $proxy,
        AVS_S3_PROXY_SIGV4 => 1);
};

subtest 'the proxy refuses what is not signed right' => sub {
    my $http = HTTP::Tiny->new(timeout => 5);
    is $http->get("$proxy/__fault/pass")->{status}, 200, 'mode pass';
    my $date = POSIX::strftime('%Y%m%dT%H%M%SZ', gmtime);
    my $r = $http->get("$proxy/bucket/x", { headers => {
        'x-amz-date' => $date,
        'x-amz-content-sha256' => 'UNSIGNED-PAYLOAD',
        authorization => 'AWS4-HMAC-SHA256 Credential=S3RVER/'
            . substr($date, 0, 8) . '/us-east-1/s3/aws4_request, '
            . 'SignedHeaders=host;x-amz-date, Signature=' . ('0' x 64) } });
    is $r->{status}, 403, 'a wrong signature: 403';
    like $r->{content}, qr{<Code>SignatureDoesNotMatch</Code>}, 'SignatureDoesNotMatch';
    $r = $http->get("$proxy/bucket/x");
    is $r->{status}, 403, 'no signature: 403';
    my $log = do { local (@ARGV, $/) = $t->path('logs/sigv4-proxy.log'); <> } // '';
    like $log, qr/checking SigV4 for S3RVER/, 'the proxy did check signatures';
    my @refused = $log =~ /refused: (\w+)/g;
    is_deeply [sort @refused],
        [sort 'AccessDenied', 'SignatureDoesNotMatch',
            ('InvalidAccessKeyId', ('SignatureDoesNotMatch') x 2) x $proxy_runs],
        "only the requests meant to fail were refused (in each of $proxy_runs "
        . 'runs an unknown key, a wrong secret and a changed Range, then '
        . 'these two)';
};

done_testing;
