/*
 * The C tests' assertions: CHECK counts passes and failures and prints a failure with its
 * place; expect/expect_exact check a result code and the message the call wrote. And what
 * the peers' launchers share: accepts, whether a peer listens yet.
 */
#ifndef VZQ_TEST_CHECK_H
#define VZQ_TEST_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vzdump_qemu.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (cond) {                                                                      \
            passed++;                                                                    \
        } else {                                                                         \
            failed++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
        }                                                                                \
    } while (0)

/* Checks a result code and that the message is `text` exactly. */
static inline void expect_exact(vzdump_qemu_result got, vzdump_qemu_result want, char **errp,
                         const char *text, const char *what)
{
    /* Read the message only after the call filled it (argument order is unspecified). */
    char *err = *errp;
    *errp = NULL;
    CHECK(got == want, "%s: result %u, want %u (%s)", what, got, want, err ? err : "-");
    CHECK(err && strcmp(err, text) == 0, "%s: message '%s', want '%s'", what,
          err ? err : "(null)", text);
    vzdump_qemu_string_free(err);
}

/* Checks a result code and, on failure, that the message contains `needle` (NULL: no
 * message at all). */
static inline void expect(vzdump_qemu_result got, vzdump_qemu_result want, char **errp,
                   const char *needle, const char *what)
{
    char *err = *errp;
    *errp = NULL;
    CHECK(got == want, "%s: result %u, want %u (%s)", what, got, want, err ? err : "-");
    if (needle) {
        CHECK(err && strstr(err, needle), "%s: message '%s' lacks '%s'", what,
              err ? err : "(null)", needle);
    } else {
        CHECK(err == NULL, "%s: unexpected message '%s'", what, err);
    }
    vzdump_qemu_string_free(err);
}

/* Whether something accepts connections on the unix socket `path`: a launcher waits for
 * this, not for the socket file, which exists before its server listens. The connection is
 * closed at once (QEMU serves one client at a time). */
static inline bool accepts(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    bool ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

/* Prints the tally; the exit status of a test program. */
static int report(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, passed, failed);
    return failed ? 1 : 0;
}

#endif
