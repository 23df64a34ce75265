/*
 * Exercises every export of libvzdump_qemu against real peers: pve-qmp-sim (Proxmox
 * backup commands), real QEMU (stock QMP) and real compressors, plus every bad-input case.
 * Usage: test_api SIM_SOCKET QEMU_SOCKET WORKDIR QGA_SOCKET
 * Prints "N passed, N failed" and exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Checks that the details of the last failure contain `needle`. */
static void expect_detail(const char *needle, const char *what)
{
    char *json = NULL;
    CHECK(vzdump_qemu_last_error_json(&json) == VZDUMP_QEMU_OK, "%s: last_error_json", what);
    CHECK(json && strstr(json, needle), "%s: detail %s lacks %s", what, json ? json : "(null)",
          needle);
    vzdump_qemu_string_free(json);
}

struct log_state {
    int lines;
    int status_lines;
    int stop_after;
    int cancel_calls;
    char first[512];
    char last[512];
};

static uint32_t log_cb(void *userdata, uint32_t level, const char *line)
{
    struct log_state *st = userdata;
    st->lines++;
    if (strncmp(line, "status: ", 8) == 0)
        st->status_lines++;
    if (st->lines == 1)
        snprintf(st->first, sizeof st->first, "%u %s", level, line);
    snprintf(st->last, sizeof st->last, "%u %s", level, line);
    return st->stop_after && st->lines >= st->stop_after;
}

/* The cancel check of a loop whose userdata is its log state (one userdata serves both
   callbacks): stop from the second call on. */
static bool cancel_now(void *userdata)
{
    struct log_state *st = userdata;
    return ++st->cancel_calls > 1;
}

