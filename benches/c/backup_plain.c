/*
 * The same backup as backup_lib.c with plain libc and no library, for benches/memory.rs:
 * pipe + fork/exec of the compressor, QMP by hand (getfd with SCM_RIGHTS, backup), then
 * query-backup on a connection of its own every 200 ms until the job is done. Prints its
 * own peak RSS. Usage: backup_plain SOCKET ARCHIVE COMPRESSOR [ARGS...]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"

static char buf[65536];
static size_t have;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* Reads one line (a JSON object) into line, NUL-terminated, newline removed. */
static void read_line(int sock, char *line, size_t size)
{
    for (;;) {
        char *nl = memchr(buf, '\n', have);
        if (nl) {
            size_t len = (size_t)(nl - buf);
            if (len >= size)
                die("reply too long");
            memcpy(line, buf, len);
            line[len] = 0;
            memmove(buf, nl + 1, have - len - 1);
            have -= len + 1;
            return;
        }
        ssize_t n = read(sock, buf + have, sizeof buf - have);
        if (n <= 0)
            die("read from QMP socket");
        have += (size_t)n;
    }
}

/* The reply to the last command: skips events. */
static void reply(int sock, char *line, size_t size)
{
    do
        read_line(sock, line, size);
    while (!strstr(line, "\"return\"") && !strstr(line, "\"error\""));
    if (strstr(line, "\"error\"")) {
        fprintf(stderr, "QMP error: %s\n", line);
        exit(1);
    }
}

static void send_all(int sock, const char *text, int fd)
{
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    union {
        struct cmsghdr align;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.space;
        msg.msg_controllen = sizeof control.space;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    if (sendmsg(sock, &msg, 0) != (ssize_t)iov.iov_len)
        die("sendmsg");
}

/* Connects, reads the greeting, negotiates capabilities. */
static int qmp_open(const char *path, char *line, size_t size)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("connect");
    have = 0;
    read_line(sock, line, size);
    send_all(sock, "{\"execute\":\"qmp_capabilities\"}\r\n", -1);
    reply(sock, line, size);
    return sock;
}

int main(int argc, char **argv)
{
    static char line[65536];
    if (argc < 4) {
        fprintf(stderr, "usage: %s SOCKET ARCHIVE COMPRESSOR [ARGS...]\n", argv[0]);
        return 2;
    }
    int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int fds[2];
    if (out < 0 || pipe2(fds, O_CLOEXEC) < 0)
        die("open/pipe");
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        dup2(fds[0], 0);
        dup2(out, 1);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    close(fds[0]);

    int sock = qmp_open(argv[1], line, sizeof line);
    send_all(sock, "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"backup\"}}\r\n", fds[1]);
    reply(sock, line, sizeof line);
    send_all(sock,
             "{\"execute\":\"backup\",\"arguments\":{\"backup-file\":\"/dev/fdname/backup\","
             "\"devlist\":\"drive-scsi0\",\"speed\":0}}\r\n",
             -1);
    reply(sock, line, sizeof line);
    close(sock);
    close(fds[1]);
    if (!strstr(line, "\"UUID\"")) {
        fprintf(stderr, "no UUID: %s\n", line);
        return 1;
    }

    for (;;) {
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 200 * 1000 * 1000};
        sock = qmp_open(argv[1], line, sizeof line);
        send_all(sock, "{\"execute\":\"query-backup\"}\r\n", -1);
        reply(sock, line, sizeof line);
        close(sock);
        if (strstr(line, "\"status\": \"done\"") || strstr(line, "\"status\":\"done\""))
            break;
        if (!strstr(line, "\"active\"")) {
            fprintf(stderr, "backup failed: %s\n", line);
            return 1;
        }
        nanosleep(&pause, NULL);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || status != 0) {
        fprintf(stderr, "compressor failed: status %d\n", status);
        return 1;
    }
    close(out);
    printf("vmhwm_kib %ld\n", proc_status_kib("VmHWM:"));
    return 0;
}
