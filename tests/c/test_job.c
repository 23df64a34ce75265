/*
 * The backup job through the C API (vzdump_qemu_job_*) against pve-qmp-sim as VM 100 of
 * a run directory (its pid file passes qemu-server's running check): a running VM, a VM
 * the start callback starts paused and the stop callback stops, a failing start, a failing
 * job, a cancel, PBS, and every bad input. The lines pinned are qemu-server's
 * (proxmox/qemu-server src/PVE/VZDump/QemuServer.pm: archive_vma, archive_pbs,
 * enforce_vm_running_for_backup, resume_vm_after_job_start, restore_vm_power_state,
 * mon_backup_cancel).
 * Usage: test_job SIM_BINARY WORKDIR (writes WORKDIR/job-running/out.vma.zst).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
};

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
    if (h->count < MAX_LINES && asprintf(&h->lines[h->count], "%s: %s", prefix, line) >= 0)
        h->count++;
    return 0;
}

static bool on_cancel(void *userdata)
{
    return ((struct host *)userdata)->cancel;
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

static void pbs(const char *work)
{
    char *dir = make_dir(work, "job-pbs");
    pid_t sim = start_sim(dir, 0, NULL, NULL);
    vzdump_qemu_peer *peer = vm_peer(dir, VZDUMP_QEMU_STYLE_SEED);
    char json[2048];
    snprintf(json, sizeof json,
             "{\"task\": {\"disks\": [{\"type\": \"block\", \"qmdevice\": \"drive-scsi0\"}],"
             " \"config-file\": \"%s/qemu-server.conf\"},"
             " \"pbs\": {\"backup-file\": \"root@pam@pbs:store\", \"backup-id\": 100,"
             " \"backup-time\": 1700000000, \"password\": \"c-secret\","
             " \"fingerprint\": \"aa:bb\"}}",
             dir);
    vzdump_qemu_job *job = NULL;
    struct host h = {.dir = dir};
    char *err = NULL;
    expect(vzdump_qemu_job_new_pbs(peer, json, &job, &err), VZDUMP_QEMU_OK, &err, NULL,
           "job_new_pbs");
    expect(run(job, &h, &err), VZDUMP_QEMU_OK, &err, NULL, "run pbs");
    for (int i = 0; i < h.count; i++)
        CHECK(!strstr(h.lines[i], "c-secret"), "pbs: the password in '%s'", h.lines[i]);
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
    pbs(argv[2]);
    bad_input(argv[2]);
    return report("test_job");
}