static void test_bad_input(void)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;

    CHECK(strncmp(vzdump_qemu_version(), "vzdump-qemu ", 12) == 0, "%s", vzdump_qemu_version());
    expect(vzdump_qemu_peer_new_path(NULL, &peer, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "path must not be NULL", "NULL path");
    CHECK(peer == NULL, "output written on failure");
    err = NULL;
    expect(vzdump_qemu_peer_new_path("/x", NULL, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "out must not be NULL", "NULL out");
    err = NULL;
    expect(vzdump_qemu_peer_new_path("/tmp/\xff\xfe", &peer, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "not valid UTF-8", "bad UTF-8");
    /* A NULL error slot is allowed. */
    CHECK(vzdump_qemu_peer_new_path(NULL, &peer, NULL) == VZDUMP_QEMU_NULL_PARAMETER, "no err");
    err = NULL;
    expect(vzdump_qemu_peer_new_vmid(100, "/nonexistent-dir", &peer, &err), VZDUMP_QEMU_OK,
           &err, NULL, "vmid peer");
    char *json = NULL;
    err = NULL;
    /* proxmox/qemu-server src/PVE/QemuServer/Monitor.pm `qmp_cmd`: the running check. */
    expect_exact(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err),
                 VZDUMP_QEMU_NOT_RUNNING, &err, "VM 100 not running", "no pid file");
    CHECK(json == NULL, "no output on failure");
    expect_detail("\"vmid\":100", "not running detail");
    expect_detail("\"code\":23", "not running code");
    err = NULL;
    expect(vzdump_qemu_peer_set_style(peer, 9, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err,
           "style 9", "bad peer style");
    /* Targets as Perl names them: the library tells a VM id from a socket path. */
    vzdump_qemu_peer *by_target = NULL;
    expect_exact(vzdump_qemu_peer_new_target("abc", NULL, &by_target, &err),
                 VZDUMP_QEMU_INVALID_PARAMETER, &err,
                 "'abc' is neither a VM id nor a socket path (a path contains '/')", "bad target");
    CHECK(by_target == NULL, "no peer for a bad target");
    expect(vzdump_qemu_peer_new_target("100", "/nonexistent-dir", &by_target, &err),
           VZDUMP_QEMU_OK, &err, NULL, "VM id target");
    expect_exact(vzdump_qemu_qga_command(by_target, "guest-ping", NULL, 0, &json, &err),
                 VZDUMP_QEMU_NOT_RUNNING, &err, "VM 100 not running", "VM id target's agent");
    vzdump_qemu_peer_free(by_target);
    expect(vzdump_qemu_peer_new_target("/nonexistent-dir/x.sock", NULL, &by_target, &err),
           VZDUMP_QEMU_OK, &err, NULL, "path target");
    expect_exact(vzdump_qemu_qga_command(by_target, "guest-ping", NULL, 0, &json, &err),
                 VZDUMP_QEMU_NO_SOCKET, &err, "unable to open monitor socket",
                 "a path target is its own agent");
    vzdump_qemu_peer_free(by_target);
    CHECK(vzdump_qemu_last_error_json(NULL) == VZDUMP_QEMU_NULL_PARAMETER, "detail NULL out");
    err = NULL;
    expect(vzdump_qemu_command(NULL, "query-status", NULL, 0, &json, &err),
           VZDUMP_QEMU_NULL_PARAMETER, &err, "peer must not be NULL", "NULL peer");
    err = NULL;
    expect(vzdump_qemu_peer_set_timeouts(NULL, 1, 1, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "peer", "set_timeouts NULL");
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, "u", 7, 0, NULL, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "out must not be NULL", "poll_new NULL out");
    vzdump_qemu_poll *poll = NULL;
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, "u", 7, 0, &poll, &err), VZDUMP_QEMU_INVALID_PARAMETER,
           &err, "style 7", "bad style");
    err = NULL;
    expect(vzdump_qemu_poll_run(NULL, log_cb, NULL, NULL, false, NULL, &err),
           VZDUMP_QEMU_NULL_PARAMETER, &err, "poll must not be NULL", "poll_run NULL");
    vzdump_qemu_compressor *comp = NULL;
    int32_t wfd = -1;
    err = NULL;
    expect(vzdump_qemu_compressor_spawn("zstd", 9999, 0, &comp, &wfd, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "9999", "compressor bad fd");
    CHECK(vzdump_qemu_compressor_pid(NULL) == -1, "pid of NULL");
    err = NULL;
    expect(vzdump_qemu_compressor_wait(NULL, 0, NULL, NULL, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "must not be NULL", "wait NULL");
    err = NULL;
    expect(vzdump_qemu_compressor_kill(NULL, &err), VZDUMP_QEMU_NULL_PARAMETER, &err,
           "must not be NULL", "kill NULL");
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    err = NULL;
    if (getenv("VZQ_UNDER_VALGRIND")) {
        /* valgrind runs posix_spawn's CLONE_VFORK child as a fork, so glibc cannot pass the
           exec error back: the failure shows when the child is reaped (exit 127). */
        expect(vzdump_qemu_compressor_spawn("nonexistent-compressor-xyz", out, 0, &comp, &wfd,
                                            &err),
               VZDUMP_QEMU_OK, &err, NULL, "missing compressor (valgrind)");
        close(wfd);
        expect(vzdump_qemu_compressor_wait(comp, 5000, NULL, NULL, &err), VZDUMP_QEMU_COMPRESSOR, &err,
               "wrong exit status 127", "missing compressor reaped (valgrind)");
        vzdump_qemu_compressor_free(comp);
        comp = NULL;
        wfd = -1;
    } else {
        expect(vzdump_qemu_compressor_spawn("nonexistent-compressor-xyz", out, 0, &comp, &wfd,
                                            &err),
               VZDUMP_QEMU_COMPRESSOR, &err,
               "fork compressor 'nonexistent-compressor-xyz' failed: No such file or directory",
               "missing compressor");
        CHECK(comp == NULL && wfd == -1, "outputs untouched on failure");
    }
    /* A forked child may neither wait for nor kill the parent's compressor, and its wait
     * does not make the handle look reaped: its kill still names the other process. */
    err = NULL;
    expect(vzdump_qemu_compressor_spawn("cat", out, 0, &comp, &wfd, &err), VZDUMP_QEMU_OK,
           &err, NULL, "compressor for fork");
    pid_t forked = fork();
    if (forked == 0) {
        char *e1 = NULL, *e2 = NULL;
        vzdump_qemu_result w = vzdump_qemu_compressor_wait(comp, 10, NULL, NULL, &e1);
        vzdump_qemu_result k = vzdump_qemu_compressor_kill(comp, &e2);
        int ok = w != VZDUMP_QEMU_OK && k != VZDUMP_QEMU_OK && e2 &&
                 !strstr(e2, "already waited") && strstr(e2, "process");
        _exit(ok ? 0 : 1);
    }
    int forked_status = 0;
    waitpid(forked, &forked_status, 0);
    CHECK(WIFEXITED(forked_status) && WEXITSTATUS(forked_status) == 0,
          "forked child: wait and kill refused, the handle not taken for reaped");
    close(wfd);
    expect(vzdump_qemu_compressor_wait(comp, 5000, NULL, NULL, &err), VZDUMP_QEMU_OK, &err,
           NULL, "the parent waits for its compressor");
    vzdump_qemu_compressor_free(comp);
    comp = NULL;
    wfd = -1;
    /* A failing compressor reports the seed's text. */
    err = NULL;
    expect(vzdump_qemu_compressor_spawn("sh -c 'exit 3'", out, 0, &comp, &wfd, &err),
           VZDUMP_QEMU_OK, &err, NULL, "spawn sh");
    close(wfd);
    err = NULL;
    expect(vzdump_qemu_compressor_wait(comp, 5000, NULL, NULL, &err), VZDUMP_QEMU_COMPRESSOR, &err,
           "sh -c 'exit 3' failed - wrong exit status 3", "exit 3");
    vzdump_qemu_compressor_free(comp);
    /* Kill: the error path reaps it; a second kill finds nothing to kill. */
    expect(vzdump_qemu_compressor_spawn("sleep 30", out, 0, &comp, &wfd, &err), VZDUMP_QEMU_OK,
           &err, NULL, "spawn sleep for kill");
    int victim = vzdump_qemu_compressor_pid(comp);
    expect(vzdump_qemu_compressor_kill(comp, &err), VZDUMP_QEMU_OK, &err, NULL, "kill");
    CHECK(kill(victim, 0) == -1 && errno == ESRCH, "killed compressor %d reaped", victim);
    CHECK(vzdump_qemu_compressor_pid(comp) == -1, "no pid after kill");
    expect(vzdump_qemu_compressor_kill(comp, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err,
           "already waited for or killed", "kill twice");
    vzdump_qemu_compressor_free(comp);
    close(wfd);
    /* Free of a running compressor kills and reaps it. */
    err = NULL;
    expect(vzdump_qemu_compressor_spawn("sleep 30", out, 0, &comp, &wfd, &err), VZDUMP_QEMU_OK,
           &err, NULL, "spawn sleep");
    int pid = vzdump_qemu_compressor_pid(comp);
    vzdump_qemu_compressor_free(comp);
    CHECK(kill(pid, 0) == -1 && errno == ESRCH, "compressor %d reaped on free", pid);
    close(wfd);
    close(out);

    vzdump_qemu_peer_free(peer);
    vzdump_qemu_peer_free(NULL);
    vzdump_qemu_conn_free(NULL);
    vzdump_qemu_poll_free(NULL);
    vzdump_qemu_compressor_free(NULL);
    vzdump_qemu_string_free(NULL);
}

/* Runs `command` with `args` (and `fd`; -1: none) on `conn`, which must succeed; the
   reply must contain `needle` unless it is NULL. */
static void execute_ok(vzdump_qemu_conn *conn, const char *command, const char *args, int fd,
                       const char *needle)
{
    char *err = NULL, *json = NULL;
    expect(vzdump_qemu_conn_execute(conn, command, args, fd, 0, &json, &err), VZDUMP_QEMU_OK,
           &err, NULL, command);
    if (needle)
        CHECK(json && strstr(json, needle), "%s %s", command, json ? json : "(null)");
    vzdump_qemu_string_free(json);
}

static void test_qemu(const char *sock)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL, *json = NULL;
    expect(vzdump_qemu_peer_new_path(sock, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "peer");
    err = NULL;
    expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err), VZDUMP_QEMU_OK, &err,
           NULL, "query-status");
    CHECK(json && strstr(json, "\"prelaunch\""), "status %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    err = NULL;
    expect(vzdump_qemu_command(peer, "query-status", "{", 0, &json, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "not valid JSON", "bad JSON");
    err = NULL;
    expect(vzdump_qemu_command(peer, "query-status", "[1]", 0, &json, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "must be a JSON object", "array args");
    err = NULL;
    expect(vzdump_qemu_command(peer, "nope", NULL, 0, &json, &err), VZDUMP_QEMU_COMMAND, &err,
           "command 'nope' failed - The command nope has not been found", "unknown command");
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0, "pipe");
    char *uuid = NULL;
    err = NULL;
    /* The seed's archive_vma dies with PVE::QMPClient's bare reason (`mux_input`: desc). */
    expect_exact(vzdump_qemu_backup_start_vma(peer, p[1], NULL, 0, &uuid, &err),
                 VZDUMP_QEMU_NO_PROXMOX_SUPPORT, &err, "The command backup has not been found",
                 "stock backup");
    expect_detail("\"class\":\"CommandNotFound\"", "stock backup class");
    err = NULL;
    expect(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_NO_PROXMOX_SUPPORT, &err,
           "command 'query-backup' failed - The command query-backup has not been found",
           "stock query-backup");

    vzdump_qemu_conn *conn = NULL;
    err = NULL;
    expect(vzdump_qemu_conn_open(peer, &conn, &err), VZDUMP_QEMU_OK, &err, NULL, "conn_open");
    err = NULL;
    expect(vzdump_qemu_conn_getfd(conn, "bk", p[1], &err), VZDUMP_QEMU_OK, &err, NULL, "getfd");
    err = NULL;
    expect(vzdump_qemu_conn_getfd(conn, "bk", 9999, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err,
           "9999", "getfd bad fd");
    execute_ok(conn, "closefd", "{\"fdname\":\"bk\"}", -1, NULL);
    execute_ok(conn, "add-fd", "{\"fdset-id\":3}", p[0], "\"fdset-id\":3");
    execute_ok(conn, "remove-fd", "{\"fdset-id\":3}", -1, NULL);
    execute_ok(conn, "cont", NULL, -1, NULL);
    execute_ok(conn, "stop", NULL, -1, NULL);
    err = NULL;
    expect(vzdump_qemu_conn_take_events(conn, &json, &err), VZDUMP_QEMU_OK, &err, NULL, "events");
    CHECK(json && strstr(json, "\"RESUME\"") && strstr(json, "\"STOP\""), "events %s",
          json ? json : "(null)");
    vzdump_qemu_string_free(json);
    vzdump_qemu_conn_free(conn);
    close(p[0]);
    close(p[1]);
    vzdump_qemu_peer_free(peer);
}

/* A scripted peer on `path`: greets, answers qmp_capabilities, then answers the next
   command with `reply` ("%s" in it becomes the command's id) and waits for the close; with
   a NULL `reply` it hangs up on that command instead. */
static pid_t scripted_peer(const char *path, const char *reply)
{
    int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 1) != 0)
        return -1;
    pid_t child = fork();
    if (child == 0) {
        int c = accept(ls, NULL, NULL);
        const char *greet = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 0, "
                            "\"major\": 10}, \"package\": \"\"}, \"capabilities\": []}}\r\n";
        (void)!write(c, greet, strlen(greet));
        char buf[1024], out[1200];
        for (int n = 0; n < 2; n++) {
            ssize_t got = read(c, buf, sizeof buf - 1);
            buf[got > 0 ? got : 0] = 0;
            /* The id value: from after "id": to the closing brace. */
            char *id = strstr(buf, "\"id\": ");
            id = id ? id + 6 : strstr(buf, "\"id\":") ? strstr(buf, "\"id\":") + 5 : NULL;
            char idv[64] = "0";
            if (id) {
                size_t len = strcspn(id, "}");
                snprintf(idv, sizeof idv, "%.*s", (int)(len < sizeof idv ? len : sizeof idv - 1),
                         id);
            }
            if (n == 0)
                snprintf(out, sizeof out, "{\"return\": {}, \"id\": %s}\r\n", idv);
            else if (reply)
                snprintf(out, sizeof out, reply, idv);
            else
                _exit(0);
            (void)!write(c, out, strlen(out));
        }
        (void)!read(c, buf, sizeof buf);
        _exit(0);
    }
    close(ls);
    return child;
}

/* A peer that greets, negotiates and hangs up: later calls get the sticky error. */
static void test_disconnected(const char *dir)
{
    char path[100];
    if (snprintf(path, sizeof path, "%s/hangup.sock", dir) >= (int)sizeof path) {
        CHECK(0, "socket path too long: %s", dir);
        return;
    }
    pid_t child = scripted_peer(path, NULL);
    CHECK(child > 0, "listen");
    if (child <= 0)
        return;
    vzdump_qemu_peer *peer = NULL;
    vzdump_qemu_conn *conn = NULL;
    char *err = NULL, *json = NULL;
    expect(vzdump_qemu_peer_new_path(path, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "peer");
    err = NULL;
    expect(vzdump_qemu_conn_open(peer, &conn, &err), VZDUMP_QEMU_OK, &err, NULL, "open fake");
    err = NULL;
    /* proxmox/qemu-server src/PVE/QMPClient.pm `mux_close`: "client closed connection". */
    expect(vzdump_qemu_conn_execute(conn, "x", NULL, -1, 0, &json, &err),
           VZDUMP_QEMU_DISCONNECTED, &err, "command 'x' failed - client closed connection",
           "hangup");
    expect_detail("\"cause\":\"closed\"", "hangup detail");
    err = NULL;
    expect(vzdump_qemu_conn_execute(conn, "y", NULL, -1, 0, &json, &err),
           VZDUMP_QEMU_DISCONNECTED, &err, "command 'y' failed - client closed connection",
           "sticky");
    vzdump_qemu_conn_free(conn);
    vzdump_qemu_peer_free(peer);
    waitpid(child, NULL, 0);
    unlink(path);
}

/* What qemu-server's PVE::QMPClient `mux_input` dies with for replies with a missing or a
   wrong id, in each era's words. */
static void test_reply_ids(const char *dir)
{
    char path[100];
    snprintf(path, sizeof path, "%s/ids.sock", dir);
    const char *cases[][3] = {
        {"{\"return\": {}}\r\n", "seed", "received responsed without command id"},
        {"{\"return\": {}}\r\n", "current", "received response without command id"},
        {"{\"return\": {}, \"id\": \"4711:1\"}\r\n", "current",
         "got wrong command id '4711:1' (expected "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pid_t fake = scripted_peer(path, cases[i][0]);
        CHECK(fake > 0, "scripted peer %zu", i);
        if (fake <= 0)
            continue;
        vzdump_qemu_peer *peer = NULL;
        char *err = NULL, *json = NULL;
        expect(vzdump_qemu_peer_new_path(path, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "peer");
        uint32_t style = strcmp(cases[i][1], "seed") == 0 ? VZDUMP_QEMU_STYLE_SEED
                                                          : VZDUMP_QEMU_STYLE_CURRENT;
        expect(vzdump_qemu_peer_set_style(peer, style, &err), VZDUMP_QEMU_OK, &err, NULL,
               "style");
        expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err),
               VZDUMP_QEMU_PROTOCOL, &err, cases[i][2], cases[i][2]);
        CHECK(json == NULL, "no output");
        vzdump_qemu_peer_free(peer);
        waitpid(fake, NULL, 0);
    }
    unlink(path);
}

/* A PBS job's parameters, with the closing brace left off for more. */
#define PBS_JOB                                                                          \
    "{\"backup-file\": \"root@pam@localhost:store\", \"backup-id\": \"100\", "            \
    "\"backup-time\": 1700000000, \"password\": \"c-secret-pw\""

static void test_sim_backup(const char *sock, const char *dir)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL, *uuid = NULL, *json = NULL;
    expect(vzdump_qemu_peer_new_path(sock, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "sim peer");
    err = NULL;
    expect(vzdump_qemu_peer_set_timeouts(peer, 2000, 2000, &err), VZDUMP_QEMU_OK, &err, NULL,
           "timeouts");

    char path[256];
    snprintf(path, sizeof path, "%s/c-api.vma.zst", dir);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    vzdump_qemu_compressor *comp = NULL;
    int32_t wfd = -1;
    err = NULL;
    expect(vzdump_qemu_compressor_spawn("zstd -q --threads=1", out, 0, &comp, &wfd, &err),
           VZDUMP_QEMU_OK, &err, NULL, "spawn zstd");
    close(out);
    CHECK(vzdump_qemu_compressor_pid(comp) > 0, "pid");
    err = NULL;
    expect(vzdump_qemu_backup_start_vma(peer, wfd, "{\"devlist\": \"drive-scsi0\", \"bwlimit\": 0}",
                                        0, &uuid, &err),
           VZDUMP_QEMU_OK, &err, NULL, "start vma");
    close(wfd);
    CHECK(uuid && strlen(uuid) == 36, "uuid %s", uuid ? uuid : "(null)");

    vzdump_qemu_poll *poll = NULL;
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_SEED, 0, &poll, &err),
           VZDUMP_QEMU_OK, &err, NULL, "poll_new");
    struct log_state st = {0};
    err = NULL;
    expect(vzdump_qemu_poll_run(poll, log_cb, NULL, &st, true, &json, &err), VZDUMP_QEMU_OK,
           &err, NULL, "poll_run");
    CHECK(json && strstr(json, "\"percent\":100"), "progress %s", json ? json : "(null)");
    CHECK(st.status_lines >= 1, "status lines %d", st.status_lines);
    CHECK(strstr(st.last, "0 transferred ") != NULL, "summary line '%s'", st.last);
    vzdump_qemu_string_free(json);
    json = NULL;
    vzdump_qemu_poll_free(poll);
    err = NULL;
    expect(vzdump_qemu_compressor_wait(comp, 0, NULL, NULL, &err), VZDUMP_QEMU_OK, &err, NULL, "zstd exit");
    vzdump_qemu_compressor_free(comp);
    err = NULL;
    expect(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_OK, &err, NULL, "query");
    CHECK(json && strstr(json, "\"status\":\"done\"") && strstr(json, uuid), "done %s",
          json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;

    /* A poll for another uuid fails with the seed's text. */
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, "00000000-0000-0000-0000-000000000000",
                                VZDUMP_QEMU_STYLE_CURRENT, 0, &poll, &err),
           VZDUMP_QEMU_OK, &err, NULL, "poll_new other");
    err = NULL;
    expect(vzdump_qemu_poll_run(poll, log_cb, NULL, &st, false, NULL, &err), VZDUMP_QEMU_POLL,
           &err, "got unexpected uuid", "wrong uuid");
    vzdump_qemu_poll_free(poll);
    vzdump_qemu_string_free(uuid);
    uuid = NULL;

    /* Cancel through the cancel check, with cancel_on_error: QEMU reports backup canceled. */
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    err = NULL;
    expect(vzdump_qemu_backup_start_vma(peer, fd, "{\"bwlimit\": 1024}", 0, &uuid, &err),
           VZDUMP_QEMU_OK, &err, NULL, "start slow");
    close(fd);
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_SEED, 0, &poll, &err),
           VZDUMP_QEMU_OK, &err, NULL, "poll_new slow");
    struct log_state st2 = {0};
    err = NULL;
    expect(vzdump_qemu_poll_run(poll, log_cb, cancel_now, &st2, true, NULL, &err),
           VZDUMP_QEMU_CANCELLED, &err, "cancelled", "cancel check");
    CHECK(st2.cancel_calls >= 2 && strstr(st2.last, "aborting backup job"),
          "cancel asked %d times, last line '%s'", st2.cancel_calls, st2.last);
    vzdump_qemu_poll_free(poll);
    err = NULL;
    expect(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_OK, &err, NULL, "query 2");
    CHECK(json && strstr(json, "backup canceled"), "canceled %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    err = NULL;
    expect(vzdump_qemu_backup_cancel(peer, &err), VZDUMP_QEMU_OK, &err, NULL, "cancel again");
    vzdump_qemu_string_free(uuid);
    uuid = NULL;

    /* A job already done whose log callback stops on the final line, with cancel_on_error:
     * CANCELLED, but the good backup is not cancelled (QEMU would turn it into an error). */
    fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    expect(vzdump_qemu_backup_start_vma(peer, fd, NULL, 0, &uuid, &err), VZDUMP_QEMU_OK, &err,
           NULL, "start fast");
    close(fd);
    for (int i = 0; i < 200; i++) {
        expect(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_OK, &err, NULL,
               "query until done");
        bool done = json && strstr(json, "\"status\":\"done\"") != NULL;
        bool active = json && strstr(json, "\"status\":\"active\"") != NULL;
        vzdump_qemu_string_free(json);
        json = NULL;
        if (done || !active)
            break;
        usleep(50000);
    }
    expect(vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_SEED, 0, &poll, &err),
           VZDUMP_QEMU_OK, &err, NULL, "poll_new done");
    struct log_state st4 = {.stop_after = 1};
    expect(vzdump_qemu_poll_run(poll, log_cb, NULL, &st4, true, NULL, &err),
           VZDUMP_QEMU_CANCELLED, &err, "cancelled", "log stops on the final line");
    CHECK(strstr(st4.last, "aborting backup job") == NULL, "done job: no abort ('%s')", st4.last);
    vzdump_qemu_poll_free(poll);
    expect(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_OK, &err, NULL, "query done");
    CHECK(json && strstr(json, "\"status\":\"done\"") && !strstr(json, "canceled"),
          "done job stays done: %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    vzdump_qemu_string_free(uuid);
    uuid = NULL;

    const char *refused[][3] = {
        {"{\"backup-file\": \"root@pam@localhost:store\"}", "missing parameter 'backup-id'",
         "pbs missing id"},
        {PBS_JOB ", \"bogus\": 1}", "unknown parameter 'bogus'", "pbs bogus"},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        err = NULL;
        expect(vzdump_qemu_backup_start_pbs(peer, refused[i][0], 0, &uuid, &err),
               VZDUMP_QEMU_INVALID_PARAMETER, &err, refused[i][1], refused[i][2]);
    }
    err = NULL;
    expect(vzdump_qemu_backup_start_pbs(peer, PBS_JOB "}", 0, &uuid, &err), VZDUMP_QEMU_OK, &err,
           NULL, "pbs start");
    CHECK(uuid && strlen(uuid) == 36, "pbs uuid");
    err = NULL;
    expect(vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_CURRENT, 0, &poll, &err),
           VZDUMP_QEMU_OK, &err, NULL, "poll pbs");
    struct log_state st3 = {.stop_after = 1};
    err = NULL;
    vzdump_qemu_result r = vzdump_qemu_poll_run(poll, log_cb, NULL, &st3, false, NULL, &err);
    /* Either the callback stopped it, or the job was done before the first line. */
    CHECK(r == VZDUMP_QEMU_CANCELLED || r == VZDUMP_QEMU_OK, "pbs poll %u %s", r, err ? err : "");
    vzdump_qemu_string_free(err);
    err = NULL;
    vzdump_qemu_poll_free(poll);
    vzdump_qemu_string_free(uuid);
    uuid = NULL;

    /* Today's loop with the query-proxmox-support reply: the dirty-bitmap lines first
       (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm `$query_backup_status_loop`). */
    const char *pbs_bitmap = "{\"backup-file\": \"root@pam@localhost:store\", \"backup-id\": "
                             "\"101\", \"backup-time\": 1700000000, \"password\": \"pw\", "
                             "\"use-dirty-bitmap\": true}";
    char *support = NULL;
    expect(vzdump_qemu_command(peer, "query-proxmox-support", NULL, 0, &support, &err),
           VZDUMP_QEMU_OK, &err, NULL, "query-proxmox-support");
    for (int round = 0; round < 2; round++) {
        expect(vzdump_qemu_backup_start_pbs(peer, pbs_bitmap, 0, &uuid, &err), VZDUMP_QEMU_OK,
               &err, NULL, "pbs with bitmap");
        expect(vzdump_qemu_poll_new(peer, uuid, VZDUMP_QEMU_STYLE_CURRENT, 0, &poll, &err),
               VZDUMP_QEMU_OK, &err, NULL, "poll bitmap");
        expect(vzdump_qemu_poll_set_qemu_support(poll, NULL, false, &err),
               VZDUMP_QEMU_NULL_PARAMETER, &err, "support_json must not be NULL", "support NULL");
        expect(vzdump_qemu_poll_set_qemu_support(poll, support, false, &err), VZDUMP_QEMU_OK,
               &err, NULL, "set support");
        struct log_state bm = {0};
        expect(vzdump_qemu_poll_run(poll, log_cb, NULL, &bm, false, &json, &err),
               VZDUMP_QEMU_OK, &err, NULL, "poll bitmap run");
        const char *want = round == 0 ? "0 scsi0: dirty-bitmap status: created new"
                                      : "0 scsi0: dirty-bitmap status: OK (";
        CHECK(strncmp(bm.first, want, strlen(want)) == 0, "round %d first line '%s'", round,
              bm.first);
        CHECK(json && strstr(json, "\"total\":16777216"), "bitmap result %s",
              json ? json : "(null)");
        vzdump_qemu_string_free(json);
        json = NULL;
        vzdump_qemu_poll_free(poll);
        vzdump_qemu_string_free(uuid);
        uuid = NULL;
    }
    vzdump_qemu_string_free(support);
    vzdump_qemu_peer_free(peer);
}

