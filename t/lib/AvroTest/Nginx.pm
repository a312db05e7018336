package AvroTest::Nginx;

# Test harness for the integration tests in t/*.t: starts a real nginx in a
# private temporary prefix, talks HTTP to it, reads its logs and SQLite files,
# and drives the Avro generators in t/lib/.  Perl core modules only.
#
#   use Test::More;
#   use lib 't/lib';
#   use AvroTest::Nginx;
#
#   my $t = AvroTest::Nginx->new();            # or (no_module => 1) for plain nginx
#   $t->write_conf(<<'EOF');
#   events {}
#   http {
#       server {
#           listen 127.0.0.1:%%PORT%%;
#           location /upload { avro_upload; }
#       }
#   }
#   EOF
#   $t->run;
#   my $r = $t->post('/upload', 'application/avro', $bytes);
#   is $r->{status}, 201;  is $r->{json}{records}, 20;
#   is_deeply [$t->check_log_clean], [], 'no alerts';
#   $t->stop;                                   # also done automatically
#   done_testing;
#
# Run from the repository root: prove -j2 t/ (tests run in parallel; every
# instance has its own prefix and ports).
#
# new(%opts)
#   no_module => 1     do not load build/nginx/ngx_http_avro_module.so
#   log_level => LVL   error_log level (default "debug"; nginx is --with-debug)
#   preamble  => 0     do not prepend the main-context lines (see write_conf)
#   user      => STR   "user" directive when running as root (default
#                      "nobody nogroup", as in production the workers are not
#                      root; var/ is chowned to it).  "" = no user directive.
#   sqlite_file => P   default database for sqlite() (relative = to prefix)
#   Makes t/tmp/<test>-XXXXXX/ with logs/, var/ and tmp/.  It is removed when
#   the test passes, kept (and its path printed) when it fails or when
#   $ENV{AVRO_TEST_KEEP} is set.  $ENV{AVRO_TEST_NGINX} / AVRO_TEST_MODULE
#   override /usr/sbin/nginx and the module path.
#
# write_conf($template)   renders and writes PREFIX/nginx.conf.  The template is
#   a whole nginx.conf minus the main-context lines below: it provides
#   "events {}" and "http { ... }" (and may set worker_processes, thread_pool,
#   env, ...).  Substitutions:
#     %%PORT%%, %%PORT2%%, %%PORT3%%...  free TCP ports on 127.0.0.1
#     %%PREFIX%%    the temporary prefix (no trailing slash)
#     %%MODULE%%    absolute path of build/nginx/ngx_http_avro_module.so
#     %%TESTDATA%%  absolute path of ../shared/testdata
#     %%LIB%%       absolute path of t/lib
#   Prepended (unless preamble => 0):
#     load_module %%MODULE%%;          (unless no_module)
#     user nobody nogroup;             (only as root, see "user")
#     daemon on; master_process on; pid %%PREFIX%%/nginx.pid;
#     error_log %%PREFIX%%/logs/error.log debug;
#   Injected right after the first "http {" line: client_body_temp_path,
#   proxy_temp_path, fastcgi_temp_path, uwsgi_temp_path, scgi_temp_path (all
#   under PREFIX/tmp/) and access_log PREFIX/logs/access.log, so the template
#   must not set those temp paths itself.  Calling write_conf again (then
#   reload) keeps the ports already allocated.
#
# archive_conf(cold => ..., archive => ..., %more)   write_conf of the usual
#   archive test: one server with /upload and /archive (see the sub); more
#   lines with locations => [...] (in the server), http => [...] (in http).
#
# run()       starts nginx -p PREFIX/ -c PREFIX/nginx.conf -e PREFIX/logs/error.log,
#             waits (10 s) for the first port to accept and every worker of
#             worker_processes to exist;
#             dies with the error log if it fails.  A port taken meanwhile by
#             someone else is detected and the ports are re-picked (3 tries).
# stop()      QUIT, wait 10 s; then TERM, 5 s; then KILL.  Also run at END.
# reload()    HUP; waits until new workers are up and the old ones have
#             exited (wait_old => 0: only for the new ones); dies if nginx
#             logs [emerg] (bad new config).
# master_pid(), worker_pids()     pids (workers read from /proc).
# nginx_t()   runs "nginx -t" on the current conf: {exit, out, err}.
#
# error_log()                  the whole error log text
# error_log_matches(qr/../)    matching lines (count in scalar context)
# check_log_clean(ignore => qr/../)   lines with [alert], [emerg], [crit] or
#                              "worker process N exited on signal"; empty = clean
#
# request($method, $uri, headers => {...}, body => $bytes, port => N, timeout => S)
#     -> {status, reason, headers (lower-cased names), content, json}
#     HTTP::Tiny, no keep-alive, no proxy; json is the decoded body when the
#     Content-Type says json (else undef).  status 599 = connection error.
# get($uri, %o), get_json($uri, %o)  GET (the same response hash)
# post($uri, $content_type, $body, %o)
# raw($bytes, timeout => S, port => N)   writes raw bytes on a new connection,
#     returns everything read until the server closes it
#
# sqlite($sql, file => P, write => 1)  runs sqlite3 -json on the file (default:
#     new(sqlite_file)); read-only unless write => 1; returns an arrayref of
#     row hashes (rows of all statements, in order)
# hot_rows()  the number of rows in buffer_logs of the default database
#
# prefix(), path($rel), port($n = 1), url($path, $n = 1), mkdir($rel) (owned
# by the worker user)
#
# mount_tmpfs($rel, $size)  a tmpfs of $size (mount's size=, "4m") at
#     PREFIX/$rel, writable by the workers; false when it cannot be mounted
#     (not root, no CAP_SYS_ADMIN).  Unmounted when the instance goes away.
# fill_disk($rel, $room)  fills the filesystem of PREFIX/$rel but for $room
#     bytes with a ballast file, and returns its path (unlink it to free)
#
# slurp($file)  exported: a file's bytes, undef when it cannot be opened
#
# Generators (die on failure; files go to PREFIX/var/ unless out => ...):
#   avro_gen(table => T, records => N, codec => C, seed => S, ...)   python3-avro
#   avsc_gen(table => T, ...)                                        avsc
#       any other key becomes --key value (underscores -> dashes); schemas
#       defaults to the v0.5.1 bundle.  Both return the file path.
#   avro_dump($file, @flags), avsc_dump($file, @flags), avrocat($file)
#       records, decoded from the JSON lines: arrayref
#   hostile()   writes the hostile cases (t/lib/hostile.py) once per instance;
#       returns the manifest with "path" (absolute file) added to each case
#
# Functions: module_built() (for plan skip_all);
#   run_cmd(@argv, {stdin => FILE}) -> {exit, out, err};
#   alive($pid) (a zombie counts as gone).  Variables: $ROOT, $LIB, $PYTHON,
#   $BUNDLE (schema_v0_5_1.json), $TESTDATA, $MODULE, $NGINX.

