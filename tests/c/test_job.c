/*
 * The backup job through the C API (vzdump_qemu_job_*) against pve-qmp-sim as VM 100 of
 * a run directory (its pid file passes qemu-server's running check): a running VM, a VM
 * the start callback starts paused and the stop callback stops, a failing start, a failing
 * job, a refused start, a cancel, a scripted agent that freezes, real qemu-ga refusing the
 * freeze (its commands blocked) and an agent that is not there, stop mode, a signal during
 * the start, a peer's signal check, the fault matrix, PBS with and without a fingerprint,
 * the power-state steps and the abort one by one, and every bad input. The lines pinned are
 * qemu-server's
 * (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm: archive_vma, archive_pbs,
 * qga_fs_freeze, qga_fs_thaw, enforce_vm_running_for_backup, resume_vm_after_job_start,
 * restore_vm_power_state, mon_backup_cancel).
 * Usage: test_job SIM_BINARY WORKDIR (writes WORKDIR/job-running/out.vma.zst); qemu-ga's
 * blocked commands come from $QGA_BLOCKED.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define MAX_LINES 256

static const char *sim_binary;

/* What the callbacks saw. */
struct host {
    char *lines[MAX_LINES];
    int count;
    const char *dir;       /* run directory of VM 100 */
    pid_t vm;              /* a simulator the start callback started */
    int stops;
    const char *fail_start;
    const char *cancel_on; /* cancel once a line contains this */
    int cancel;
    int on_signal;         /* cancel once a signal arrived (as a C caller's EINTR check) */
    const char *arm_on;    /* with on_signal: count only signals after a line containing this */
    int armed, signals_at_arm;
};

static volatile sig_atomic_t signals_seen;

static void on_alarm(int sig)
{
    (void)sig;
    signals_seen++;
}

static void host_free(struct host *h)
{
    for (int i = 0; i < h->count; i++)
        free(h->lines[i]);
    h->count = 0;
}

static uint32_t on_log(void *userdata, uint32_t level, const char *line)
{
    struct host *h = userdata;
    const char *prefix = level == VZDUMP_QEMU_LOG_ERR    ? "ERROR"
                         : level == VZDUMP_QEMU_LOG_WARN ? "WARN"
                                                         : "INFO";
    if (h->cancel_on && strstr(line, h->cancel_on))
        h->cancel = 1;
    if (h->arm_on && !h->armed && strstr(line, h->arm_on)) {
        h->armed = 1;
        h->signals_at_arm = signals_seen;
    }
    if (h->count < MAX_LINES && asprintf(&h->lines[h->count], "%s: %s", prefix, line) >= 0)
        h->count++;
    return 0;
}

static bool on_cancel(void *userdata)
{
    const struct host *h = userdata;
    if (h->arm_on && !h->armed)
        return h->cancel;
    return h->cancel || (h->on_signal && signals_seen > h->signals_at_arm);
}

/* The lines that are not progress lines, joined by '|'. */
static void flow(const struct host *h, char *buf, size_t len)
{
    buf[0] = 0;
    for (int i = 0; i < h->count; i++) {
        const char *l = h->lines[i];
        if (strstr(l, "INFO: status: ") == l || strstr(l, "INFO: transferred ") == l ||
            strstr(l, "INFO: backup is sparse") == l)
            continue;
        if (buf[0])
            strncat(buf, "|", len - strlen(buf) - 1);
        strncat(buf, l, len - strlen(buf) - 1);
    }
}

/* pve-qmp-sim as VM 100 of `dir` (socket 100.qmp, pid file 100.pid), once its pid file
 * exists; `extra` is one more option and its value, or NULL. */
static pid_t start_sim(const char *dir, int prelaunch, const char *extra, const char *value)
{
    char socket[512], pidfile[512], record[512];
    snprintf(socket, sizeof socket, "%s/100.qmp", dir);
    snprintf(pidfile, sizeof pidfile, "%s/100.pid", dir);
    snprintf(record, sizeof record, "%s/requests.jsonl", dir);
    pid_t pid = fork();
    if (pid == 0) {
        const char *argv[16] = {sim_binary, "--socket", socket, "--pidfile", pidfile,
                                "--gen-disk", "drive-scsi0=16M", "--rate", "64M",
                                "--record", record};
        int n = 11;
        if (prelaunch) {
            argv[n++] = "--state";
            argv[n++] = "prelaunch";
        }
        if (extra) {
            argv[n++] = extra;
            argv[n++] = value;
        }
        argv[n] = NULL;
        execv(sim_binary, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        struct stat st;
        if (stat(pidfile, &st) == 0)
            return pid;
        usleep(10000);
    }
    fprintf(stderr, "simulator in %s did not come up\n", dir);
    exit(2);
}

static void stop_sim(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* Real qemu-ga as VM 100's agent (`dir`/100.qga), every command of $QGA_BLOCKED refused. */
static pid_t start_qga(const char *dir)
{
    char socket[512], state[512], pidfile[512], logfile[512];
    const char *blocked = getenv("QGA_BLOCKED");
    if (!blocked) {
        fprintf(stderr, "QGA_BLOCKED is not set: qemu-ga must not freeze this host\n");
        exit(2);
    }
    snprintf(socket, sizeof socket, "%s/100.qga", dir);
    snprintf(state, sizeof state, "%s/qga-state", dir);
    snprintf(pidfile, sizeof pidfile, "%s/qga.pid", dir);
    snprintf(logfile, sizeof logfile, "%s/qga.log", dir);
    mkdir(state, 0700);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("qemu-ga", "qemu-ga", "-m", "unix-listen", "-p", socket, "-t", state, "-f",
               pidfile, "-l", logfile, "-b", blocked, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        if (accepts(socket))
            return pid;
        usleep(10000);
    }
    fprintf(stderr, "qemu-ga in %s did not come up\n", dir);
    exit(2);
}

static uint32_t on_start(void *userdata, char *error_buf, size_t error_len)
{
    struct host *h = userdata;
    if (h->fail_start) {
        snprintf(error_buf, error_len, "%s", h->fail_start);
        return 1;
    }
    h->vm = start_sim(h->dir, 1, NULL, NULL);
    return 0;
}

static uint32_t on_stop(void *userdata, char *error_buf, size_t error_len)
{
    struct host *h = userdata;
    (void)error_buf;
    (void)error_len;
    h->stops++;
    if (h->vm > 0)
        stop_sim(h->vm);
    h->vm = 0;
    return 0;
}

static char *make_dir(const char *work, const char *name)
{
    char *dir;
    if (asprintf(&dir, "%s/%s", work, name) < 0 || mkdir(dir, 0700) != 0) {
        perror(name);
        exit(2);
    }
    char conf[600];
    snprintf(conf, sizeof conf, "%s/qemu-server.conf", dir);
    FILE *f = fopen(conf, "w");
    fputs("name: c-test\n", f);
    fclose(f);
    return dir;
}

/* A VMA job of VM 100 in `dir` writing `dir`/out.vma.zst through zstd. */
static vzdump_qemu_job *vma_job(vzdump_qemu_peer *peer, const char *dir, const char *task_extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"task\": {\"disks\": [{\"type\": \"file\", \"qmdevice\": \"drive-scsi0\"}],"
             " \"config-file\": \"%s/qemu-server.conf\"%s},"
             " \"output-file\": \"%s/out.vma.zst\", \"compressor\": \"zstd -q\"}",
             dir, task_extra, dir);
    vzdump_qemu_job *job = NULL;
    char *err = NULL;
    expect(vzdump_qemu_job_new_vma(peer, json, &job, &err), VZDUMP_QEMU_OK, &err, NULL,
           "job_new_vma");
    return job;
}

static vzdump_qemu_peer *vm_peer(const char *dir, uint32_t style)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    expect(vzdump_qemu_peer_new_vmid(100, dir, &peer, &err), VZDUMP_QEMU_OK, &err, NULL,
           "peer_new_vmid");
    expect(vzdump_qemu_peer_set_style(peer, style, &err), VZDUMP_QEMU_OK, &err, NULL,
           "peer_set_style");
    return peer;
}