/* Starts real QEMU as VM `vmid` of run directory `dir` (socket and -pidfile there), as a
   direct child, and waits for the pid file and for the socket to accept (QEMU creates the
   socket file before it listens). Returns its pid, or -1. */
static pid_t start_vm(const char *dir, unsigned vmid)
{
    char qmp[300], pidfile[300];
    snprintf(qmp, sizeof qmp, "unix:%s/%u.qmp,server=on,wait=off", dir, vmid);
    snprintf(pidfile, sizeof pidfile, "%s/%u.pid", dir, vmid);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, 1);
        execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine", "none", "-nodefaults",
               "-display", "none", "-S", "-qmp", qmp, "-pidfile", pidfile, (char *)NULL);
        _exit(127);
    }
    char sock[300];
    snprintf(sock, sizeof sock, "%s/%u.qmp", dir, vmid);
    for (int i = 0; i < 400; i++) {
        if (access(pidfile, F_OK) == 0 && accepts(sock))
            return pid;
        usleep(25000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

/* qemu-server's texts for a VM given by id, each made by real QEMU 10. */
static void test_vm_texts(const char *work)
{
    char dir[256], sock[300], moved[300];
    snprintf(dir, sizeof dir, "%s/vm-run-%d", work, (int)getpid());
    CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s", dir);
    snprintf(sock, sizeof sock, "%s/100.qmp", dir);
    snprintf(moved, sizeof moved, "%s/moved.qmp", dir);
    pid_t qemu = start_vm(dir, 100);
    CHECK(qemu > 0, "QEMU started");
    if (qemu <= 0)
        return;
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL, *json = NULL;
    expect(vzdump_qemu_peer_new_vmid(100, dir, &peer, &err), VZDUMP_QEMU_OK, &err, NULL, "peer");
    expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err), VZDUMP_QEMU_OK, &err,
           NULL, "running VM answers");
    vzdump_qemu_string_free(json);
    json = NULL;
    /* proxmox/qemu-server src/PVE/QMPClient.pm `cmd` with `mux_input`'s desc. */
    expect_exact(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_NO_PROXMOX_SUPPORT,
                 &err,
                 "VM 100 qmp command 'query-backup' failed - The command query-backup has not "
                 "been found",
                 "stock query-backup of a VM");
    expect_detail("\"stage\":\"command\"", "query-backup stage");

    /* A stopped QEMU does not greet: `mux_timeout`'s "got timeout", in the handshake. */
    expect(vzdump_qemu_peer_set_timeouts(peer, 0, 300, &err), VZDUMP_QEMU_OK, &err, NULL,
           "short handshake");
    kill(qemu, SIGSTOP);
    expect_exact(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err),
                 VZDUMP_QEMU_HANDSHAKE, &err,
                 "VM 100 qmp command 'query-status' failed - got timeout", "silent QEMU");
    expect_detail("\"timeout_ms\":300", "timeout detail");
    kill(qemu, SIGCONT);

    /* The agent: today's qmp_cmd tests the agent's socket, the seed's the monitor's. */
    expect(vzdump_qemu_peer_set_style(peer, VZDUMP_QEMU_STYLE_CURRENT, &err), VZDUMP_QEMU_OK,
           &err, NULL, "style current");
    expect_exact(vzdump_qemu_qga_command(peer, "guest-ping", NULL, 0, &json, &err),
                 VZDUMP_QEMU_NO_SOCKET, &err, "unable to open monitor socket",
                 "no agent socket (current)");
    expect(vzdump_qemu_peer_set_style(peer, VZDUMP_QEMU_STYLE_SEED, &err), VZDUMP_QEMU_OK, &err,
           NULL, "style seed");
    expect_exact(vzdump_qemu_qga_command(peer, "guest-ping", NULL, 0, &json, &err),
                 VZDUMP_QEMU_CONNECT, &err,
                 "VM 100 qmp command 'guest-ping' failed - unable to connect to VM 100 qga "
                 "socket - No such file or directory",
                 "no agent socket (seed)");

    /* The VM runs, but its socket path holds a socket nobody listens on. */
    CHECK(rename(sock, moved) == 0, "move socket");
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CHECK(strlen(sock) < sizeof sa.sun_path, "socket path fits: %s", sock);
    memcpy(sa.sun_path, sock, strlen(sock) < sizeof sa.sun_path ? strlen(sock) + 1 : 0);
    CHECK(bind(stale, (struct sockaddr *)&sa, sizeof sa) == 0, "bind stale socket");
    close(stale);
    /* `$open_connection`: "unable to connect to $peer_name $sotype socket - $!". */
    expect_exact(vzdump_qemu_backup_cancel(peer, &err), VZDUMP_QEMU_CONNECT, &err,
                 "VM 100 qmp command 'backup-cancel' failed - unable to connect to VM 100 qmp "
                 "socket - Connection refused",
                 "refused");
    expect_detail("\"errno\":111", "refused errno");

    /* Monitor.pm `qmp_cmd`: -e $sname, else "unable to open monitor socket". */
    unlink(sock);
    expect_exact(vzdump_qemu_backup_cancel(peer, &err), VZDUMP_QEMU_NO_SOCKET, &err,
                 "unable to open monitor socket", "removed socket");

    /* Killed and reaped: a stale pid file. */
    kill(qemu, SIGKILL);
    waitpid(qemu, NULL, 0);
    CHECK(rename(moved, sock) == 0, "socket file back");
    expect_exact(vzdump_qemu_backup_query(peer, &json, &err), VZDUMP_QEMU_NOT_RUNNING, &err,
                 "VM 100 not running", "stale pid file");
    CHECK(json == NULL, "no output");
    vzdump_qemu_peer_free(peer);
}

