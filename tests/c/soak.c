/*
 * Soak of the C API: 10,000 one-shot connect/query/close cycles against a real QEMU that
 * this program starts as its own child, and 1,000 compressor spawn/wait cycles (zstd and
 * gzip behind the pipe). After a warm-up, the process must hold the same descriptors at
 * the end and its resident set must not grow by 1 MiB or more (docs/reliability.md).
 * Usage: soak WORKDIR [CYCLES SPAWNS]; VZQ_SOAK_NO_RSS=1 skips the RSS check (under
 * AddressSanitizer, whose quarantine keeps freed memory resident on purpose).
 * Prints the figures and "N passed, N failed"; exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

extern char **environ;

#define WARM_UP 200
#define RSS_LIMIT_KIB 1024

/* Open descriptors of this process (the directory's own one not counted). */
static int fd_count(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir)
        return -1;
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)))
        if (entry->d_name[0] != '.')
            n++;
    closedir(dir);
    return n - 1;
}

/* VmRSS of this process in KiB. */
static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* One connect/negotiate/query-status/close; true if QEMU answered prelaunch. */
static bool query_once(const vzdump_qemu_peer *peer, char **err)
{
    char *json = NULL;
    vzdump_qemu_result r = vzdump_qemu_command(peer, "query-status", NULL, 0, &json, err);
    bool ok = r == VZDUMP_QEMU_OK && json && strstr(json, "\"prelaunch\"");
    vzdump_qemu_string_free(json);
    return ok;
}

/* One compressor behind a pipe: spawn, feed, close, wait, free; true if it exited 0. */
static bool compress_once(int cycle, int out, char **err)
{
    static const char *const commands[] = {"zstd -q --threads=2", "gzip"};
    static const char data[] = "vzdump-qemu soak: a few bytes through the compressor\n";
    vzdump_qemu_compressor *comp = NULL;
    int32_t wfd = -1;
    if (vzdump_qemu_compressor_spawn(commands[cycle % 2], out, 0, &comp, &wfd, err) !=
        VZDUMP_QEMU_OK)
        return false;
    bool written = write(wfd, data, sizeof data - 1) == (ssize_t)(sizeof data - 1);
    close(wfd);
    bool ok = vzdump_qemu_compressor_wait(comp, 10000, NULL, NULL, err) == VZDUMP_QEMU_OK;
    vzdump_qemu_compressor_free(comp);
    return written && ok;
}

struct figures {
    int fds_before, fds_after;
    long rss_before, rss_after;
    int failures;
    double seconds;
};

/* Runs `cycles` of `step` after the warm-up and reports the figures under `name`. */
static void soak(const char *name, int cycles, bool check_rss, bool (*step)(int, void *),
                 void *arg)
{
    struct figures f = {0};
    for (int i = 0; i < WARM_UP; i++)
        f.failures += !step(i, arg);
    f.fds_before = fd_count();
    f.rss_before = rss_kib();
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < cycles; i++)
        f.failures += !step(i, arg);
    f.seconds = seconds_since(&start);
    f.fds_after = fd_count();
    f.rss_after = rss_kib();
    printf("soak: %d %s cycles in %.1f s: fds %d -> %d, RSS %ld -> %ld KiB (%+ld)\n", cycles,
           name, f.seconds, f.fds_before, f.fds_after, f.rss_before, f.rss_after,
           f.rss_after - f.rss_before);
    CHECK(f.failures == 0, "%s: %d of %d cycles failed", name, f.failures, cycles + WARM_UP);
    CHECK(f.fds_before > 0 && f.fds_after == f.fds_before, "%s: descriptors %d -> %d", name,
          f.fds_before, f.fds_after);
    if (check_rss)
        CHECK(f.rss_before > 0 && f.rss_after - f.rss_before < RSS_LIMIT_KIB,
              "%s: RSS grew by %ld KiB", name, f.rss_after - f.rss_before);
}

static const vzdump_qemu_peer *soak_peer;
static int soak_out = -1;

static bool query_step(int cycle, void *arg)
{
    (void)cycle;
    char *err = NULL;
    bool ok = query_once(soak_peer, &err);
    if (!ok && *(int *)arg < 5) {
        (*(int *)arg)++;
        fprintf(stderr, "query failed: %s\n", err ? err : "(no message)");
    }
    vzdump_qemu_string_free(err);
    return ok;
}

static bool compress_step(int cycle, void *arg)
{
    char *err = NULL;
    bool ok = compress_once(cycle, soak_out, &err);
    if (!ok && *(int *)arg < 5) {
        (*(int *)arg)++;
        fprintf(stderr, "compressor failed: %s\n", err ? err : "(no message)");
    }
    vzdump_qemu_string_free(err);
    return ok;
}

/* QEMU without a guest, paused, QMP on `socket`, as a child of this process; returns once
 * it accepts. */
static pid_t start_qemu(const char *socket)
{
    char qmp[4200];
    snprintf(qmp, sizeof qmp, "unix:%s,server=on,wait=off", socket);
    char *argv[] = {"qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                    "-S", "-qmp", qmp, NULL};
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid = -1;
    int rc = posix_spawnp(&pid, argv[0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return -1;
    for (int i = 0; i < 500; i++) {
        if (accepts(socket))
            return pid;
        struct timespec tick = {0, 20 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: %s WORKDIR [CYCLES SPAWNS]\n", argv[0]);
        return 2;
    }
    int cycles = argc == 4 ? atoi(argv[2]) : 10000;
    int spawns = argc == 4 ? atoi(argv[3]) : 1000;
    bool check_rss = !getenv("VZQ_SOAK_NO_RSS");
    signal(SIGPIPE, SIG_IGN);

    char socket[4096];
    snprintf(socket, sizeof socket, "%s/soak-qemu.qmp", argv[1]);
    pid_t qemu = start_qemu(socket);
    CHECK(qemu > 0, "QEMU started on %s", socket);
    if (qemu <= 0)
        return report("soak");
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    expect(vzdump_qemu_peer_new_path(socket, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "peer");

    int reported = 0;
    soak_peer = peer;
    soak("connect/query/close", cycles, check_rss, query_step, &reported);

    char out_path[4200];
    snprintf(out_path, sizeof out_path, "%s/soak-compressed", argv[1]);
    soak_out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(soak_out >= 0, "open %s", out_path);
    reported = 0;
    soak("compressor spawn/wait", spawns, check_rss, compress_step, &reported);
    close(soak_out);

    vzdump_qemu_peer_free(peer);
    /* Our own child, not yet reaped: its pid cannot be another process's. */
    kill(qemu, SIGTERM);
    int status = 0;
    CHECK(waitpid(qemu, &status, 0) == qemu, "QEMU reaped");
    return report("soak");
}
