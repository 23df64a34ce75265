/*
 * One full VMA backup through the C API, for benches/memory.rs: compressor pipe,
 * getfd + backup, the status loop, compressor wait. Prints its own peak RSS.
 * Usage: backup_lib SOCKET ARCHIVE COMPRESSOR_COMMAND
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include "bench_api.h"
#include "bench_proc.h"

static uint32_t quiet(void *userdata, uint32_t level, const char *line)
{
    (void)userdata;
    (void)level;
    (void)line;
    return 0;
}

static bool never(void *userdata)
{
    (void)userdata;
    return false;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET ARCHIVE COMPRESSOR\n", argv[0]);
        return 2;
    }
    char *err = NULL, *uuid = NULL;
    vzdump_qemu_peer *peer = NULL;
    vzdump_qemu_compressor *compressor = NULL;
    vzdump_qemu_poll *poll = NULL;
    int32_t pipe_fd = -1;
    if (vzdump_qemu_peer_new_path(argv[1], &peer, &err) != VZDUMP_QEMU_OK)
        return api_fail("peer", err);
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return api_fail("open archive", NULL);
    if (vzdump_qemu_compressor_spawn(argv[3], out, 0, &compressor, &pipe_fd, &err))
        return api_fail("compressor", err);
    if (vzdump_qemu_backup_start_vma(peer, pipe_fd, "{\"devlist\": \"drive-scsi0\"}", 0, &uuid,
                                     &err))
        return api_fail("backup", err);
    close(pipe_fd);
    if (vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_SEED, 0, &poll, &err) ||
        vzdump_qemu_poll_run(poll, quiet, never, NULL, true, NULL, &err))
        return api_fail("status loop", err);
    if (vzdump_qemu_compressor_wait(compressor, 0, NULL, NULL, &err))
        return api_fail("compressor wait", err);
    vzdump_qemu_poll_free(poll);
    vzdump_qemu_compressor_free(compressor);
    vzdump_qemu_string_free(uuid);
    vzdump_qemu_peer_free(peer);
    close(out);
    printf("vmhwm_kib %ld\n", proc_status_kib("VmHWM:"));
    return 0;
}
