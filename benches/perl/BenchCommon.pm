package BenchCommon;
# What the Perl bench workers (benches/perl/*_worker.pl) share: the clock, a timed batch,
# and the request loop that benches/common/mod.rs `Worker` talks to (one request a line
# on stdin, one answer a line on stdout). benches/common/mod.rs `perl_command` puts this
# directory on @INC. Loads nothing the workers did not load before.
use strict;
use warnings;

use Exporter qw(import);
use IO::Handle;
use Time::HiRes qw(clock_gettime CLOCK_MONOTONIC);

our @EXPORT_OK = qw(now_ns timed serve);

# The monotonic clock, in nanoseconds.
sub now_ns { return clock_gettime(CLOCK_MONOTONIC) * 1e9 }

# Runs $op $n times; the nanoseconds of each run, space-separated.
sub timed {
    my ($n, $op) = @_;
    my @times;
    for (1 .. $n) {
        my $t0 = now_ns();
        $op->();
        push @times, int(now_ns() - $t0);
    }
    return join(' ', @times);
}

# Answers requests until 'quit' or EOF: 'hello' with 'ok', any other line with what
# $answer->($line) returns, or 'error: ...' with what it died with (on one line).
sub serve {
    my ($answer) = @_;
    STDOUT->autoflush(1);
    while (my $line = <STDIN>) {
        chomp $line;
        last if $line eq 'quit';
        my $reply = $line eq 'hello' ? 'ok' : eval { $answer->($line) };
        $reply = "error: $@" if !defined($reply);
        $reply =~ s/\n/ /g;
        print "$reply\n";
    }
}

1;