static vzdump_qemu_result run(vzdump_qemu_job *job, struct host *h, char **err)
{
    return vzdump_qemu_job_run(job, on_log, on_start, on_stop, on_cancel, h, err);
}

/* The uuid between the quotes of the "started backup task" line (empty if none). */
static void started_uuid(const struct host *h, char *uuid, size_t len)
{
    uuid[0] = 0;
    for (int i = 0; i < h->count; i++)
        if (sscanf(h->lines[i], "INFO: started backup task '%36[^']'", uuid) == 1 && len > 36)
            return;
}

/* Ends a case: frees what it made and stops its simulator (if `sim` > 0). */
static void end_case(struct host *h, vzdump_qemu_job *job, vzdump_qemu_peer *peer, pid_t sim,
                     char *dir)
{
    host_free(h);
    vzdump_qemu_job_free(job);
    vzdump_qemu_peer_free(peer);
    if (sim > 0)
        stop_sim(sim);
    free(dir);
}

static void running_vm(const char *work)
{
    char *dir = make_dir(work, "job-running");
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = vma_job(peer, dir, "");
    struct host h = {.dir = dir};
    char *err = NULL, *json = NULL, got[4096], want[512], uuid[64];

    expect(vzdump_qemu_job_result_json(job, &json, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err,
           "has not run", "result before run");
    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run");
    started_uuid(&h, uuid, sizeof uuid);
    flow(&h, got, sizeof got);
    snprintf(want, sizeof want, "INFO: started backup task '%s'|INFO: resuming VM again", uuid);
    CHECK(strcmp(got, want) == 0, "running: lines '%s', want '%s'", got, want);
    CHECK(h.count > 2, "running: status lines logged");
    expect(vzdump_qemu_job_result_json(job, &json, &err), VZDUMP_QEMU_OK, &err, NULL,
           "result_json");
    CHECK(json && strstr(json, uuid) && strstr(json, "\"transferred\":16777216"),
          "running: record %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    end_case(&h, job, peer, sim, dir);
}

static void started_for_the_backup(const char *work)
{
    char *dir = make_dir(work, "job-stopped");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_CURRENT);
    vzdump_qemu_job *job = vma_job(peer, dir, ", \"vm-was-running\": 0, \"agent\": 1");
    struct host h = {.dir = dir};
    char *err = NULL, got[4096], want[512], uuid[64];

    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run stopped VM");
    started_uuid(&h, uuid, sizeof uuid);
    flow(&h, got, sizeof got);
    /* The first lines, and the last after today's progress lines. */
    snprintf(want, sizeof want,
             "INFO: starting kvm to execute backup task|INFO: started backup task '%s'", uuid);
    CHECK(strncmp(got, want, strlen(want)) == 0, "stopped VM: lines '%s'", got);
    CHECK(h.count > 0 && strcmp(h.lines[h.count - 1], "INFO: stopping kvm after backup task") == 0,
          "stopped VM: last line '%s'", h.count ? h.lines[h.count - 1] : "-");
    CHECK(h.stops == 1, "stopped VM: stop callback called %d times", h.stops);
    end_case(&h, job, peer, 0, dir);
}

static void failing_start(const char *work)
{
    char *dir = make_dir(work, "job-nostart");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = vma_job(peer, dir, "");
    struct host h = {.dir = dir, .fail_start = "qm start 100 failed: exit code 255"};
    char *err = NULL;

    expect_exact(run(job, &h, &err), VZDUMP_QEMU_BACKUP, &err,
                 "qm start 100 failed: exit code 255", "failing start");
    CHECK(h.count == 1 && strcmp(h.lines[0], "INFO: starting kvm to execute backup task") == 0,
          "failing start: %d lines", h.count);
    end_case(&h, job, peer, 0, dir);
}

static void failing_job_and_cancel(const char *work)
{
    char *dir = make_dir(work, "job-error");
    pid_t sim = start_sim(dir, 0, "--fault-error-at", "50");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = vma_job(peer, dir, "");
    struct host h = {.dir = dir};
    char *err = NULL, got[4096], want[512], uuid[64];

    /* The job's errmsg, as the seed's loop dies with it. */
    expect_exact(run(job, &h, &err), VZDUMP_QEMU_POLL, &err,
                 "job failed with err -5 - Input/output error", "failing job");
    started_uuid(&h, uuid, sizeof uuid);
    flow(&h, got, sizeof got);
    snprintf(want, sizeof want,
             "INFO: started backup task '%s'|INFO: resuming VM again|"
             "ERROR: job failed with err -5 - Input/output error|INFO: aborting backup job",
             uuid);
    CHECK(strcmp(got, want) == 0, "failing job: lines '%s'", got);
    host_free(&h);
    vzdump_qemu_job_free(job);
    stop_sim(sim);

    sim = start_sim(dir, 0, "--rate", "8M");
    job = vma_job(peer, dir, "");
    h = (struct host){.dir = dir, .cancel_on = "resuming VM again"};
    expect_exact(run(job, &h, &err), VZDUMP_QEMU_INTERRUPTED, &err, "interrupted by signal",
                 "cancelled job");
    flow(&h, got, sizeof got);
    CHECK(strstr(got, "ERROR: interrupted by signal|INFO: aborting backup job") != NULL,
          "cancelled job: lines '%s'", got);
    end_case(&h, job, peer, sim, dir);
}

/* The agent configured: real qemu-ga refusing both freeze commands (each failure logged,
 * the thaw still sent), then an agent that is not there (the seed's skip line). */
static void agent(const char *work)
{
    char *dir = make_dir(work, "job-agent");
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    pid_t qga = start_qga(dir);
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = vma_job(peer, dir, ", \"agent\": 1, \"vm-was-running\": 1");
    struct host h = {.dir = dir};
    char *err = NULL, got[4096], want[512], uuid[64];

    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run with a refusing agent");
    flow(&h, got, sizeof got);
    CHECK(h.count > 5, "refusing agent: %d lines", h.count);
    if (h.count > 5) {
        CHECK(strcmp(h.lines[0], "INFO: issuing guest-agent 'fs-freeze' command") == 0,
              "refusing agent: first line '%s'", h.lines[0]);
        CHECK(strncmp(h.lines[1], "ERROR: ", 7) == 0 &&
                  strstr(h.lines[1], "guest-fsfreeze-freeze") && strstr(h.lines[1], "disabled"),
              "refusing agent: the freeze's failure '%s'", h.lines[1]);
        CHECK(strcmp(h.lines[2], "INFO: issuing guest-agent 'fs-thaw' command") == 0,
              "refusing agent: the thaw follows '%s'", h.lines[2]);
        CHECK(strncmp(h.lines[3], "ERROR: ", 7) == 0 &&
                  strstr(h.lines[3], "guest-fsfreeze-thaw") && strstr(h.lines[3], "disabled"),
              "refusing agent: the thaw's failure '%s'", h.lines[3]);
        started_uuid(&h, uuid, sizeof uuid);
        snprintf(want, sizeof want, "INFO: started backup task '%s'", uuid);
        CHECK(uuid[0] && strcmp(h.lines[4], want) == 0, "refusing agent: then '%s'",
              h.lines[4]);
    }
    host_free(&h);
    vzdump_qemu_job_free(job);
    stop_sim(qga);

    job = vma_job(peer, dir, ", \"agent\": 1, \"vm-was-running\": 1");
    h = (struct host){.dir = dir};
    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run without an agent");
    started_uuid(&h, uuid, sizeof uuid);
    flow(&h, got, sizeof got);
    snprintf(want, sizeof want,
             "INFO: skipping guest-agent 'fs-freeze', agent configured but not running?|"
             "INFO: started backup task '%s'|INFO: resuming VM again",
             uuid);
    CHECK(strcmp(got, want) == 0, "no agent: lines '%s'", got);
    end_case(&h, job, peer, sim, dir);
}

/* Stop mode: no freeze, and the downtime named when the VM is resumed. */
static void stop_mode(const char *work)
{
    char *dir = make_dir(work, "job-stop-mode");
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    char extra[256];
    snprintf(extra, sizeof extra,
             ", \"mode\": \"stop\", \"agent\": 1, \"vm-was-running\": 1, \"vm-stop-time\": %ld",
             (long)time(NULL) - 7);
    vzdump_qemu_job *job = vma_job(peer, dir, extra);
    struct host h = {.dir = dir};
    char *err = NULL, got[4096];
    int delay = -1;

    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run in stop mode");
    flow(&h, got, sizeof got);
    CHECK(strncmp(got, "INFO: started backup task '", 27) == 0, "stop mode: no freeze '%s'",
          got);
    const char *resumed = strstr(got, "|INFO: resuming VM again after ");
    CHECK(resumed && sscanf(resumed, "|INFO: resuming VM again after %d seconds", &delay) == 1 &&
              delay >= 7 && delay < 60,
          "stop mode: the downtime in '%s'", got);
    end_case(&h, job, peer, sim, dir);
}

/* A PBS job of VM 100 in `dir`; `extra` adds members to its pbs object. */
static vzdump_qemu_job *pbs_job(vzdump_qemu_peer *peer, const char *dir, const char *extra)
{
    char json[2048];
    snprintf(json, sizeof json,
             "{\"task\": {\"disks\": [{\"type\": \"block\", \"qmdevice\": \"drive-scsi0\"}],"
             " \"config-file\": \"%s/qemu-server.conf\"},"
             " \"pbs\": {\"backup-file\": \"root@pam@pbs:store\", \"backup-id\": 100,"
             " \"backup-time\": 1700000000, \"password\": \"c-secret\"%s}}",
             dir, extra);
    vzdump_qemu_job *job = NULL;
    char *err = NULL;
    expect(vzdump_qemu_job_new_pbs(peer, json, &job, &err), VZDUMP_QEMU_OK, &err, NULL,
           "job_new_pbs");
    return job;
}

/* Whether the simulator's record of `dir` has a line containing `needle`. */
static bool recorded(const char *dir, const char *needle)
{
    char path[600], line[8192];
    snprintf(path, sizeof path, "%s/requests.jsonl", dir);
    FILE *f = fopen(path, "r");
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* A scripted guest agent on `dir`/100.qga in a child process: answers the flush and
 * guest-sync-delimited as qemu-ga does, every other command with {"return": 0}, and
 * appends each command's name to `dir`/agent.log. */
static pid_t start_fake_agent(const char *dir)
{
    char socket_path[512];
    snprintf(socket_path, sizeof socket_path, "%s/100.qga", dir);
    int listener = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof addr.sun_path) {
        fprintf(stderr, "fake agent: socket path too long: %s\n", socket_path);
        exit(2);
    }
    memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 4) != 0) {
        perror("fake agent");
        exit(2);
    }
    pid_t pid = fork();
    if (pid != 0) {
        close(listener);
        return pid;
    }
    char record[600];
    snprintf(record, sizeof record, "%s/agent.log", dir);
    for (;;) {
        int c = accept(listener, NULL, NULL);
        if (c < 0)
            _exit(0);
        char buf[4096];
        size_t have = 0;
        ssize_t n;
        while ((n = read(c, buf + have, sizeof buf - 1 - have)) > 0) {
            have += (size_t)n;
            buf[have] = 0;
            char *nl;
            while ((nl = strchr(buf, '\n'))) {
                *nl = 0;
                char *line = buf;
                while (*line == '\xff')
                    line++;
                char name[64] = "", reply[128];
                const char *exec = strstr(line, "\"execute\"");
                if (exec)
                    sscanf(exec, "\"execute\":\"%63[^\"]\"", name);
                if (strcmp(name, "guest-sync-delimited") == 0) {
                    long long id = 0;
                    const char *idp = strstr(line, "\"id\":");
                    if (idp)
                        id = atoll(idp + 5);
                    snprintf(reply, sizeof reply, "\xff{\"return\": %lld}\n", id);
                } else {
                    FILE *f = fopen(record, "a");
                    if (f) {
                        fprintf(f, "%s\n", name);
                        fclose(f);
                    }
                    snprintf(reply, sizeof reply, "{\"return\": 0}\n");
                }
                if (write(c, reply, strlen(reply)) < 0)
                    break;
                size_t used = (size_t)(nl + 1 - buf);
                memmove(buf, nl + 1, have - used + 1);
                have -= used;
            }
        }
        close(c);
    }
}

