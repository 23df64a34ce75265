package TestPeers;

# Peers for the tests: real QEMU (stock, no Proxmox backup commands), the workspace's
# simulator pve-qmp-sim, real qemu-ga (host side, freezing blocked) and a scripted fake
# agent, each a direct child that is killed and reaped at the end.

use strict;
use warnings;

use Cwd qw(abs_path);
use Exporter qw(import);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::UNIX;
use JSON::PP ();
use POSIX ();
use Time::HiRes qw(sleep);

our @EXPORT_OK = qw(
    repo tmpdir sim_binary start_qemu start_sim start_qga start_fake_agent stop_peer wait_socket
);

# Where the tests expect qemu-ga; a missing binary is a BAIL_OUT, never a skip.
our $QEMU_GA = '/usr/sbin/qemu-ga';

# Everything of qemu-ga that could freeze, stop or change the host it runs on.
my $QGA_BLOCKED = join(',', qw(
    guest-fsfreeze-freeze guest-fsfreeze-freeze-list guest-fsfreeze-thaw guest-shutdown
    guest-suspend-disk guest-suspend-ram guest-suspend-hybrid guest-exec guest-exec-status
    guest-file-open guest-file-write guest-set-time guest-set-user-password guest-set-vcpus
    guest-set-memory-blocks guest-fstrim
));

my %CHILDREN;
my $OWNER = $$;    # forked test children must not kill the peers on exit

sub repo { return abs_path(dirname(abs_path(__FILE__)) . '/../../..'); }

sub tmpdir { return tempdir('vzq-perl-XXXXXX', TMPDIR => 1, CLEANUP => 1); }

sub sim_binary {
    my $bin = $ENV{PVE_QMP_SIM} // repo() . '/target/debug/pve-qmp-sim';
    return -x $bin ? $bin : undef;
}

# The pid file qemu-server's running check reads for a socket <dir>/<vmid>.qmp, if the
# socket is named so.
sub pidfile_for {
    my ($socket) = @_;
    return $socket =~ m|^(.*)/(\d+)\.qmp$| ? "$1/$2.pid" : undef;
}

# Waits until the file exists (up to 10 s).
sub wait_file {
    my ($path) = @_;
    for (1 .. 500) {
        return 1 if -e $path;
        sleep(0.02);
    }
    die "$path did not appear\n";
}

# Waits until something accepts connections on the socket (up to 10 s).
sub wait_socket {
    my ($path) = @_;
    for (1 .. 500) {
        if (-S $path) {
            my $s = IO::Socket::UNIX->new(Peer => $path);
            if ($s) {
                # QEMU serves one client at a time: let go at once.
                close($s);
                return 1;
            }
        }
        sleep(0.02);
    }
    die "socket $path did not appear\n";
}

sub _spawn {
    my (@cmd) = @_;
    my $pid = fork() // die "fork failed - $!\n";
    if ($pid == 0) {
        open(STDIN, '<', '/dev/null');
        if (!$ENV{TEST_VERBOSE}) {
            open(STDOUT, '>', '/dev/null');
            open(STDERR, '>', '/dev/null');
        }
        exec(@cmd) or POSIX::_exit(127);
    }
    $CHILDREN{$pid} = 1;
    return $pid;
}

# QEMU without a guest, paused (prelaunch), QMP on $socket. For a socket <dir>/<vmid>.qmp
# it writes <dir>/<vmid>.pid, as qemu-server starts VM <vmid>, so that the VM counts as
# running.
sub start_qemu {
    my ($socket) = @_;
    my $pidfile = pidfile_for($socket);
    my $pid = _spawn(
        'qemu-system-x86_64', '-machine', 'none', '-nodefaults', '-display', 'none', '-S',
        '-qmp', "unix:$socket,server=on,wait=off",
        defined($pidfile) ? ('-pidfile', $pidfile) : (),
    );
    wait_file($pidfile) if defined($pidfile);
    wait_socket($socket);
    return $pid;
}

# The simulator on $socket with extra arguments, e.g. (--gen-disk => 'drive-scsi0=32M');
# with a pid file as start_qemu does.
sub start_sim {
    my ($socket, @args) = @_;
    my $bin = sim_binary() // die "pve-qmp-sim is not built\n";
    my $pidfile = pidfile_for($socket);
    my $pid = _spawn($bin, '--socket', $socket, defined($pidfile) ? ('--pidfile', $pidfile) : (),
        @args);
    wait_socket($socket);
    wait_file($pidfile) if defined($pidfile);
    return $pid;
}

# qemu-ga listening on $dir/100.qga (VM 100's agent socket when RUN_DIR is $dir), with its
# state, pid and log files in $dir and every dangerous command blocked.
sub start_qga {
    my ($dir) = @_;
    -d "$dir/state" or mkdir("$dir/state") or die "mkdir $dir/state - $!\n";
    my $pid = _spawn(
        $QEMU_GA, '-m', 'unix-listen', '-p', "$dir/100.qga", '-t', "$dir/state",
        '-f', "$dir/qga.pid", '-l', "$dir/qga.log", '-b', $QGA_BLOCKED,
    );
    wait_socket("$dir/100.qga");
    return $pid;
}

# A scripted agent on $socket: answers guest-sync-delimited as qemu-ga does and appends
# every other command's name to $record before answering it from %$replies (command =>
# return value). A code reference is called with the client socket instead of answering;
# a command without an entry gets no answer.
sub start_fake_agent {
    my ($socket, $record, $replies) = @_;
    my $listener = IO::Socket::UNIX->new(Local => $socket, Listen => 5)
        // die "listen on $socket - $!\n";
    my $pid = fork() // die "fork failed - $!\n";
    if ($pid == 0) {
        eval { _serve_agent($listener, $record, $replies) };
        POSIX::_exit(0);
    }
    close($listener);
    $CHILDREN{$pid} = 1;
    return $pid;
}

sub _serve_agent {
    my ($listener, $record, $replies) = @_;
    my $json = JSON::PP->new->canonical;
    while (my $client = $listener->accept) {
        my $buf = '';
        while (sysread($client, $buf, 4096, length($buf))) {
            $buf =~ tr/\xff//d;    # the client's parser flush
            while ($buf =~ s/^([^\n]*)\n//) {
                my $request = $json->decode($1);
                my $command = $request->{execute};
                if ($command eq 'guest-sync-delimited') {
                    my $id = $request->{arguments}->{id};
                    syswrite($client, "\xff" . $json->encode({ return => $id }) . "\n");
                    next;
                }
                open(my $fh, '>>', $record) or die "$record - $!\n";
                print $fh "$command\n";
                close($fh);
                my $reply = $replies->{$command};
                if (ref($reply) eq 'CODE') {
                    $reply->($client);
                } elsif (exists($replies->{$command})) {
                    syswrite($client, $json->encode({ return => $reply }) . "\n");
                }
            }
        }
    }
}

# Kills and reaps a peer; returns its wait status.
sub stop_peer {
    my ($pid) = @_;
    return undef if !delete $CHILDREN{$pid};
    kill('TERM', $pid);
    waitpid($pid, 0);
    return $?;
}

END {
    return if $$ != $OWNER;
    my $status = $?;
    for my $pid (keys %CHILDREN) {
        kill('KILL', $pid);
        waitpid($pid, 0);
    }
    $? = $status;
}

1;
