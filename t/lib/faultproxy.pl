#!/usr/bin/perl
# A small HTTP proxy that puts faults between the module and an S3 server.
#
#   faultproxy.pl LISTEN_PORT UPSTREAM_PORT MODE_FILE [ACCESS_KEY:SECRET]
#
# The first line of MODE_FILE says what to do with each request (a missing
# or empty file is "pass"):
#   pass            forward it and relay the answer
#   503             answer 503 SlowDown without forwarding
#   drop            close the connection without an answer
#   drop_after_put  forward a PUT (the object is stored), then close the
#                   connection without the answer; other methods pass
#   delay N         wait N milliseconds, then pass
#   put_fail WORD   answer 500 InternalError, without forwarding, to a PUT
#                   whose path has the segment WORD (one table's objects,
#                   say); other requests pass
#   put_taken WORD  once, to a conditional PUT ("If-None-Match: *") whose
#                   path has the segment WORD: store other bytes under its
#                   key first, as another writer would, then answer 412
#                   PreconditionFailed as S3 does (s3rver ignores the
#                   header); the mode is "pass" afterwards
#   put_taken_lost WORD  the same, but the 412 is lost: the connection is
#                   closed without an answer
#   put_no_etag     forward a PUT, relay its answer without the ETag
#   put_corrupt     forward a PUT with one byte of its body changed (after
#                   the signature check: an unsigned payload still passes
#                   it), as a transfer corrupted on the way would be
#   put_corrupt_early  the same before the signature check: a signed
#                   payload's hash no longer matches, as a store that
#                   checks it would find
# and for GET only (other methods pass):
#   get_404         answer 404 NoSuchKey without forwarding
#   get_whole       forward without the Range header: the whole object, 200
#   get_short       relay the head, then half the body, then close
#   get_badrange    relay the answer with its Content-Range moved one byte
# "GET /__fault/<mode>" (or /__fault/<mode>/<arg>) sets the mode over HTTP
# (it rewrites MODE_FILE), "GET /__fault" tells the current one.
#
# With ACCESS_KEY:SECRET, every other request must carry a valid AWS
# Signature Version 4 (Authorization header, S3 rules: path encoded once,
# never normalised; x-amz-content-sha256 must match the body unless it is
# UNSIGNED-PAYLOAD); a bad one is answered 403 SignatureDoesNotMatch as
# S3 would, without forwarding.  The S3 server of the tests (s3rver) does
# not check V4 signatures itself: this checks what goes over the wire, with
# an implementation independent of the module's.
#
# One process per connection and one request per connection (the answer
# says "Connection: close"); request bodies need a Content-Length; an
# "Expect: 100-continue" is answered.  Perl core modules only.

use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes ();
use Digest::SHA qw(sha256_hex hmac_sha256 hmac_sha256_hex);

my ($listen, $upstream, $mode_file, $sigv4) = @ARGV;
die "usage: $0 LISTEN_PORT UPSTREAM_PORT MODE_FILE [KEY:SECRET]\n"
    unless defined $mode_file;
my ($ACCESS, $SECRET) = defined $sigv4 ? split(/:/, $sigv4, 2) : ();

my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $listen,
    Listen => 64, ReuseAddr => 1) or die "listen $listen: $!\n";
$SIG{CHLD} = 'IGNORE';
$| = 1;
print "faultproxy: 127.0.0.1:", $server->sockport, " -> 127.0.0.1:$upstream",
    ($ACCESS ? ", checking SigV4 for $ACCESS" : ''), "\n";

sub mode {
    open my $fh, '<', $mode_file or return ('pass');
    my $line = <$fh> // '';
    my ($m, $arg) = split ' ', $line;
    return ($m // 'pass', $arg);
}

sub set_mode {
    my ($mode) = @_;
    my $tmp = "$mode_file.$$";
    open my $fh, '>', $tmp or return;
    print $fh "$mode\n";
    close $fh;
    rename $tmp, $mode_file;
}

# Reads up to the end of the head; returns (head, what came after it).
sub read_head {
    my ($s) = @_;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread $s, $buf, 65536, length $buf;
        return unless $n;
        return if length $buf > 1 << 20;
    }
    return split /\r\n\r\n/, $buf, 2;
}

# Changes one byte in the middle of a request body.
sub corrupt {
    my ($body) = @_;
    return unless length $$body;
    my $i = int(length($$body) / 2);
    substr($$body, $i, 1) = chr(ord(substr($$body, $i, 1)) ^ 0x01);
}

sub read_body {
    my ($s, $body, $len) = @_;
    while (length $body < $len) {
        my $n = sysread $s, $body, $len - length $body, length $body;
        last unless $n;
    }
    return $body;
}