/* An agent that freezes and thaws: both lines before the start line, in both styles, and
 * the agent got ping, freeze, thaw in that order. */
static void agent_freezes(const char *work)
{
    const uint32_t styles[] = {VZDUMP_QEMU_STYLE_SEED, VZDUMP_QEMU_STYLE_CURRENT};
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "job-freeze-%d", i);
        char *dir = make_dir(work, name);
        pid_t sim = start_sim(dir, 0, NULL, NULL);
        pid_t agent = start_fake_agent(dir);
        vzdump_qemu_peer *peer = vm_peer(dir, styles[i]);
        vzdump_qemu_job *job = vma_job(peer, dir, ", \"agent\": 1, \"vm-was-running\": 1");
        struct host h = {.dir = dir};
        char *err = NULL, got[4096], want[512], uuid[64];

        expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run with a freezing agent");
        started_uuid(&h, uuid, sizeof uuid);
        flow(&h, got, sizeof got);
        snprintf(want, sizeof want,
                 "INFO: issuing guest-agent 'fs-freeze' command|"
                 "INFO: issuing guest-agent 'fs-thaw' command|"
                 "INFO: started backup task '%s'|INFO: resuming VM again",
                 uuid);
        CHECK(strncmp(got, want, strlen(want)) == 0, "freeze (style %u): lines '%s'", styles[i],
              got);
        char record[600], commands[256] = "", line[128];
        snprintf(record, sizeof record, "%s/agent.log", dir);
        FILE *f = fopen(record, "r");
        while (f && fgets(line, sizeof line, f))
            strncat(commands, line, sizeof commands - strlen(commands) - 1);
        if (f)
            fclose(f);
        CHECK(strcmp(commands, "guest-ping\nguest-fsfreeze-freeze\nguest-fsfreeze-thaw\n") == 0,
              "freeze (style %u): the agent got '%s'", styles[i], commands);
        stop_sim(agent);
        end_case(&h, job, peer, sim, dir);
    }
}