use strict;
use warnings;

use Cwd qw(abs_path);
use File::Basename qw(basename dirname);
use File::Path qw(make_path remove_tree);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Scalar::Util qw(weaken refaddr);
use Time::HiRes qw(sleep time);

use Exporter qw(import);
our @EXPORT = qw(slurp);

our $LIB      = abs_path(dirname(__FILE__) . '/..');
our $ROOT     = abs_path("$LIB/../..");
our $NGINX    = $ENV{AVRO_TEST_NGINX} // '/usr/sbin/nginx';
our $MODULE   = $ENV{AVRO_TEST_MODULE} // "$ROOT/build/nginx/ngx_http_avro_module.so";
our $TESTDATA = abs_path("$ROOT/../shared/testdata") // "$ROOT/../shared/testdata";
our $PYTHON   = '/usr/bin/python3';     # the interpreter that has python3-avro
our $BUNDLE   = "$TESTDATA/fusou/schema_v0_5_1.json";

my $JSON = JSON::PP->new->utf8->allow_nonref->canonical;
my %LIVE;    # refaddr -> weakened instance, for END

sub new {
    my ($class, %opts) = @_;
    my $self = bless {
        log_level => 'debug',
        preamble  => 1,
        user      => ($> == 0 ? 'nobody nogroup' : ''),
        %opts,
        ports     => {},
        owner_pid => $$,
        seq       => 0,
    }, $class;

    make_path("$ROOT/t/tmp");
    (my $name = basename($0)) =~ s/\.t$//;
    $name =~ s/[^\w.-]/_/g;
    $self->{prefix} = tempdir("$name-XXXXXX", DIR => "$ROOT/t/tmp", CLEANUP => 0);
    chmod 0755, $self->{prefix};
    make_path(map { "$self->{prefix}/$_" } qw(logs var tmp));
    $self->_chown_worker("$self->{prefix}/var");

    $LIVE{refaddr $self} = $self;
    weaken $LIVE{refaddr $self};
    return $self;
}

