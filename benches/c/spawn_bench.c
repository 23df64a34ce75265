/*
 * Compressor spawn timings through the C API, for benches/spawn_rss.rs.
 * Usage: spawn_bench HEAP_BYTES. Holds HEAP_BYTES of touched heap, then answers requests
 * on stdin, one line each:
 *   hello -> ok      rss -> ok <VmRSS in KiB>      quit
 *   lib N -> N times in ns of vzdump_qemu_compressor_spawn("true") + close of the pipe's
 *            write end + vzdump_qemu_compressor_wait
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_api.h"
#include "bench_proc.h"

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int spawn_and_wait(int null_fd)
{
    vzdump_qemu_compressor *c = NULL;
    int32_t write_fd = -1;
    char *err = NULL;
    if (vzdump_qemu_compressor_spawn("true", null_fd, 0, &c, &write_fd, &err) != VZDUMP_QEMU_OK)
        return api_fail("spawn", err);
    close(write_fd);
    int rc = 0;
    if (vzdump_qemu_compressor_wait(c, 0, NULL, NULL, &err) != VZDUMP_QEMU_OK)
        rc = api_fail("wait", err);
    vzdump_qemu_compressor_free(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s HEAP_BYTES\n", argv[0]);
        return 2;
    }
    size_t heap_len = (size_t)strtoull(argv[1], NULL, 10);
    char *heap = malloc(heap_len ? heap_len : 1);
    if (!heap) {
        fprintf(stderr, "cannot allocate %zu bytes\n", heap_len);
        return 1;
    }
    memset(heap, 0x5a, heap_len);
    int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0)
        return 1;

    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        long n = 0;
        if (strcmp(line, "quit\n") == 0)
            break;
        if (strcmp(line, "hello\n") == 0) {
            printf("ok\n");
        } else if (strcmp(line, "rss\n") == 0) {
            printf("ok %ld\n", proc_status_kib("VmRSS:"));
        } else if (sscanf(line, "lib %ld", &n) == 1 && n > 0) {
            for (long i = 0; i < n; i++) {
                long long t0 = now_ns();
                if (spawn_and_wait(null_fd)) {
                    printf("error: spawn failed");
                    break;
                }
                printf("%s%lld", i ? " " : "", now_ns() - t0);
            }
            printf("\n");
        } else {
            printf("error: unknown request\n");
        }
        fflush(stdout);
    }
    /* Keep the heap alive (and observably used) until the end. */
    volatile char keep = heap[heap_len / 2];
    (void)keep;
    free(heap);
    close(null_fd);
    return 0;
}