/* QEMU refuses the backup (a device it does not have): its bare desc, as the seed's
 * queue_execute dies with it; only today's style cancels and resumes after it. */
static void refused_start(const char *work)
{
    const uint32_t styles[] = {VZDUMP_QEMU_STYLE_SEED, VZDUMP_QEMU_STYLE_CURRENT};
    const char *want[] = {
        "ERROR: Device 'drive-nope' not found",
        "ERROR: Device 'drive-nope' not found|INFO: aborting backup job|"
        "INFO: resuming VM again",
    };
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "job-refused-%d", i);
        char *dir = make_dir(work, name);
        pid_t sim = start_sim(dir, 0, NULL, NULL);
        vzdump_qemu_peer *peer = vm_peer(dir, styles[i]);
        char json[2048];
        snprintf(json, sizeof json,
                 "{\"task\": {\"disks\": [{\"type\": \"file\", \"qmdevice\": \"drive-nope\"}],"
                 " \"config-file\": \"%s/qemu-server.conf\"},"
                 " \"output-file\": \"%s/out.vma\"}",
                 dir, dir);
        vzdump_qemu_job *job = NULL;
        struct host h = {.dir = dir};
        char *err = NULL, got[4096];
        expect(vzdump_qemu_job_new_vma(peer, json, &job, &err), VZDUMP_QEMU_OK, &err, NULL,
               "job_new_vma refused");
        vzdump_qemu_result rc = run(job, &h, &err);
        CHECK(rc != VZDUMP_QEMU_OK, "refused start (style %u): result %u", styles[i], rc);
        CHECK(err && strcmp(err, "Device 'drive-nope' not found") == 0,
              "refused start (style %u): message '%s'", styles[i], err ? err : "(null)");
        vzdump_qemu_string_free(err);
        err = NULL;
        flow(&h, got, sizeof got);
        CHECK(strcmp(got, want[i]) == 0, "refused start (style %u): lines '%s'", styles[i], got);
        CHECK(recorded(dir, "\"backup-cancel\"") == (i == 1),
              "refused start (style %u): cancelled only today", styles[i]);
        end_case(&h, job, peer, sim, dir);
    }
}

