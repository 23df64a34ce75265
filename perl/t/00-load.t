# The module loads, links the library and exports what it documents.
use strict;
use warnings;

use Test::More;

use_ok('PVE::RS::VZDump::Qemu', qw(
    mon_cmd backup_start_vma backup_start_pbs backup_cancel backup_query
    query_backup_status_loop fork_compressor_pipe wait_compressor kill_compressor
    qga_fs_freeze qga_fs_thaw
));
ok((grep { $_ eq 'qga_fs_thaw' } @{ $PVE::RS::VZDump::Qemu::EXPORT_TAGS{all} }),
    ':all has the agent functions');

like(PVE::RS::VZDump::Qemu::version(), qr/^vzdump-qemu \d+\.\d+\.\d+/, 'library version');
no warnings 'once';
is($PVE::RS::VZDump::Qemu::RUN_DIR, '/var/run/qemu-server', 'default run directory');

# Handles in new interpreter threads: t/61-threads.t.

done_testing();