sub prefix { $_[0]{prefix} }
sub path   { "$_[0]{prefix}/$_[1]" }

sub port {
    my ($self, $n) = @_;
    my $p = $self->{ports}{$n // 1};
    die "port ", ($n // 1), " not allocated (use %%PORT", ($n && $n > 1 ? $n : ''), "%% in the conf)\n"
        unless $p;
    return $p;
}

sub url {
    my ($self, $path, $n) = @_;
    $path //= '/';
    return "http://127.0.0.1:" . $self->port($n) . $path;
}

sub _worker_ids {
    my ($self) = @_;
    return unless $self->{user};
    my ($u, $g) = split ' ', $self->{user};
    my $uid = getpwnam($u);
    my $gid = getgrnam($g // $u) // (getpwnam($u))[3];
    return defined $uid ? ($uid, $gid) : ();
}

sub _chown_worker {
    my ($self, @paths) = @_;
    my ($uid, $gid) = $self->_worker_ids or return;
    chown $uid, $gid, @paths;
}

sub mkdir {
    my ($self, $rel) = @_;
    my $dir = $self->path($rel);
    make_path($dir);
    $self->_chown_worker($dir);
    return $dir;
}

sub hot_rows {
    my ($self) = @_;
    return $self->sqlite('SELECT count(*) AS n FROM buffer_logs')->[0]{n};
}

sub mount_tmpfs {
    my ($self, $rel, $size) = @_;
    my $dir = $self->mkdir($rel);
    my $r = run_cmd('mount', '-t', 'tmpfs', '-o', "size=$size,mode=0777",
        'tmpfs', $dir);
    return 0 if $r->{exit} != 0;
    push @{ $self->{mounts} }, $dir;
    return 1;
}

sub fill_disk {
    my ($self, $rel, $room) = @_;
    my $df = run_cmd('df', '-B1', '--output=avail', $self->path($rel));
    my ($avail) = $df->{out} =~ /(\d+)\s*$/ or die "df: $df->{err}\n";
    my $path = $self->path("$rel/ballast");
    open my $fh, '>:raw', $path or die "$path: $!\n";
    my $left = $avail > $room ? $avail - $room : 0;
    while ($left > 0) {
        my $n = $left < 1 << 20 ? $left : 1 << 20;
        print $fh "\0" x $n or die "$path: $!\n";
        $left -= $n;
    }
    close $fh or die "$path: $!\n";
    return $path;
}

# --- configuration ----------------------------------------------------------

sub _free_ports {
    my ($n) = @_;
    my @socks = map {
        IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp', Listen => 1)
            or die "cannot bind a free port: $!\n"
    } 1 .. $n;
    my @ports = map { $_->sockport } @socks;
    close $_ for @socks;
    return @ports;
}

sub module_built { -f $MODULE }

# The nginx.conf of an archive test: one server with the upload and
# archive-now locations.  cold and archive are the arguments of
# avro_cold_store and avro_archive; workers (1), env (names to pass),
# hot (more avro_hot_store arguments), body_size (client_max_body_size)
# and locations (more lines in the server) are optional.
sub archive_conf {
    my ($self, %o) = @_;
    my $env = join '', map { "env $_;\n" } @{ $o{env} // [] };
    my $workers = $o{workers} // 1;
    my $hot = join ' ', '%%PREFIX%%/var/hot/hot.db', $o{hot} // ();
    my $body = $o{body_size} ? "        client_max_body_size $o{body_size};\n" : '';
    my $more = join '', map { "        $_\n" } @{ $o{locations} // [] };
    my $http = join '', map { "    $_\n" } @{ $o{http} // [] };
    return $self->write_conf(<<"CONF");
${env}worker_processes $workers;
events {}
http {
    avro_hot_store  $hot;
    avro_cold_store $o{cold};
    avro_archive    $o{archive};
$http
    server {
        listen 127.0.0.1:%%PORT%%;
$body        location = /upload  { avro_upload; }
        location = /archive { avro_archive_now; }
$more    }
}
CONF
}

sub write_conf {
    my ($self, $template) = @_;
    die "$MODULE not found: build it first (make module), or use no_module => 1\n"
        unless $self->{no_module} || module_built();
    $self->{template} = $template;
    return $self->_render;
}

sub _render {
    my ($self) = @_;
    my $p    = $self->{prefix};
    my $conf = '';
    if ($self->{preamble}) {
        $conf .= "# generated by t/lib/AvroTest/Nginx.pm\n";
        $conf .= "load_module %%MODULE%%;\n" unless $self->{no_module};
        $conf .= "user $self->{user};\n" if $self->{user} && $> == 0;
        $conf .= "daemon on;\nmaster_process on;\npid %%PREFIX%%/nginx.pid;\n";
        $conf .= "error_log %%PREFIX%%/logs/error.log $self->{log_level};\n\n";
    }
    $conf .= $self->{template};

    my $inject = join '', map { "    $_;\n" }
        (map { "${_}_temp_path %%PREFIX%%/tmp/$_" } qw(client_body proxy fastcgi uwsgi scgi)),
        'access_log %%PREFIX%%/logs/access.log';
    $conf =~ s/^(\s*http\s*\{)/$1\n    # injected by the harness\n$inject/m;

    my %want = map { ($_ eq '' ? 1 : $_) => 1 } $conf =~ /%%PORT(\d*)%%/g;
    my @missing = sort { $a <=> $b } grep { !$self->{ports}{$_} } keys %want;
    @{ $self->{ports} }{@missing} = _free_ports(scalar @missing) if @missing;

    my %sub = (PREFIX => $p, MODULE => $MODULE, TESTDATA => $TESTDATA, LIB => $LIB);
    $conf =~ s/%%PORT(\d*)%%/$self->{ports}{$1 eq '' ? 1 : $1}/g;
    $conf =~ s/%%(PREFIX|MODULE|TESTDATA|LIB)%%/$sub{$1}/g;

    open my $fh, '>', "$p/nginx.conf" or die "$p/nginx.conf: $!\n";
    print $fh $conf;
    close $fh;
    $self->{conf} = $conf;
    return $conf;
}

# --- processes --------------------------------------------------------------

sub run_cmd {
    my @argv = @_;
    my %o = ref $argv[-1] eq 'HASH' ? %{ pop @argv } : ();
    my $out = File::Temp->new;
    my $err = File::Temp->new;
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        open STDIN,  '<',  ($o{stdin} // '/dev/null') or POSIX::_exit(126);
        open STDOUT, '>&', $out or POSIX::_exit(126);
        open STDERR, '>&', $err or POSIX::_exit(126);
        exec { $argv[0] } @argv or print STDERR "exec $argv[0]: $!\n";
        POSIX::_exit(127);    # never run the parent's END blocks here
    }
    waitpid $pid, 0;
    my $status = $?;
    my $slurp = sub { local $/; open my $fh, '<', $_[0]->filename or return ''; my $s = <$fh>; $s // '' };
    return {
        exit   => ($status & 127 ? 128 + ($status & 127) : $status >> 8),
        out    => $slurp->($out),
        err    => $slurp->($err),
    };
}

# A file's bytes, raw; undef when it cannot be opened.  Exported.
sub slurp {
    my ($f) = @_;
    open my $fh, '<:raw', $f or return undef;
    local $/;
    return scalar <$fh>;
}

sub _slurp {
    my ($file, $offset) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    seek $fh, $offset, 0 if $offset;
    local $/;
    my $s = <$fh>;
    return $s // '';
}

sub alive {
    my ($pid) = @_;
    return 0 unless $pid && kill 0, $pid;
    my $stat = _slurp("/proc/$pid/stat");
    return $stat =~ /\)\s+Z\s/ ? 0 : 1;    # a zombie is gone for our purpose
}

sub _wait_gone {
    my ($pids, $timeout) = @_;
    my $end = time + $timeout;
    while (time < $end) {
        return 1 unless grep { alive($_) } @$pids;
        sleep 0.05;
    }
    return !grep { alive($_) } @$pids;
}

sub _log_file { "$_[0]{prefix}/logs/error.log" }

sub _nginx_argv {
    my ($self, @extra) = @_;
    my $p = $self->{prefix};
    return ($NGINX, '-p', "$p/", '-c', "$p/nginx.conf", '-e', "$p/logs/error.log", @extra);
}

sub nginx_t {
    my ($self) = @_;
    die "write_conf first\n" unless $self->{conf};
    return run_cmd($self->_nginx_argv('-t'));
}

sub run {
    my ($self) = @_;
    die "write_conf first\n" unless $self->{conf};
    die "already running\n" if $self->{master};
    my $p = $self->{prefix};
    for my $try (1 .. 3) {
        unlink "$p/nginx.pid";
        my $off = -s $self->_log_file // 0;
        my $r   = run_cmd($self->_nginx_argv);
        if ($r->{exit} != 0) {
            my $log = _slurp($self->_log_file, $off) . $r->{err};
            # lost a port race: pick new ports for the busy ones only (a port
            # the test already gave to another server keeps its number)
            my %busy = map { $_ => 1 } $log =~ /bind\(\) to \S+:(\d+) failed \(98:/g;
            my @lost = grep { $busy{ $self->{ports}{$_} } } keys %{ $self->{ports} };
            if ($try < 3 && @lost) {
                truncate $self->_log_file, $off;    # its [emerg] lines are not the test's
                delete @{ $self->{ports} }{@lost};
                $self->_render;
                next;
            }
            die "nginx failed to start (exit $r->{exit}):\n$r->{out}" . $self->log_excerpt($off) . "\n";
        }
        last;
    }

    my $end = time + 10;
    my $pid;
    while (time < $end) {
        ($pid) = _slurp("$p/nginx.pid") =~ /(\d+)/;
        last if $pid;
        sleep 0.02;
    }
    die "nginx wrote no pid file:\n" . $self->log_excerpt . "\n" unless $pid;
    $self->{master} = $pid;

    my $ready = 0;
    while (time < $end) {
        if (!alive($pid)) {
            delete $self->{master};
            die "nginx master $pid died during start:\n" . $self->log_excerpt . "\n";
        }
        my $port_ok = !%{ $self->{ports} } || IO::Socket::INET->new(
            PeerAddr => '127.0.0.1', PeerPort => $self->port(1), Proto => 'tcp', Timeout => 1);
        # every worker: a child shows the master's title until it is set up
        if ($port_ok && $self->worker_pids >= $self->_worker_count) {
            $ready = 1;
            last;
        }
        sleep 0.05;
    }
    die "nginx did not become ready in 10 s:\n" . $self->log_excerpt . "\n" unless $ready;
    return $self;
}

sub master_pid { $_[0]{master} }

# worker_processes of the conf (nginx's default is 1; "auto" is the cores)
sub _worker_count {
    my ($self) = @_;
    my ($n) = $self->{conf} =~ /^\s*worker_processes\s+(\w+)\s*;/m;
    return 1 if !defined $n;
    return $n if $n =~ /^\d+$/;
    my $cpus = () = _slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
    return $cpus || 1;
}

sub worker_pids {
    my ($self) = @_;
    my $master = $self->{master} or return;
    my @pids;
    opendir my $dh, '/proc' or return;
    for my $pid (grep { /^\d+$/ } readdir $dh) {
        my $stat = _slurp("/proc/$pid/stat");
        next unless $stat =~ /\)\s+(\S)\s+(\d+)/ && $2 == $master && $1 ne 'Z';
        push @pids, $pid if _slurp("/proc/$pid/cmdline") =~ /worker process/;
    }
    @pids = sort { $a <=> $b } @pids;
    return @pids;    # (sort in scalar context is undefined)
}

sub reload {
    my ($self, %o) = @_;
    my $master = $self->{master} or die "not running\n";
    my %old = map { $_ => 1 } $self->worker_pids;
    my $off = -s $self->_log_file // 0;
    kill 'HUP', $master or die "kill HUP $master: $!\n";
    my $end = time + ($o{timeout} // 10);
    while (time < $end) {
        my $log = _slurp($self->_log_file, $off);
        die "reload failed:\n" . join("\n", grep { /\[emerg\]/ } split /\n/, $log) . "\n"
            if $log =~ /\[emerg\]/;
        my @now = $self->worker_pids;
        my @new = grep { !$old{$_} } @now;
        my @left = grep { alive($_) } keys %old;
        return $self if @new >= $self->_worker_count
            && (!@left || !($o{wait_old} // 1));
        sleep 0.05;
    }
    die "reload: new workers not up / old workers not gone in time:\n"
        . $self->log_excerpt($off) . "\n";
}

sub stop {
    my ($self) = @_;
    my $master = delete $self->{master} or return $self;
    my @workers = grep { alive($_) } do { local $self->{master} = $master; $self->worker_pids };
    for my $sig (['QUIT', 10], ['TERM', 5], ['KILL', 5]) {
        last if !alive($master);
        kill $sig->[0], $master;
        last if _wait_gone([$master], $sig->[1]);
    }
    kill 'KILL', grep { alive($_) } @workers;    # orphans of a killed master
    return $self;
}

# --- logs -------------------------------------------------------------------

sub error_log { _slurp($_[0]->_log_file) }

sub log_excerpt {
    my ($self, $offset, $n) = @_;
    my @l = grep { m{^\d{4}/\d\d/\d\d [\d:]{8} \[(?!debug)} } split /\n/, _slurp($self->_log_file, $offset);
    $n //= 30;
    return join "\n", @l > $n ? @l[-$n .. -1] : @l;
}

sub error_log_matches {
    my ($self, $re) = @_;
    my @m = grep { $_ =~ $re } split /\n/, $self->error_log;
    return wantarray ? @m : scalar @m;
}

sub check_log_clean {
    my ($self, %o) = @_;
    return grep {
        (/\[(?:alert|emerg|crit)\]/ || /worker process \d+ exited on signal/)
            && !($o{ignore} && $_ =~ $o{ignore})
    } split /\n/, $self->error_log;
}

# --- HTTP -------------------------------------------------------------------

sub request {
    my ($self, $method, $uri, %o) = @_;
    my $http = HTTP::Tiny->new(
        keep_alive   => 0,
        timeout      => $o{timeout} // 30,
        max_redirect => 0,
        agent        => 'avro-test/1',
        proxy        => undef,
        http_proxy   => undef,
        https_proxy  => undef,
    );
    my $res = $http->request($method, $self->url($uri, $o{port}), {
        headers => $o{headers} // {},
        (defined $o{body} ? (content => $o{body}) : ()),
    });
    my %r = map { $_ => $res->{$_} } qw(status reason headers content);
    my $ct = $r{headers}{'content-type'} // '';
    $ct = join ',', @$ct if ref $ct;
    $r{json} = eval { $JSON->decode($r{content}) } if $ct =~ /json/i && length($r{content} // '');
    return \%r;
}

sub get      { my ($self, $uri, %o) = @_; $self->request('GET', $uri, %o) }
sub get_json { my ($self, $uri, %o) = @_; $self->request('GET', $uri, %o) }

sub post {
    my ($self, $uri, $type, $body, %o) = @_;
    return $self->request('POST', $uri, %o,
        headers => { 'Content-Type' => $type, %{ $o{headers} // {} } }, body => $body);
}

sub raw {
    my ($self, $bytes, %o) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->port($o{port}),
        Proto => 'tcp', Timeout => 5) or die "connect: $!\n";
    binmode $s;
    for (my $off = 0; $off < length $bytes;) {
        my $n = $s->syswrite($bytes, length($bytes) - $off, $off) // die "write: $!\n";
        $off += $n;
    }
    my ($buf, $end, $sel) = ('', time + ($o{timeout} // 10), IO::Select->new($s));
    while (time < $end) {
        next unless $sel->can_read(0.1);
        my $n = $s->sysread($buf, 65536, length $buf);
        last unless $n;
    }
    close $s;
    return $buf;
}

# --- SQLite -----------------------------------------------------------------

sub sqlite {
    my ($self, $sql, %o) = @_;
    my $file = $o{file} // $self->{sqlite_file} // die "sqlite: no file (new(sqlite_file => ...) or file => ...)\n";
    $file = $self->path($file) unless $file =~ m{^/};
    my $r = run_cmd('sqlite3', '-json', '-bail', '-cmd', '.timeout 5000',
        ($o{write} ? () : '-readonly'), $file, $sql);
    die "sqlite3 $file: exit $r->{exit}: $r->{err}\n" if $r->{exit} != 0;
    my (@rows, $json);
    $json = JSON::PP->new->utf8;
    $json->incr_parse($r->{out});
    while (my $arr = $json->incr_parse) { push @rows, @$arr }
    return \@rows;
}

# --- generators -------------------------------------------------------------

sub _args {
    my (%a) = @_;
    return map { ('--' . ($_ =~ tr/_/-/r), $a{$_}) } grep { defined $a{$_} } sort keys %a;
}

sub _gen {
    my ($self, $argv0, %a) = @_;
    $a{schemas} //= $BUNDLE unless $a{schema_json};
    $a{out} //= $self->path(sprintf 'var/gen-%d.avro', ++$self->{seq});
    my $r = run_cmd(@$argv0, _args(%a));
    die "@$argv0 failed (exit $r->{exit}): $r->{err}\n" if $r->{exit} != 0;
    return $a{out};
}

sub avro_gen { my ($self, %a) = @_; $self->_gen([$PYTHON, "$LIB/avro_gen.py"], %a) }
sub avsc_gen { my ($self, %a) = @_; $self->_gen(['node', "$LIB/avsc_gen.js"], %a) }

sub _json_lines {
    my (@argv) = @_;
    my $r = run_cmd(@argv);
    # avrocat exits 0 after a read error, but says so on stderr
    die "@argv failed (exit $r->{exit}): $r->{err}\n" if $r->{exit} != 0 || $r->{err} =~ /\S/;
    return [map { $JSON->decode($_) } grep { length } split /\n/, $r->{out}];
}

sub avro_dump { my ($self, $f, @fl) = @_; _json_lines($PYTHON, "$LIB/avro_dump.py", '-r', @fl, $f) }
sub avsc_dump { my ($self, $f, @fl) = @_; _json_lines('node', "$LIB/avsc_dump.js", '-r', @fl, $f) }
sub avrocat   { my ($self, $f) = @_; _json_lines('avrocat', $f) }

sub hostile {
    my ($self, %a) = @_;
    return $self->{hostile} if $self->{hostile};
    my $dir = $self->path('hostile');
    my $r = run_cmd($PYTHON, "$LIB/hostile.py", $dir, _args(%a));
    die "hostile.py failed: $r->{err}\n" if $r->{exit} != 0;
    my $m = $JSON->decode(_slurp("$dir/manifest.json"));
    $_->{path} = "$dir/$_->{file}" for $m->{control}, @{ $m->{cases} };
    return $self->{hostile} = $m;
}

# --- cleanup ----------------------------------------------------------------
# nginx is stopped as soon as an instance goes away (or at END); whether its
# prefix is removed is decided at END, from the result of the whole test file
# (an instance can be destroyed while a die unwinds, before the failure shows).

my @PENDING;    # [prefix, bad log lines, log excerpt]

sub _release {
    my ($self) = @_;
    return if $self->{released} || $self->{owner_pid} != $$;
    $self->{released} = 1;
    local ($?, $!, $@);
    eval { $self->stop };
    run_cmd('umount', '-l', $_) for reverse @{ $self->{mounts} // [] };
    push @PENDING, [$self->{prefix}, [$self->check_log_clean], $self->log_excerpt(0, 20)];
}

sub DESTROY {
    my ($self) = @_;
    delete $LIVE{refaddr $self};
    $self->_release;
}

END {
    my $passing = $? == 0;    # the exit status the test is about to return
    $passing &&= Test::Builder->new->is_passing if $INC{'Test/Builder.pm'};
    $_->_release for grep { defined } values %LIVE;
    for my $p (@PENDING) {
        my ($prefix, $bad, $tail) = @$p;
        next unless -d $prefix;
        if ($passing && !$ENV{AVRO_TEST_KEEP}) {
            remove_tree($prefix);
            next;
        }
        my $msg = "kept $prefix";
        $msg .= join "\n", "\nbad log lines:", @$bad if !$passing && @$bad;
        $msg .= "\nerror log (last non-debug lines):\n$tail" if !$passing && length $tail;
        $msg =~ s/^/# /mg;
        print STDERR "$msg\n";
    }
}

1;