/* Signals during a PBS start that waits 3 s for its server: the cancel callback, asked on
 * EINTR, ends the job; today's style cancels the job QEMU may have started and resumes. */
static void signal_during_start(const char *work)
{
    char *dir = make_dir(work, "job-signal-start");
    pid_t sim = start_sim(dir, 0, "--pbs-connect-delay-ms", "3000");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_CURRENT);
    vzdump_qemu_job *job = pbs_job(peer, dir, "");
    struct host h = {.dir = dir, .on_signal = 1};
    char *err = NULL, got[4096];

    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    signals_seen = 0;
    struct itimerval every = {{0, 300000}, {0, 300000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &every, NULL);
    expect_exact(run(job, &h, &err), VZDUMP_QEMU_INTERRUPTED, &err, "interrupted by signal",
                 "signal during the start");
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    flow(&h, got, sizeof got);
    CHECK(strcmp(got, "ERROR: interrupted by signal|INFO: aborting backup job|"
                      "INFO: resuming VM again") == 0,
          "signal during the start: lines '%s'", got);
    CHECK(recorded(dir, "\"backup-cancel\""), "signal during the start: backup-cancel sent");
    end_case(&h, job, peer, sim, dir);
}

static int signal_checks;
static bool signal_check_stops;

static bool count_signal_check(void *userdata)
{
    (void)userdata;
    signal_checks++;
    return signal_check_stops;
}

/* A peer's signal check (docs/reliability.md, finding 17): with SIGALRM every 150 ms and a
 * monitor that answers 600 ms late, one-shot calls go on while the check says so, and end
 * with INTERRUPTED when it says stop or when there is none. */
static void signal_check(const char *work)
{
    char *dir = make_dir(work, "signal-check");
    pid_t sim = start_sim(dir, 0, "--fault-slow-ms", "600");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    char *err = NULL, *json = NULL;
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    struct itimerval every = {{0, 150000}, {0, 150000}}, off = {{0, 0}, {0, 0}};

    expect(vzdump_qemu_peer_set_signal_check(NULL, count_signal_check, NULL, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "peer", "signal check: NULL peer");
    expect(vzdump_qemu_peer_set_signal_check(peer, count_signal_check, NULL, &err),
                 VZDUMP_QEMU_OK, &err, NULL, "signal check: set");
    signal_checks = 0;
    signal_check_stops = false;
    setitimer(ITIMER_REAL, &every, NULL);
    expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err), VZDUMP_QEMU_OK,
                 &err, NULL, "signal check: the command goes on");
    CHECK(json && strstr(json, "\"running\""), "signal check: the reply %s",
          json ? json : "(null)");
    vzdump_qemu_string_free(json);
    json = NULL;
    expect(vzdump_qemu_backup_cancel(peer, &err), VZDUMP_QEMU_OK, &err, NULL,
                 "signal check: backup-cancel goes on");
    setitimer(ITIMER_REAL, &off, NULL);
    CHECK(signal_checks >= 4, "signal check: asked at the signals, %d", signal_checks);

    signal_checks = 0;
    signal_check_stops = true;
    setitimer(ITIMER_REAL, &every, NULL);
    expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err),
                 VZDUMP_QEMU_INTERRUPTED, &err, "interrupted by signal",
                 "signal check: says stop");
    CHECK(signal_checks == 1, "signal check: asked once, %d", signal_checks);
    expect(vzdump_qemu_peer_set_signal_check(peer, NULL, NULL, &err), VZDUMP_QEMU_OK, &err,
                 NULL, "signal check: removed");
    expect(vzdump_qemu_command(peer, "query-status", NULL, 0, &json, &err),
                 VZDUMP_QEMU_INTERRUPTED, &err, "interrupted by signal",
                 "signal check: none, every signal ends the call");
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    CHECK(json == NULL, "signal check: no output on failure");
    vzdump_qemu_peer_free(peer);
    stop_sim(sim);
    free(dir);
}

/* The fault matrix (docs/reliability.md) through the C entry point: one fault a row, the
 * job's result and message, backup-cancel sent when a job may exist, the compressor reaped,
 * no descriptor left open. Texts: qemu-server's (src/PVE/VZDump/QemuServer.pm, the status
 * loop; src/PVE/QemuServer/Monitor.pm `VM 100 not running`) and QEMU's errmsg for a broken
 * pipe (proxmox/pve-qemu, the VMA writer's `vma_queue_write: write error - %s`). */
struct fault_row {
    const char *name;
    const char *flag, *value;   /* one simulator fault, or NULL */
    const char *compressor;     /* run through the shell after it wrote its pid */
    int nofile_headroom;        /* how many descriptors the job may open, or 0 */
    int signals;                /* SIGALRM every 20 ms from 600 ms on */
    int stop_at_signal;         /* the cancel check says stop once a signal came */
    int go_on_check;            /* the peer's signal check lets every signal pass */
    vzdump_qemu_result rc;
    const char *message;        /* the exact message, or NULL on success */
    bool cancel;
};