static int cancel_calls;
static bool cancel_answer;

static bool count_cancel(void *userdata)
{
    (void)userdata;
    cancel_calls++;
    return cancel_answer;
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* SIGALRM every 200 ms (0: stop), so a wait always sees one while it blocks. */
static void alarms(int on)
{
    struct itimerval it = {{0, on ? 200000 : 0}, {0, on ? 200000 : 0}};
    setitimer(ITIMER_REAL, &it, NULL);
}

/* A signal during a compressor wait: with a cancel check it is asked and the wait goes
   on (here to its timeout) unless it says stop. */
static void test_wait_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm; /* no SA_RESTART: waits see EINTR, as under Perl */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    int out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    vzdump_qemu_compressor *comp = NULL;
    int32_t wfd = -1;
    char *err = NULL;
    expect(vzdump_qemu_compressor_spawn("sleep 30", out, 0, &comp, &wfd, &err), VZDUMP_QEMU_OK,
           &err, NULL, "spawn sleep for signals");
    cancel_calls = 0;
    cancel_answer = false;
    alarms(1);
    expect(vzdump_qemu_compressor_wait(comp, 1500, count_cancel, NULL, &err),
           VZDUMP_QEMU_TIMEOUT, &err, "did not exit within", "signals, go on, time out");
    alarms(0);
    CHECK(cancel_calls >= 1, "cancel check asked at the signals, %d", cancel_calls);
    cancel_calls = 0;
    cancel_answer = true;
    alarms(1);
    expect(vzdump_qemu_compressor_wait(comp, 20000, count_cancel, NULL, &err),
           VZDUMP_QEMU_INTERRUPTED, &err, "interrupted by signal", "signal, stop");
    CHECK(cancel_calls == 1, "cancel check said stop, %d", cancel_calls);
    expect(vzdump_qemu_compressor_wait(comp, 20000, NULL, NULL, &err), VZDUMP_QEMU_INTERRUPTED,
           &err, "interrupted by signal", "signal without a cancel check");
    alarms(0);
    CHECK(vzdump_qemu_compressor_pid(comp) > 0, "still running after the signals");
    vzdump_qemu_compressor_free(comp);
    close(wfd);
    close(out);
    signal(SIGALRM, SIG_DFL);
}

