#!/usr/bin/perl
# QMP timings in one Perl interpreter, for benches/qmp.rs. Usage: qmp_worker.pl SOCKET
#
# Requests on stdin, one per line; each answer is one line on stdout:
#   hello                    -> ok
#   whole module|mux N       -> N times in ns of a whole operation (connect, greeting,
#                               qmp_capabilities, query-status, close)
#   open module|mux N        -> connect once (untimed), N times in ns of one query-status
#   quit
# module: PVE::RS::VZDump::Qemu (mon_cmd with the socket path; Conn->new($path)->cmd).
# mux: a small client in the style of qemu-server's PVE::QMPClient (proxmox/qemu-server
# src/PVE/QMPClient.pm): a connection per command, IO::Multiplex callbacks, JSON::XS.
use strict;
use warnings;

use BenchCommon qw(serve timed);
use PVE::RS::VZDump::Qemu;

my $socket = shift // die "usage: $0 SOCKET\n";

package MuxClient {
    use IO::Multiplex;
    use IO::Socket::UNIX;
    use JSON::XS;
    use Socket qw(SOCK_STREAM);

    my $json = JSON::XS->new->utf8;

    sub new {
        my ($class, $path) = @_;
        return bless { path => $path, seq => 0 }, $class;
    }

    sub connect {
        my ($self) = @_;
        my $fh = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $self->{path})
            or die "unable to connect to $self->{path} - $!\n";
        return $fh;
    }

    # Runs the commands of @$queue on $fh in one mux loop; with $greeting, first waits for
    # QEMU's greeting. Returns the last command's 'return'.
    sub run {
        my ($self, $fh, $greeting, @queue) = @_;
        my $mux = IO::Multiplex->new();
        $mux->add($fh);
        $mux->set_callback_object($self);
        $mux->set_timeout($fh, 5);
        @$self{qw(mux queue result error pending)} = ($mux, [@queue], undef, undef, undef);
        $self->send_next($fh) if !$greeting;
        $mux->loop();
        $mux->remove($fh);
        die $self->{error} if $self->{error};
        return $self->{result};
    }

    # One command the way qemu-server's mon_cmd runs it: its own connection.
    sub cmd_once {
        my ($self, $command) = @_;
        my $fh = $self->connect();
        my $result = $self->run($fh, 1, 'qmp_capabilities', $command);
        close($fh);
        return $result;
    }

    sub send_next {
        my ($self, $fh) = @_;
        my $command = shift @{ $self->{queue} };
        my $id = "$$:" . ++$self->{seq};
        $self->{pending} = $id;
        $self->{mux}->write($fh, $json->encode({ execute => $command, id => $id }) . "\n");
    }

    sub done {
        my ($self, $error) = @_;
        $self->{error} = $error if defined($error);
        $self->{mux}->endloop();
    }

    sub mux_input {
        my ($self, $mux, $fh, $input) = @_;
        while ($$input =~ s/\A([^\n]*)\n//) {
            my $line = $1;
            next if $line !~ /\S/;
            my $msg = eval { $json->decode($line) } // return $self->done("bad JSON: $line\n");
            if (exists $msg->{QMP}) {
                $self->send_next($fh);
            } elsif (exists $msg->{event}) {
                next;
            } elsif (my $err = $msg->{error}) {
                return $self->done("$err->{desc}\n");
            } elsif (($msg->{id} // '') ne $self->{pending}) {
                return $self->done("got wrong command id\n");
            } elsif (@{ $self->{queue} }) {
                $self->send_next($fh);
            } else {
                $self->{result} = $msg->{return};
                return $self->done();
            }
        }
    }

    sub mux_timeout { $_[0]->done("got timeout\n") }
    sub mux_eof { $_[0]->done("client closed connection\n") }
}

my $mux = MuxClient->new($socket);

sub check { die "unexpected reply\n" if ref($_[0]) ne 'HASH' || !exists $_[0]->{status} }

my %run = (
    'whole module' => sub {
        my ($n) = @_;
        return timed($n, sub { check(PVE::RS::VZDump::Qemu::mon_cmd($socket, 'query-status')) });
    },
    'whole mux' => sub {
        my ($n) = @_;
        return timed($n, sub { check($mux->cmd_once('query-status')) });
    },
    'open module' => sub {
        my ($n) = @_;
        my $conn = PVE::RS::VZDump::Qemu::Conn->new($socket);
        my $times = timed($n, sub { check($conn->cmd('query-status')) });
        $conn->close();
        return $times;
    },
    'open mux' => sub {
        my ($n) = @_;
        my $fh = $mux->connect();
        $mux->run($fh, 1, 'qmp_capabilities');
        my $times = timed($n, sub { check($mux->run($fh, 0, 'query-status')) });
        close($fh);
        return $times;
    },
);

serve(sub {
    my ($line) = @_;
    my ($kind, $variant, $n) = split(' ', $line);
    my $op = $run{"$kind $variant"} // die "unknown request '$line'\n";
    return $op->($n);
});