static int open_fds(void)
{
    int n = -2; /* . and .. */
    DIR *d = opendir("/proc/self/fd");
    while (d && readdir(d))
        n++;
    if (d)
        closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* The RLIMIT_NOFILE under which exactly `n` more descriptors can be opened: the kernel hands
 * out the lowest free numbers, so the limit is the free slot after `n` of them (counting the
 * open ones would miss the gaps the environment leaves in the table). */
static rlim_t limit_leaving_free(int n)
{
    int fd = 0;
    for (;; fd++)
        if (fcntl(fd, F_GETFD) == -1 && n-- == 0)
            return (rlim_t)fd;
}

/* Whether `pid` is a child of this process that was not reaped. */
static bool our_child(pid_t pid)
{
    char path[64], stat[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = 0;
    char *close_paren = strrchr(stat, ')');
    int ppid = 0;
    return close_paren && sscanf(close_paren + 2, "%*c %d", &ppid) == 1 && ppid == getpid();
}

static bool never_stops(void *userdata)
{
    (void)userdata;
    return false;
}

static void fault_matrix(const char *work)
{
    static const struct fault_row rows[] = {
        {"no fault", NULL, NULL, "zstd -q", 0, 0, 0, 0, VZDUMP_QEMU_OK, NULL, false},
        {"QEMU killed mid-backup", "--fault-die-at", "30", "zstd -q", 0, 0, 0, 0,
         VZDUMP_QEMU_NOT_RUNNING, "VM 100 not running", false},
        {"garbage instead of the status", "--fault-garbage", "query-backup", "zstd -q", 0, 0,
         0, 0, VZDUMP_QEMU_PROTOCOL,
         "VM 100 qmp command 'query-backup' failed - unexpected data outside a JSON object: "
         "'\\xffgarbage-reply: this is not JSON\\r\\n'", true},
        {"wrong uuid", "--fault-wrong-uuid", NULL, "zstd -q", 0, 0, 0, 0, VZDUMP_QEMU_POLL,
         "got unexpected uuid", true},
        {"job error status", "--fault-error-at", "30", "zstd -q", 0, 0, 0, 0, VZDUMP_QEMU_POLL,
         "job failed with err -5 - Input/output error", true},
        {"compressor exits early", NULL, NULL, "head -c 65536", 0, 0, 0, 0, VZDUMP_QEMU_POLL,
         "vma_queue_write: write error - Broken pipe", true},
        {"output file system full", NULL, NULL, "sh -c 'ulimit -f 2048; exec cat'", 0, 0, 0, 0,
         VZDUMP_QEMU_POLL, "vma_queue_write: write error - Broken pipe", true},
        /* The output file and the pipe's two ends; the fourth, the pipe's copy, fails. */
        {"too few descriptors", NULL, NULL, "zstd -q", 3, 0, 0, 0, VZDUMP_QEMU_COMPRESSOR,
         "unable to duplicate compressor pipe - Too many open files (os error 24)", false},
        {"a signal during the loop, the caller stops", "--rate", "4M", "zstd -q", 0, 1, 1, 0,
         VZDUMP_QEMU_INTERRUPTED, "interrupted by signal", true},
        {"a signal flood, the peer's check goes on", NULL, NULL, "zstd -q", 0, 1, 0, 1,
         VZDUMP_QEMU_OK, NULL, false},
    };
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, &old);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct fault_row *r = &rows[i];
        /* Valgrind keeps RLIMIT_NOFILE to itself: the kernel never sees the tight limit. */
        if (r->nofile_headroom && getenv("VZQ_UNDER_VALGRIND"))
            continue;
        char name[64], task[700], json[2048], pidfile[600], *err = NULL;
        snprintf(name, sizeof name, "fault-%zu", i);
        char *dir = make_dir(work, name);
        pid_t sim = start_sim(dir, 0, r->flag, r->value);
        vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
        if (r->go_on_check)
            expect(vzdump_qemu_peer_set_signal_check(peer, never_stops, NULL, &err),
                   VZDUMP_QEMU_OK, &err, NULL, "fault matrix: signal check");
        snprintf(pidfile, sizeof pidfile, "%s/comp.pid", dir);
        snprintf(task, sizeof task, "\"config-file\": \"%s/qemu-server.conf\"", dir);
        /* Not through the pid-writing shell under a tight RLIMIT_NOFILE: dash saves its
         * stdout above fd 10 for the redirection. */
        if (r->nofile_headroom)
            snprintf(json, sizeof json, "%s", r->compressor);
        else
            snprintf(json, sizeof json, "echo $$ > %s; exec %s", pidfile, r->compressor);
        char job_json[4096];
        snprintf(job_json, sizeof job_json,
                 "{\"task\": {\"disks\": [{\"type\": \"file\", \"qmdevice\": \"drive-scsi0\"}],"
                 " %s, \"vm-was-running\": 1}, \"output-file\": \"%s/out.vma\","
                 " \"compressor\": \"%s\"}",
                 task, dir, json);
        vzdump_qemu_job *job = NULL;
        expect(vzdump_qemu_job_new_vma(peer, job_json, &job, &err), VZDUMP_QEMU_OK, &err, NULL,
               "fault matrix: job");
        /* A stop in the loop: signals before the job started (a slow machine, valgrind) go on. */
        struct host h = {.dir = dir,
                         .on_signal = r->stop_at_signal,
                         .arm_on = r->stop_at_signal ? "started backup task" : NULL};
        struct rlimit nofile = {0, 0}, tight;
        int before = open_fds();
        if (r->nofile_headroom) {
            getrlimit(RLIMIT_NOFILE, &nofile);
            tight = nofile;
            tight.rlim_cur = limit_leaving_free(r->nofile_headroom);
            setrlimit(RLIMIT_NOFILE, &tight);
        }
        signals_seen = 0;
        struct itimerval every = {{0, 20000}, {0, 600000}}, off = {{0, 0}, {0, 0}};
        if (r->signals)
            setitimer(ITIMER_REAL, &every, NULL);
        vzdump_qemu_result rc = run(job, &h, &err);
        setitimer(ITIMER_REAL, &off, NULL);
        if (r->nofile_headroom)
            setrlimit(RLIMIT_NOFILE, &nofile);
        if (r->message)
            expect_exact(rc, r->rc, &err, r->message, r->name);
        else
            expect(rc, r->rc, &err, NULL, r->name);
        CHECK(recorded(dir, "\"backup-cancel\"") == r->cancel, "%s: backup-cancel %s", r->name,
              r->cancel ? "sent" : "not sent");
        FILE *pf = fopen(pidfile, "r");
        int comp = 0;
        if (pf && fscanf(pf, "%d", &comp) == 1)
            CHECK(!our_child(comp), "%s: the compressor reaped", r->name);
        if (pf)
            fclose(pf);
        CHECK(open_fds() == before, "%s: descriptors %d, before %d", r->name, open_fds(),
              before);
        CHECK(!r->signals || signals_seen > 0, "%s: signals came", r->name);
        end_case(&h, job, peer, sim, dir);
    }
    sigaction(SIGALRM, &old, NULL);
}