/* The guest agent: real qemu-ga on the host, its freeze commands blocked. */
static void test_qga(const char *agent_sock)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL, *json = NULL;
    bool frozen = false;
    expect(vzdump_qemu_peer_new_path("/nonexistent.qmp", &peer, &err), VZDUMP_QEMU_OK, &err,
           NULL, "peer");
    expect(vzdump_qemu_qga_command(peer, "guest-ping", NULL, 0, &json, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "no guest agent socket", "no agent set");
    expect(vzdump_qemu_peer_set_agent_path(peer, agent_sock, &err), VZDUMP_QEMU_OK, &err, NULL,
           "set agent");
    expect(vzdump_qemu_qga_command(peer, "guest-ping", NULL, 0, &json, &err), VZDUMP_QEMU_OK,
           &err, NULL, "guest-ping");
    CHECK(json && strcmp(json, "{}") == 0, "ping %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    expect(vzdump_qemu_qga_command(peer, "guest-fsfreeze-status", NULL, 0, &json, &err),
           VZDUMP_QEMU_OK, &err, NULL, "freeze status");
    CHECK(json && strcmp(json, "\"thawed\"") == 0, "status %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    expect(vzdump_qemu_qga_fs_freeze(peer, log_cb, NULL, NULL, NULL, &err), VZDUMP_QEMU_NULL_PARAMETER,
           &err, "out_frozen", "freeze NULL out");
    struct log_state st = {0};
    expect(vzdump_qemu_qga_fs_freeze(peer, log_cb, NULL, &st, &frozen, &err), VZDUMP_QEMU_OK, &err,
           NULL, "freeze");
    /* The blocked freeze fails inside the agent: logged, and a thaw is still due. */
    CHECK(frozen, "freeze reports a thaw is due");
    CHECK(st.lines == 2 && strncmp(st.last, "2 ", 2) == 0 && strstr(st.last, "has been disabled"),
          "freeze lines %d, last '%s'", st.lines, st.last);
    struct log_state th = {0};
    expect(vzdump_qemu_qga_fs_thaw(peer, log_cb, &th, &err), VZDUMP_QEMU_OK, &err, NULL, "thaw");
    CHECK(th.lines == 2 && strncmp(th.last, "2 ", 2) == 0, "thaw lines %d, last '%s'", th.lines,
          th.last);
    /* A caller that stops meanwhile: the issued freeze is thawed again, quietly. */
    struct log_state stopped = {0};
    frozen = false;
    cancel_calls = 0;
    cancel_answer = true;
    expect(vzdump_qemu_qga_fs_freeze(peer, log_cb, count_cancel, &stopped, &frozen, &err),
           VZDUMP_QEMU_CANCELLED, &err, "cancelled", "freeze, then stop");
    CHECK(!frozen, "no output written on cancel");
    CHECK(stopped.lines == 2, "freeze lines only, no thaw line: %d", stopped.lines);
    CHECK(cancel_calls == 1, "asked once after the freeze: %d", cancel_calls);
    vzdump_qemu_peer_free(peer);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s SIM_SOCKET QEMU_SOCKET WORKDIR QGA_SOCKET\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    test_bad_input();
    test_qemu(argv[2]);
    test_disconnected(argv[3]);
    test_vm_texts(argv[3]);
    test_reply_ids(argv[3]);
    test_wait_signals();
    test_sim_backup(argv[1], argv[3]);
    test_qga(argv[4]);
    return report("test_api");
}
