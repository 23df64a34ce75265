package DemoTaskLog;

# The logging of the example plugins, as PVE::VZDump::Plugin prints it in a task log
# (INFO: / WARN: / ERROR: lines on stdout), for objects made with new(%fields).

use strict;
use warnings;

sub new { my ($class, %self) = @_; return bless {%self}, $class; }

sub _print {
    my ($prefix, $msg) = @_;
    chomp($msg);
    print STDOUT "$prefix: $_\n" for split(/\n/, $msg);
}

sub loginfo { _print('INFO', $_[1]); }
sub logerr { _print('ERROR', $_[1]); }
sub log { _print(uc($_[1]), $_[2]); }

1;
