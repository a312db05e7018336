#!/usr/bin/perl
# A small HTTP proxy that puts faults between the module and an S3 server.
# The first line of MODE_FILE says what to do with each request:
#   pass            forward it and relay the answer
#   503             answer 503 SlowDown without forwarding
#   drop            close the connection without an answer
#   drop_after_put  forward a PUT (the object is stored), then close the
#                   connection without the answer; other methods pass
#
#   faultproxy.pl LISTEN_PORT UPSTREAM_PORT MODE_FILE
# One process per connection; requests with Content-Length bodies only.

use strict;
use warnings;
use IO::Socket::INET;
use POSIX ();

my ($listen, $upstream, $mode_file) = @ARGV;
my $server = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $listen,
    Listen => 64, ReuseAddr => 1) or die "listen $listen: $!\n";
$SIG{CHLD} = 'IGNORE';

sub mode {
    open my $fh, '<', $mode_file or return 'pass';
    my $m = <$fh> // 'pass';
    $m =~ s/\s+//g;
    return $m;
}

# reads one request or response: head and a Content-Length body
sub read_message {
    my ($s, $no_body) = @_;
    my $buf = '';
    while ($buf !~ /\r\n\r\n/) {
        my $n = sysread $s, $buf, 65536, length $buf;
        return undef unless $n;
    }
    my ($head, $body) = split /\r\n\r\n/, $buf, 2;
    my $len = $head =~ /^content-length:\s*(\d+)/mi ? $1 : 0;
    $len = 0 if $no_body;
    while (length $body < $len) {
        my $n = sysread $s, $body, $len - length $body, length $body;
        last unless $n;
    }
    return ($head, $body);
}

while (my $c = $server->accept) {
    my $pid = fork;
    if (!defined $pid || $pid) { close $c; next; }
    close $server;
    while (my ($head, $body) = read_message($c)) {
        my $mode = mode();
        my ($method) = $head =~ /^(\S+)/;
        if ($mode eq '503') {
            my $b = '<Error><Code>SlowDown</Code></Error>';
            print $c "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
                . length($b) . "\r\nConnection: close\r\n\r\n$b";
            last;
        }
        last if $mode eq 'drop';
        my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $upstream)
            or last;
        $head =~ s/^connection:.*\r?\n?//mi;
        $head =~ s/\r?\n\z//;
        print $u "$head\r\nConnection: close\r\n\r\n$body";
        my ($rh, $rb) = read_message($u, $method eq 'HEAD');
        close $u;
        last unless defined $rh;
        last if $mode eq 'drop_after_put' && $method eq 'PUT';
        $rh =~ s/^connection:.*\r?\n?//mi;
        $rh =~ s/\r?\n\z//;
        print $c "$rh\r\nConnection: close\r\n\r\n$rb";
        last;
    }
    close $c;
    POSIX::_exit(0);
}
