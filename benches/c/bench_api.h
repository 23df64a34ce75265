/*
 * What the C bench programs that use the library share (benches/c/backup_lib.c,
 * benches/c/spawn_bench.c): the report of a failed call of the C API.
 */
#ifndef BENCH_API_H
#define BENCH_API_H

#include <errno.h>
#include <stdio.h>

#include "vzdump_qemu.h"

/*
 * Reports the failed step `what` with the library's error text `err` (may be NULL) on
 * stderr, prefixed with the program's name, frees `err` and returns 1.
 */
static inline int api_fail(const char *what, char *err)
{
    fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, err ? err : "?");
    vzdump_qemu_string_free(err);
    return 1;
}

#endif
