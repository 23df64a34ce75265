/*
 * What every C bench program in benches/c reads of itself (scripts/bench.sh compiles
 * them): a field of /proc/self/status, e.g. VmHWM (peak RSS) or VmRSS.
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of `field` (e.g. "VmHWM:") in /proc/self/status, in KiB; 0 if unreadable. */
static inline long proc_status_kib(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t len = strlen(field);
    long kib = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0)
            kib = atol(line + len);
    fclose(f);
    return kib;
}

#endif
