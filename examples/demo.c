/*
 * The demo backup through the C API alone: compressor pipe, getfd + backup, status loop
 * with vzdump-style log lines, compressor wait; on failure backup-cancel and kill.
 * Usage: demo SOCKET ARCHIVE COMPRESSOR_COMMAND|"" seed|current BWLIMIT_KIB
 */
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vzdump_qemu.h"

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    caught = sig;
}

static uint32_t log_line(void *userdata, uint32_t level, const char *line)
{
    (void)userdata;
    printf("%s: %s\n", level == VZDUMP_QEMU_LOG_ERR ? "ERROR" : "INFO", line);
    fflush(stdout);
    return 0;
}

static bool interrupted(void *userdata)
{
    (void)userdata;
    return caught != 0;
}

static int fail(const char *what, char *err)
{
    printf("ERROR: %s%s%s\n", what, err ? " - " : "", err ? err : "");
    vzdump_qemu_string_free(err);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s SOCKET ARCHIVE COMPRESSOR seed|current BWLIMIT\n", argv[0]);
        return 2;
    }
    const char *socket = argv[1], *archive = argv[2], *comp = argv[3];
    uint32_t style = strcmp(argv[4], "current") == 0 ? VZDUMP_QEMU_STYLE_CURRENT
                                                      : VZDUMP_QEMU_STYLE_SEED;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: waits return at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char *err = NULL, *uuid = NULL;
    vzdump_qemu_peer *peer = NULL;
    if (vzdump_qemu_peer_new_path(socket, &peer, &err) != VZDUMP_QEMU_OK)
        return fail("bad socket path", err);
    printf("INFO: creating vzdump archive '%s'\n", archive);
    int out = open(archive, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return fail("unable to open archive", NULL);

    vzdump_qemu_compressor *compressor = NULL;
    int32_t target = out;
    if (*comp && vzdump_qemu_compressor_spawn(comp, out, 0, &compressor, &target, &err))
        return fail("compressor", err);

    char params[64];
    snprintf(params, sizeof params, "{\"devlist\": \"drive-scsi0\", \"bwlimit\": %ld}",
             atol(argv[5]));
    int rc = 0;
    if (vzdump_qemu_backup_start_vma(peer, target, params, 0, &uuid, &err) != VZDUMP_QEMU_OK) {
        rc = fail("starting backup failed", err);
    } else {
        if (compressor)
            close(target); /* QEMU has its copy: the compressor sees EOF when QEMU is done */
        printf("INFO: started backup task '%s'\n", uuid);
        vzdump_qemu_poll *poll = NULL;
        vzdump_qemu_result r = vzdump_qemu_poll_new(peer, uuid, style, 0, &poll, &err);
        if (r == VZDUMP_QEMU_OK)
            r = vzdump_qemu_poll_run(poll, log_line, interrupted, NULL, true, NULL, &err);
        if (r != VZDUMP_QEMU_OK)
            rc = fail(caught ? "interrupted by signal" : "backup failed",
                      caught ? (vzdump_qemu_string_free(err), NULL) : err);
        vzdump_qemu_poll_free(poll);
    }
    if (compressor) {
        if (rc == 0 && vzdump_qemu_compressor_wait(compressor, 0, NULL, NULL, &err) != VZDUMP_QEMU_OK)
            rc = fail("compressor", err);
        vzdump_qemu_compressor_free(compressor); /* kills and reaps it on the error path */
    }
    close(out);
    vzdump_qemu_string_free(uuid);
    vzdump_qemu_peer_free(peer);
    return rc;
}