sub answer {
    my ($c, $status, $code, $message) = @_;
    my $b = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        . "<Error><Code>$code</Code><Message>$message</Message></Error>";
    print $c "HTTP/1.1 $status\r\nContent-Type: application/xml\r\n"
        . "Content-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b";
}

sub uri_decode {
    my ($s) = @_;
    $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge;
    return $s;
}

sub uri_encode {
    my ($s, $keep_slash) = @_;
    my $keep = $keep_slash ? 'A-Za-z0-9\-._~/' : 'A-Za-z0-9\-._~';
    $s =~ s/([^$keep])/sprintf '%%%02X', ord $1/ge;
    return $s;
}

# The SigV4 check: () when the signature is right, else (status, code, text).
sub check_sigv4 {
    my ($method, $target, $headers, $body) = @_;
    my %h;
    for my $hv (@$headers) {
        my ($n, $v) = @$hv;
        $v =~ s/^\s+|\s+$//g;
        $v =~ s/\s+/ /g;
        push @{ $h{lc $n} }, $v;
    }
    my $auth = $h{authorization} ? $h{authorization}[0] : undef;
    return ('403 Forbidden', 'AccessDenied', 'no Authorization header')
        unless defined $auth;
    my ($key, $date, $region, $service, $signed, $sig) = $auth =~ m{^AWS4-HMAC-SHA256
        \s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,
        \s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$}x
        or return ('400 Bad Request', 'AuthorizationHeaderMalformed', 'bad Authorization');
    return ('403 Forbidden', 'InvalidAccessKeyId', 'unknown access key')
        unless $key eq $ACCESS;
    my $amz_date = $h{'x-amz-date'} ? $h{'x-amz-date'}[0] : '';
    return ('403 Forbidden', 'AccessDenied', 'x-amz-date does not match the scope')
        unless substr($amz_date, 0, 8) eq $date;
    my $payload = $h{'x-amz-content-sha256'} ? $h{'x-amz-content-sha256'}[0] : '';
    return ('400 Bad Request', 'InvalidRequest', 'no x-amz-content-sha256')
        unless length $payload;
    return ('400 Bad Request', 'XAmzContentSHA256Mismatch', 'body hash differs')
        if $payload ne 'UNSIGNED-PAYLOAD' && $payload ne sha256_hex($body);

    my @names = split /;/, $signed;
    return ('403 Forbidden', 'AccessDenied', 'host is not signed')
        unless grep { $_ eq 'host' } @names;
    my @lines;
    for my $n (@names) {
        return ('403 Forbidden', 'AccessDenied', "signed header $n is missing")
            unless $h{$n};
        push @lines, "$n:" . join(',', @{ $h{$n} });
    }

    my ($path, $query) = split /\?/, $target, 2;
    my @pairs = map { my ($k, $v) = split /=/, $_, 2;
                      [uri_encode(uri_decode($k), 0), uri_encode(uri_decode($v // ''), 0)] }
                grep { length } split /&/, $query // '';
    my $cquery = join '&', map { "$_->[0]=$_->[1]" }
        sort { $a->[0] cmp $b->[0] || $a->[1] cmp $b->[1] } @pairs;

    my $creq = join "\n", $method, uri_encode(uri_decode($path), 1), $cquery,
        @lines, '', $signed, $payload;
    my $sts = join "\n", 'AWS4-HMAC-SHA256', $amz_date,
        "$date/$region/$service/aws4_request", sha256_hex($creq);
    my $k = hmac_sha256($date, "AWS4$SECRET");
    $k = hmac_sha256($region, $k);
    $k = hmac_sha256($service, $k);
    $k = hmac_sha256('aws4_request', $k);
    return ('403 Forbidden', 'SignatureDoesNotMatch', 'signature differs')
        unless hmac_sha256_hex($sts, $k) eq $sig;
    return;
}

sub serve {
    my ($c) = @_;
    my ($head, $rest) = read_head($c);
    return unless defined $head;
    my ($request, @lines) = split /\r\n/, $head;
    my ($method, $target) = split ' ', $request;
    return unless defined $target;
    my @headers = map { [/^([^:]+):\s*(.*)$/] } grep { /:/ } @lines;
    my %first;
    $first{ lc $_->[0] } //= $_->[1] for @headers;

    if ($target =~ m{^/__fault(?:/([a-z_0-9]+)(?:/([a-z_0-9]+))?)?/?$}) {
        set_mode(defined $2 ? "$1 $2" : $1) if defined $1;
        my $b = join(' ', grep { defined } mode()) . "\n";
        print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b)
            . "\r\nConnection: close\r\n\r\n$b";
        return;
    }

    my ($mode, $arg) = mode();
    my $payload = $method ne 'PUT' ? ''
        : ($first{'x-amz-content-sha256'} // '') eq 'UNSIGNED-PAYLOAD'
        ? ' (unsigned payload)' : ' (signed payload)';
    print "$method $target: $mode$payload\n";

    if ($first{'transfer-encoding'}) {
        answer($c, '501 Not Implemented', 'NotImplemented', 'chunked bodies');
        return;
    }
    my $len = $first{'content-length'} // 0;

    my $expect = ($first{expect} // '') =~ /100-continue/i && length($rest) < $len;
    my $slow = 'Please reduce your request rate.';

    # a client that waits for "100 Continue" hears the refusal at once;
    # otherwise the body is read first, so that the client reads the answer
    if ($mode eq '503' && $expect) {
        answer($c, '503 Service Unavailable', 'SlowDown', $slow);
        return;
    }
    print $c "HTTP/1.1 100 Continue\r\n\r\n" if $expect && $mode ne 'drop';
    my $body = read_body($c, $rest, $len);

    if ($mode eq '503') {
        answer($c, '503 Service Unavailable', 'SlowDown', $slow);
        return;
    }
    if ($mode eq 'put_fail' && $method eq 'PUT' && defined $arg
        && $target =~ m{/\Q$arg\E/})
    {
        answer($c, '500 Internal Server Error', 'InternalError',
            'We encountered an internal error. Please try again.');
        return;
    }
    return if $mode eq 'drop';

    corrupt(\$body) if $mode eq 'put_corrupt_early' && $method eq 'PUT';

    if ($ACCESS) {
        my @bad = check_sigv4($method, $target, \@headers, $body);
        if (@bad) {
            print "$method $target: refused: $bad[1] ($bad[2])\n";
            answer($c, @bad);
            return;
        }
    }

    Time::HiRes::sleep($arg / 1000) if $mode eq 'delay' && $arg;

    if ($mode =~ /^put_taken(_lost)?$/ && $method eq 'PUT' && defined $arg
        && $target =~ m{/\Q$arg\E/} && ($first{'if-none-match'} // '') eq '*')
    {
        my $other = "stored by another writer\n";
        my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $upstream) or return;
        print $u join("\r\n", $request,
            grep { !/^(connection|expect|keep-alive|content-length|if-none-match|x-amz-meta-[^:]*):/i }
            @lines), "\r\nx-amz-meta-avro-writer: another-writer",
            "\r\nContent-Length: ", length($other),
            "\r\nConnection: close\r\n\r\n$other";
        my $ignored = '';
        1 while sysread $u, $ignored, 65536, length $ignored;
        close $u;
        my $lost = $mode eq 'put_taken_lost';
        set_mode('pass');
        print "$method $target: taken", ($lost ? ', answer lost' : ''), "\n";
        return if $lost;
        answer($c, '412 Precondition Failed', 'PreconditionFailed',
            'At least one of the pre-conditions you specified did not hold');
        return;
    }

    corrupt(\$body) if $mode eq 'put_corrupt' && $method eq 'PUT';

    my $get = $method eq 'GET' ? $mode : '';
    if ($get eq 'get_404') {
        answer($c, '404 Not Found', 'NoSuchKey', 'The specified key does not exist.');
        return;
    }
    @lines = grep { !/^range:/i } @lines if $get eq 'get_whole';

    my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $upstream)
        or return;
    my $fwd = join "\r\n", $request,
        grep { !/^(connection|expect|keep-alive):/i } @lines;
    print $u "$fwd\r\nConnection: close\r\n\r\n$body";

    # the store closes after its answer: read to the end
    my $answer = '';
    1 while sysread $u, $answer, 65536, length $answer;
    close $u;
    return if $answer eq '';
    return if $mode eq 'drop_after_put' && $method eq 'PUT';

    my ($rh, $rb) = split /\r\n\r\n/, $answer, 2;
    $rh = join "\r\n", grep { !/^(connection|keep-alive):/i } split /\r\n/, $rh;
    $rh = join "\r\n", grep { !/^etag:/i } split /\r\n/, $rh
        if $mode eq 'put_no_etag' && $method eq 'PUT';
    $rb = substr $rb // '', 0, int(length($rb // '') / 2) if $get eq 'get_short';
    $rh =~ s{^(content-range:\s*bytes\s+)(\d+)-(\d+)}{$1 . ($2 + 1) . '-' . ($3 + 1)}mie
        if $get eq 'get_badrange';
    print $c "$rh\r\nConnection: close\r\n\r\n", $rb // '';
}

while (1) {
    my $c = $server->accept or next;
    my $pid = fork;
    if (!defined $pid || $pid) { close $c; next; }
    close $server;
    serve($c);
    close $c;
    POSIX::_exit(0);
}