/* The power-state steps and the abort one by one, as a piecewise backup calls them: a VM
 * that was not running is started paused and stopped again, one that runs is resumed, the
 * state read back as the plugin stores it. */
static void power_steps(const char *work)
{
    char *dir = make_dir(work, "power-steps");
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_power *power = NULL;
    struct host h = {.dir = dir};
    char *err = NULL, *json = NULL, got[4096];

    expect(vzdump_qemu_power_new(peer, "{\"vm-was-running\": 0}", &power, &err), VZDUMP_QEMU_OK,
           &err, NULL, "power_new");
    expect(vzdump_qemu_power_enforce_running(power, on_log, on_start, &h, &err), VZDUMP_QEMU_OK,
           &err, NULL, "enforce_running");
    CHECK(h.vm > 0, "enforce_running: start_cb started the VM");
    expect(vzdump_qemu_power_resume_after_start(power, on_log, &h, &err), VZDUMP_QEMU_OK, &err,
           NULL, "resume of a VM that was not running");
    expect(vzdump_qemu_power_restore(power, on_log, on_stop, &h, &err), VZDUMP_QEMU_OK, &err,
           NULL, "restore");
    flow(&h, got, sizeof got);
    CHECK(strcmp(got, "INFO: starting kvm to execute backup task|"
                      "INFO: stopping kvm after backup task") == 0,
          "stopped VM: lines '%s'", got);
    CHECK(h.stops == 1, "stopped VM: stop_cb called %d times", h.stops);
    vzdump_qemu_power_free(power);
    host_free(&h);

    /* A running VM in stop mode: the downtime once, then the state as stored back. */
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    char state[128];
    snprintf(state, sizeof state, "{\"vm-stop-time\": %ld}", (long)time(NULL) - 3);
    power = NULL;
    expect(vzdump_qemu_power_new(peer, state, &power, &err), VZDUMP_QEMU_OK, &err, NULL,
           "power_new running");
    expect(vzdump_qemu_power_enforce_running(power, on_log, on_start, &h, &err), VZDUMP_QEMU_OK,
           &err, NULL, "enforce_running running");
    expect(vzdump_qemu_power_resume_after_start(power, on_log, &h, &err), VZDUMP_QEMU_OK, &err,
           NULL, "resume");
    expect(vzdump_qemu_power_resume_after_start(power, on_log, &h, &err), VZDUMP_QEMU_OK, &err,
           NULL, "resume again");
    expect(vzdump_qemu_power_restore(power, on_log, on_stop, &h, &err), VZDUMP_QEMU_OK, &err,
           NULL, "restore running");
    int delay = -1;
    CHECK(h.count == 2 && sscanf(h.lines[0], "INFO: resuming VM again after %d seconds",
                                 &delay) == 1 && delay >= 3 && delay < 60 &&
              strcmp(h.lines[1], "INFO: resuming VM again") == 0,
          "running VM: %d lines, first '%s'", h.count, h.count ? h.lines[0] : "-");
    expect(vzdump_qemu_power_state_json(power, &json, &err), VZDUMP_QEMU_OK, &err, NULL,
           "state_json");
    CHECK(json && strcmp(json, "{\"vm-was-running\":true,\"vm-was-paused\":false,"
                               "\"vm-stop-time\":null}") == 0,
          "state_json: %s", json ? json : "(null)");
    vzdump_qemu_string_free(json);
    host_free(&h);

    /* The abort: its line, the cancel sent. */
    expect(vzdump_qemu_backup_abort(peer, on_log, &h, &err), VZDUMP_QEMU_OK, &err, NULL,
           "backup_abort");
    CHECK(h.count == 1 && strcmp(h.lines[0], "INFO: aborting backup job") == 0,
          "abort: %d lines", h.count);
    CHECK(recorded(dir, "\"backup-cancel\""), "abort: backup-cancel sent");
    host_free(&h);
    stop_sim(sim);

    /* With QEMU gone the abort's failure is an error line, not a failure of the call. */
    expect(vzdump_qemu_backup_abort(peer, on_log, &h, &err), VZDUMP_QEMU_OK, &err, NULL,
           "backup_abort without QEMU");
    CHECK(h.count == 2 && strncmp(h.lines[1], "ERROR: ", 7) == 0, "abort without QEMU: '%s'",
          h.count > 1 ? h.lines[1] : "-");
    host_free(&h);

    /* Bad input. */
    expect_exact(vzdump_qemu_power_new(NULL, NULL, &power, &err), VZDUMP_QEMU_NULL_PARAMETER,
                 &err, "peer must not be NULL", "power_new NULL peer");
    expect(vzdump_qemu_power_new(peer, "{\"vm-was-runing\": 1}", &power, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "vm-was-runing", "power_new unknown key");
    expect_exact(vzdump_qemu_power_enforce_running(power, on_log, NULL, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "start_cb must not be NULL",
                 "enforce_running NULL start_cb");
    expect_exact(vzdump_qemu_power_restore(power, NULL, on_stop, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "log_cb must not be NULL",
                 "restore NULL log_cb");
    expect_exact(vzdump_qemu_power_resume_after_start(NULL, on_log, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "power must not be NULL", "resume NULL");
    expect_exact(vzdump_qemu_backup_abort(peer, NULL, &h, &err), VZDUMP_QEMU_NULL_PARAMETER,
                 &err, "log_cb must not be NULL", "abort NULL log_cb");
    vzdump_qemu_power_free(power);
    vzdump_qemu_power_free(NULL);
    char socket[600];
    snprintf(socket, sizeof socket, "%s/none.qmp", dir);
    vzdump_qemu_peer_free(peer);
    expect(vzdump_qemu_peer_new_path(socket, &peer, &err), VZDUMP_QEMU_OK, &err, NULL,
           "peer_new_path");
    expect(vzdump_qemu_power_new(peer, NULL, &power, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err,
           "VM given by its id", "power_new path peer");
    vzdump_qemu_peer_free(peer);
    free(dir);
}

/* PBS with and without a fingerprint: the arguments QEMU got, the password never logged. */
static void pbs(const char *work)
{
    char *dir = make_dir(work, "job-pbs");
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = pbs_job(peer, dir, ", \"fingerprint\": \"aa:bb\"");
    struct host h = {.dir = dir};
    char *err = NULL;

    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run pbs");
    for (int i = 0; i < h.count; i++)
        CHECK(!strstr(h.lines[i], "c-secret"), "pbs: the password in '%s'", h.lines[i]);
    CHECK(recorded(dir, "\"fingerprint\":\"aa:bb\""), "pbs: the fingerprint sent");
    host_free(&h);
    vzdump_qemu_job_free(job);
    stop_sim(sim);

    char record[600];
    snprintf(record, sizeof record, "%s/requests.jsonl", dir);
    unlink(record);
    sim = start_sim(dir, 0, NULL, NULL);
    job = pbs_job(peer, dir, "");
    h = (struct host){.dir = dir};
    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run pbs without fingerprint");
    CHECK(recorded(dir, "\"backup-file\":\"root@pam@pbs:store\"") &&
              !recorded(dir, "fingerprint"),
          "pbs: no fingerprint sent without one");
    end_case(&h, job, peer, sim, dir);
}

static void bad_input(const char *work)
{
    vzdump_qemu_peer *peer = vm_peer(work, VZDUMP_QEMU_STYLE_SEED);
    vzdump_qemu_job *job = NULL;
    char *err = NULL;
    struct host h = {.dir = work};

    expect_exact(vzdump_qemu_job_new_vma(peer, NULL, &job, &err), VZDUMP_QEMU_NULL_PARAMETER,
                 &err, "job_json must not be NULL", "NULL json");
    expect_exact(vzdump_qemu_job_new_vma(NULL, "{}", &job, &err), VZDUMP_QEMU_NULL_PARAMETER,
                 &err, "peer must not be NULL", "NULL peer");
    expect(vzdump_qemu_job_new_vma(peer, "{\"task\": {\"disks\": [], \"config-file\": \"/c\"},"
                                         " \"bogus\": 1}", &job, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "bogus", "unknown key");
    expect(vzdump_qemu_job_new_pbs(peer, "{\"task\": {\"disks\": [], \"config-file\": \"/c\"}}",
                                   &job, &err),
           VZDUMP_QEMU_INVALID_PARAMETER, &err, "pbs", "missing pbs");
    CHECK(job == NULL, "no job on failure");
    job = vma_job(peer, work, "");
    expect_exact(vzdump_qemu_job_run(job, NULL, on_start, on_stop, NULL, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "log_cb must not be NULL", "NULL log_cb");
    expect_exact(vzdump_qemu_job_run(job, on_log, on_start, NULL, NULL, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "stop_cb must not be NULL", "NULL stop_cb");
    expect_exact(vzdump_qemu_job_run(NULL, on_log, on_start, on_stop, NULL, &h, &err),
                 VZDUMP_QEMU_NULL_PARAMETER, &err, "job must not be NULL", "NULL job");
    vzdump_qemu_job_free(job);
    vzdump_qemu_job_free(NULL);
    vzdump_qemu_peer_free(peer);

    /* A job needs a VM id: the running check reads the VM's pid file. */
    char socket[512];
    snprintf(socket, sizeof socket, "%s/none.qmp", work);
    expect(vzdump_qemu_peer_new_path(socket, &peer, &err), VZDUMP_QEMU_OK, &err, NULL,
           "peer_new_path");
    job = vma_job(peer, work, "");
    expect(run(job, &h, &err), VZDUMP_QEMU_INVALID_PARAMETER, &err, "VM given by its id",
           "path peer");
    CHECK(h.count == 0, "path peer: nothing logged");
    vzdump_qemu_job_free(job);
    vzdump_qemu_peer_free(peer);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SIM_BINARY WORKDIR\n", argv[0]);
        return 2;
    }
    sim_binary = argv[1];
    running_vm(argv[2]);
    started_for_the_backup(argv[2]);
    failing_start(argv[2]);
    failing_job_and_cancel(argv[2]);
    agent(argv[2]);
    agent_freezes(argv[2]);
    refused_start(argv[2]);
    stop_mode(argv[2]);
    signal_during_start(argv[2]);
    signal_check(argv[2]);
    fault_matrix(argv[2]);
    power_steps(argv[2]);
    pbs(argv[2]);
    bad_input(argv[2]);
    return report("test_job");
}
