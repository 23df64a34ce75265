/*
 * XS glue between Perl and libvzdump_qemu (include/vzdump_qemu.h): marshalling only. The
 * Perl API, its argument checks and its documentation are in lib/PVE/RS/VZDump/Qemu.pm,
 * which calls the _-prefixed XSUBs here with checked values; the library decides
 * everything else (targets, signals, the automatic thaw, compressor ownership).
 *
 * Rules:
 * - every XSUB takes the Perl function's name first, for messages;
 * - croak only from an XSUB's own frame, after the library strings and handles of the call
 *   are freed; never while library frames are on the stack (a longjmp across Rust frames is
 *   undefined behaviour);
 * - Perl code run from inside the library (the log sink, the cancel check that runs
 *   pending signal handlers) runs under G_EVAL; its error is kept, stops the library call,
 *   and is rethrown once the call returned;
 * - every message ends in "\n", so Perl appends no " at FILE line N" (PVE style).
 */
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include <string.h>

#include "vzdump_qemu.h"

#define CONN_CLASS "PVE::RS::VZDump::Qemu::Conn"
#define POLL_CLASS "PVE::RS::VZDump::Qemu::Poll"
#define COMP_CLASS "PVE::RS::VZDump::Qemu::Compressor"

/* Perl sub run under G_EVAL to dispatch pending ("safe") signal handlers. */
#define DISPATCH_SUB "PVE::RS::VZDump::Qemu::_dispatch_signals"

static void fail(pTHX_ const char *func, vzdump_qemu_result rc, char *err)
    __attribute__noreturn__;

/* ---- handles: blessed references to a scalar carrying our ext magic ---- */

static int peer_free_magic(pTHX_ SV *sv, MAGIC *mg);
static int conn_free_magic(pTHX_ SV *sv, MAGIC *mg);
static int poll_free_magic(pTHX_ SV *sv, MAGIC *mg);
static int comp_free_magic(pTHX_ SV *sv, MAGIC *mg);

#ifdef USE_ITHREADS
/* A copy made for a new interpreter thread holds no handle (the original thread's object
 * owns it and frees it once): marked, so that its use dies saying why. */
static int
thread_copy_magic(pTHX_ MAGIC *mg, CLONE_PARAMS *param)
{
    PERL_UNUSED_ARG(param);
    mg->mg_ptr = NULL;
    mg->mg_private = 1;
    return 0;
}
#define THREAD_COPY thread_copy_magic
#else
#define THREAD_COPY NULL
#endif

/* The magic's identity marks objects made here; freeing the object frees the handle. */
static const MGVTBL peer_vtbl = { NULL, NULL, NULL, NULL, peer_free_magic, NULL, THREAD_COPY, NULL };
static const MGVTBL conn_vtbl = { NULL, NULL, NULL, NULL, conn_free_magic, NULL, THREAD_COPY, NULL };
static const MGVTBL poll_vtbl = { NULL, NULL, NULL, NULL, poll_free_magic, NULL, THREAD_COPY, NULL };
static const MGVTBL comp_vtbl = { NULL, NULL, NULL, NULL, comp_free_magic, NULL, THREAD_COPY, NULL };

static int
peer_free_magic(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    vzdump_qemu_peer_free((vzdump_qemu_peer *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

static int
conn_free_magic(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    vzdump_qemu_conn_free((vzdump_qemu_conn *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

static int
poll_free_magic(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    vzdump_qemu_poll_free((vzdump_qemu_poll *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

static int
comp_free_magic(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    /* The library leaves a compressor alone in a process that did not spawn it. */
    vzdump_qemu_compressor_free((vzdump_qemu_compressor *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

/* Blesses a new handle object into `class` (a class name, or CONN_CLASS etc.). */
static SV *
new_handle(pTHX_ SV *class, const char *fallback, const MGVTBL *vtbl, void *ptr)
{
    SV *obj = newSV_type(SVt_PVMG);
    const char *name = (SvOK(class) && !SvROK(class)) ? SvPV_nolen(class) : fallback;

    MAGIC *mg = sv_magicext(obj, NULL, PERL_MAGIC_ext, vtbl, (const char *)ptr, 0);

    mg->mg_flags |= MGf_DUP;
    return sv_bless(newRV_noinc(obj), gv_stashpv(name, GV_ADD));
}

/* The magic of a handle object of the given kind, or NULL. */
static MAGIC *
handle_magic(pTHX_ SV *sv, const MGVTBL *vtbl)
{
    if (!sv_isobject(sv))
        return NULL;
    return mg_findext(SvRV(sv), PERL_MAGIC_ext, vtbl);
}

/* The live pointer behind a handle object; dies if it is no such object or closed (the
 * Perl methods check the class first, so this only catches forged or closed ones). */
static void *
handle_ptr(pTHX_ SV *sv, const MGVTBL *vtbl, const char *class, const char *what)
{
    MAGIC *mg = handle_magic(aTHX_ sv, vtbl);

    if (!mg)
        croak("the handle is not a %s object made by this module\n", class);
    if (!mg->mg_ptr && mg->mg_private)
        croak("the %s handle belongs to another interpreter thread\n", what);
    if (!mg->mg_ptr)
        croak("the %s handle is closed\n", what);
    return mg->mg_ptr;
}

/* ---- values: the Perl side has checked them ---- */

/* A string as UTF-8 bytes (valid until the statement ends). */
static const char *
str_of(pTHX_ SV *sv)
{
    /* A copy, so the caller's value is not upgraded to UTF-8; one that does not take
     * over a temporary's buffer (a value may be read twice), made once (the macro reads
     * its argument more than once). */
    SV *copy = sv_mortalcopy_flags(sv, SV_GMAGIC | SV_NOSTEAL);

    return SvPVutf8_nolen(copy);
}

/* Like str_of, undef meaning NULL. */
static const char *
opt_str_of(pTHX_ SV *sv)
{
    return SvOK(sv) ? str_of(aTHX_ sv) : NULL;
}

/* A count of milliseconds or bytes; undef is 0 (the library's default). */
static UV
uv_of(pTHX_ SV *sv)
{
    return SvOK(sv) ? SvUV(sv) : 0;
}

/* A file descriptor number; undef is -1 (none). */
static int32_t
fd_of(pTHX_ SV *sv)
{
    return SvOK(sv) ? (int32_t)SvIV(sv) : -1;
}

/* The VZDUMP_QEMU_STYLE_* of 'seed' or 'current'. */
static uint32_t
style_of(pTHX_ SV *sv)
{
    return strEQ(str_of(aTHX_ sv), "current") ? VZDUMP_QEMU_STYLE_CURRENT
                                              : VZDUMP_QEMU_STYLE_SEED;
}

/* ---- library results ---- */

/* Takes a library string into a new SV of bytes and frees it (NULL gives undef). */
static SV *
take_string(pTHX_ char *s)
{
    SV *sv;

    if (!s)
        return newSV(0);
    sv = newSVpv(s, 0);
    vzdump_qemu_string_free(s);
    return sv;
}

/*
 * Runs the handlers of signals that arrived while the library waited (Perl defers them
 * to its run loop), inside an eval. Returns the error a handler died with (a new SV the
 * caller owns), or NULL.
 */
static SV *
dispatch_signals(pTHX)
{
    dSP;
    SV *err = NULL;

    if (!PL_sig_pending)
        return NULL;
    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    call_pv(DISPATCH_SUB, G_EVAL | G_DISCARD | G_NOARGS);
    if (SvTRUE(ERRSV))
        err = newSVsv(ERRSV);
    FREETMPS;
    LEAVE;
    return err;
}

/*
 * Dies with the library's message + "\n" after freeing it; argument errors name the Perl
 * function ("func: message"). On INTERRUPTED the pending signal handlers run first; if
 * one dies (the seed's "interrupted by signal"), that is the error, as with Perl's waits.
 */
static void
fail(pTHX_ const char *func, vzdump_qemu_result rc, char *err)
{
    SV *msg;
    bool argument = rc == VZDUMP_QEMU_INVALID_PARAMETER || rc == VZDUMP_QEMU_NULL_PARAMETER;

    if (rc == VZDUMP_QEMU_INTERRUPTED) {
        SV *handler_err = dispatch_signals(aTHX);
        if (handler_err) {
            vzdump_qemu_string_free(err);
            croak_sv(sv_2mortal(handler_err));
        }
    }
    if (err)
        msg = sv_2mortal(newSVpvf("%s%s%s\n", argument ? func : "", argument ? ": " : "", err));
    else
        msg = sv_2mortal(newSVpvf("%s: vzdump-qemu call failed with code %u\n", func,
                                  (unsigned)rc));
    vzdump_qemu_string_free(err);
    sv_utf8_decode(msg);
    croak_sv(msg);
}

/* The peer a target names (the library parses it), worded in `style`; dies on bad input.
 * A mortal owns it: it is freed at the end of the calling statement, also when a later
 * conversion or call of the XSUB dies. */
static vzdump_qemu_peer *
new_peer(pTHX_ const char *func, SV *target, SV *run_dir, SV *style)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
    SV *owner;

    rc = vzdump_qemu_peer_new_target(str_of(aTHX_ target), opt_str_of(aTHX_ run_dir), &peer,
                                     &err);
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_peer_set_style(peer, style_of(aTHX_ style), &err);
    if (rc != VZDUMP_QEMU_OK) {
        vzdump_qemu_peer_free(peer);
        fail(aTHX_ func, rc, err);
    }
    owner = sv_newmortal();
    sv_upgrade(owner, SVt_PVMG);
    sv_magicext(owner, NULL, PERL_MAGIC_ext, &peer_vtbl, (const char *)peer, 0)->mg_flags |=
        MGf_DUP;
    return peer;
}

/* ---- the callbacks the library calls ---- */

typedef struct {
    PerlInterpreter *perl;
    SV *log_cb;   /* code reference (level, line), or NULL */
    SV *error;    /* first error of Perl code run from a callback; owned */
} callbacks;

static void
init_callbacks(pTHX_ callbacks *cbs, SV *log_cb)
{
    cbs->perl = aTHX;
    cbs->log_cb = log_cb && SvOK(log_cb) ? log_cb : NULL;
    cbs->error = NULL;
}

/* Keeps the first error of Perl code run from a callback. */
static void
keep_error(pTHX_ callbacks *cbs, SV *err)
{
    if (!cbs->error)
        cbs->error = err;
    else
        SvREFCNT_dec(err);
}

/*
 * Log sink: calls the Perl callback under G_EVAL; a die asks the library to stop. Pending
 * signal handlers run first: Perl would run them inside the callback, where a handler's
 * die would cost the line (e.g. the error of the wait the signal interrupted).
 */
static uint32_t
log_trampoline(void *userdata, uint32_t level, const char *line)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);
    dSP;
    SV *text, *handler_err;
    uint32_t stop = 0;

    if (!cbs->log_cb)
        return 0;
    if ((handler_err = dispatch_signals(aTHX))) {
        keep_error(aTHX_ cbs, handler_err);
        stop = 1;
    }
    ENTER;
    SAVETMPS;
    text = sv_2mortal(newSVpv(line ? line : "", 0));
    sv_utf8_decode(text);
    PUSHMARK(SP);
    EXTEND(SP, 2);
    PUSHs(sv_2mortal(newSVpv(level == VZDUMP_QEMU_LOG_ERR ? "err"
        : level == VZDUMP_QEMU_LOG_WARN ? "warn" : "info", 0)));
    PUSHs(text);
    PUTBACK;
    call_sv(cbs->log_cb, G_EVAL | G_DISCARD);
    if (SvTRUE(ERRSV)) {
        keep_error(aTHX_ cbs, newSVsv(ERRSV));
        stop = 1;
    }
    FREETMPS;
    LEAVE;
    return stop;
}

/* Cancel check (every 100 ms and at every signal): runs pending signal handlers, as Perl
 * would between two statements; a handler that dies stops the call. */
static bool
cancel_trampoline(void *userdata)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);
    SV *err = dispatch_signals(aTHX);

    if (err)
        keep_error(aTHX_ cbs, err);
    return cbs->error != NULL;
}

/* The backup job's callbacks: the log sink and cancel check above, and the VM's start and
 * stop. `base` comes first: the log and cancel trampolines take the same userdata. */
typedef struct {
    callbacks base;
    SV *start_cb;
    SV *stop_cb;
} job_callbacks;

/* Calls a VM start or stop code reference under G_EVAL; its die text (without the final
 * newline) is the callback's failure message. */
static uint32_t
vm_trampoline(pTHX_ SV *cb, char *error_buf, size_t error_len)
{
    dSP;
    uint32_t rc = 0;

    ENTER;
    SAVETMPS;
    PUSHMARK(SP);
    PUTBACK;
    call_sv(cb, G_EVAL | G_DISCARD | G_NOARGS);
    if (SvTRUE(ERRSV)) {
        STRLEN len;
        const char *msg = SvPVutf8(ERRSV, len);
        while (len > 0 && msg[len - 1] == '\n')
            len--;
        snprintf(error_buf, error_len, "%.*s", (int)len, msg);
        rc = 1;
    }
    FREETMPS;
    LEAVE;
    return rc;
}

static uint32_t
start_trampoline(void *userdata, char *error_buf, size_t error_len)
{
    job_callbacks *cbs = (job_callbacks *)userdata;
    dTHXa(cbs->base.perl);
    return vm_trampoline(aTHX_ cbs->start_cb, error_buf, error_len);
}

static uint32_t
stop_trampoline(void *userdata, char *error_buf, size_t error_len)
{
    job_callbacks *cbs = (job_callbacks *)userdata;
    dTHXa(cbs->base.perl);
    return vm_trampoline(aTHX_ cbs->stop_cb, error_buf, error_len);
}

/* After a library call with callbacks: rethrows a callback's error, else fails on rc. */
static void
finish(pTHX_ const char *func, callbacks *cbs, vzdump_qemu_result rc, char *err)
{
    if (cbs->error) {
        vzdump_qemu_string_free(err);
        croak_sv(sv_2mortal(cbs->error));
    }
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
}

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu

PROTOTYPES: DISABLE

const char *
version()
  CODE:
    RETVAL = vzdump_qemu_version();
  OUTPUT:
    RETVAL

SV *
_mon_cmd(func, target, run_dir, style, command, args_json, fd, timeout_ms)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *command
    SV *args_json
    SV *fd
    SV *timeout_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_mon_cmd(peer, str_of(aTHX_ command), opt_str_of(aTHX_ args_json),
                             fd_of(aTHX_ fd), uv_of(aTHX_ timeout_ms), &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

SV *
_backup_start_vma(func, target, run_dir, style, fd, params_json, budget_ms)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *fd
    SV *params_json
    SV *budget_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_backup_start_vma(peer, fd_of(aTHX_ fd), opt_str_of(aTHX_ params_json),
                                      uv_of(aTHX_ budget_ms), &uuid, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ uuid);
  OUTPUT:
    RETVAL

SV *
_backup_start_pbs(func, target, run_dir, style, params_json, timeout_ms)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *params_json
    SV *timeout_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_backup_start_pbs(peer, str_of(aTHX_ params_json),
                                      uv_of(aTHX_ timeout_ms), &uuid, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ uuid);
  OUTPUT:
    RETVAL

SV *
_backup_query(func, target, run_dir, style)
    const char *func
    SV *target
    SV *run_dir
    SV *style
  PREINIT:
    vzdump_qemu_peer *peer;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_backup_query(peer, &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
_backup_cancel(func, target, run_dir, style)
    const char *func
    SV *target
    SV *run_dir
    SV *style
  PREINIT:
    vzdump_qemu_peer *peer;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_backup_cancel(peer, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);

SV *
_qga_fs_freeze(func, target, run_dir, style, log_cb)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *log_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    callbacks cbs;
    bool frozen = FALSE;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_qga_fs_freeze(peer, log_trampoline, cancel_trampoline, &cbs, &frozen,
                                   &err);
    finish(aTHX_ func, &cbs, rc, err);
    /* The seed's values: 1 when a thaw is due, else undef. */
    RETVAL = frozen ? newSViv(1) : newSV(0);
  OUTPUT:
    RETVAL

void
_qga_fs_thaw(func, target, run_dir, style, log_cb)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *log_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_qga_fs_thaw(peer, log_trampoline, &cbs, &err);
    finish(aTHX_ func, &cbs, rc, err);

SV *
_archive_job(func, format, target, run_dir, style, job_json, log_cb, start_cb, stop_cb)
    const char *func
    const char *format
    SV *target
    SV *run_dir
    SV *style
    SV *job_json
    SV *log_cb
    SV *start_cb
    SV *stop_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_job *job = NULL;
    job_callbacks cbs;
    char *record = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = strEQ(format, "pbs")
        ? vzdump_qemu_job_new_pbs(peer, str_of(aTHX_ job_json), &job, &err)
        : vzdump_qemu_job_new_vma(peer, str_of(aTHX_ job_json), &job, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    init_callbacks(aTHX_ &cbs.base, log_cb);
    cbs.start_cb = start_cb;
    cbs.stop_cb = stop_cb;
    rc = vzdump_qemu_job_run(job, log_trampoline, start_trampoline, stop_trampoline,
                             cancel_trampoline, &cbs, &err);
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_job_result_json(job, &record, &err);
    vzdump_qemu_job_free(job);
    if (cbs.base.error)
        vzdump_qemu_string_free(record);
    finish(aTHX_ func, &cbs.base, rc, err);
    RETVAL = take_string(aTHX_ record);
  OUTPUT:
    RETVAL

SV *
_power_step(func, step, target, run_dir, style, state_json, log_cb, start_cb, stop_cb)
    const char *func
    const char *step
    SV *target
    SV *run_dir
    SV *style
    SV *state_json
    SV *log_cb
    SV *start_cb
    SV *stop_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_power *power = NULL;
    job_callbacks cbs;
    char *state = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_power_new(peer, str_of(aTHX_ state_json), &power, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    init_callbacks(aTHX_ &cbs.base, log_cb);
    cbs.start_cb = start_cb;
    cbs.stop_cb = stop_cb;
    if (strEQ(step, "enforce"))
        rc = vzdump_qemu_power_enforce_running(power, log_trampoline, start_trampoline, &cbs,
                                               &err);
    else if (strEQ(step, "resume"))
        rc = vzdump_qemu_power_resume_after_start(power, log_trampoline, &cbs, &err);
    else
        rc = vzdump_qemu_power_restore(power, log_trampoline, stop_trampoline, &cbs, &err);
    if (rc == VZDUMP_QEMU_OK && !cbs.base.error) {
        char *state_err = NULL;
        vzdump_qemu_result state_rc = vzdump_qemu_power_state_json(power, &state, &state_err);
        if (state_rc != VZDUMP_QEMU_OK) {
            rc = state_rc;
            err = state_err;
        }
    }
    vzdump_qemu_power_free(power);
    finish(aTHX_ func, &cbs.base, rc, err);
    RETVAL = take_string(aTHX_ state);
  OUTPUT:
    RETVAL

void
_backup_abort(func, target, run_dir, style, log_cb)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *log_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_backup_abort(peer, log_trampoline, &cbs, &err);
    finish(aTHX_ func, &cbs, rc, err);

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Conn

SV *
_open(func, class, target, run_dir, style)
    const char *func
    SV *class
    SV *target
    SV *run_dir
    SV *style
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_conn *conn = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_conn_open(peer, &conn, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = new_handle(aTHX_ class, CONN_CLASS, &conn_vtbl, conn);
  OUTPUT:
    RETVAL

SV *
_execute(func, conn, command, args_json, fd, timeout_ms)
    const char *func
    vzdump_qemu_conn *conn
    SV *command
    SV *args_json
    SV *fd
    SV *timeout_ms
  PREINIT:
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_conn_execute(conn, str_of(aTHX_ command), opt_str_of(aTHX_ args_json),
                                  fd_of(aTHX_ fd), uv_of(aTHX_ timeout_ms), &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
_getfd(func, conn, fd, fdname)
    const char *func
    vzdump_qemu_conn *conn
    SV *fd
    SV *fdname
  PREINIT:
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_conn_getfd(conn, str_of(aTHX_ fdname), fd_of(aTHX_ fd), &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);

SV *
_take_events(func, conn)
    const char *func
    vzdump_qemu_conn *conn
  PREINIT:
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_conn_take_events(conn, &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
_close(self)
    SV *self
  PREINIT:
    MAGIC *mg;
  CODE:
    mg = handle_magic(aTHX_ self, &conn_vtbl);
    if (mg) {
        vzdump_qemu_conn_free((vzdump_qemu_conn *)mg->mg_ptr);
        mg->mg_ptr = NULL;
    }

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Poll

SV *
_new(func, class, target, run_dir, job_uuid, style, interval_ms)
    const char *func
    SV *class
    SV *target
    SV *run_dir
    SV *job_uuid
    SV *style
    SV *interval_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_poll *poll = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ func, target, run_dir, style);
    rc = vzdump_qemu_poll_new(peer, str_of(aTHX_ job_uuid), style_of(aTHX_ style),
                              uv_of(aTHX_ interval_ms), &poll, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    RETVAL = new_handle(aTHX_ class, POLL_CLASS, &poll_vtbl, poll);
  OUTPUT:
    RETVAL

void
_set_qemu_support(func, poll, support_json, is_template)
    const char *func
    vzdump_qemu_poll *poll
    SV *support_json
    SV *is_template
  PREINIT:
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_poll_set_qemu_support(poll, str_of(aTHX_ support_json),
                                           SvTRUE(is_template), &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);

SV *
_run(func, poll, log_cb, cancel_on_error)
    const char *func
    vzdump_qemu_poll *poll
    SV *log_cb
    SV *cancel_on_error
  PREINIT:
    callbacks cbs;
    char *progress = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_poll_run(poll, log_trampoline, cancel_trampoline, &cbs,
                              SvTRUE(cancel_on_error), &progress, &err);
    if (cbs.error)
        vzdump_qemu_string_free(progress);
    finish(aTHX_ func, &cbs, rc, err);
    RETVAL = take_string(aTHX_ progress);
  OUTPUT:
    RETVAL

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Compressor

void
_spawn(func, class, command, output_fd, pipe_size)
    const char *func
    SV *class
    SV *command
    SV *output_fd
    SV *pipe_size
  PREINIT:
    int32_t write_fd = -1;
    vzdump_qemu_compressor *comp = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  PPCODE:
    rc = vzdump_qemu_compressor_spawn(str_of(aTHX_ command), fd_of(aTHX_ output_fd),
                                      uv_of(aTHX_ pipe_size), &comp, &write_fd, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
    EXTEND(SP, 2);
    PUSHs(sv_2mortal(new_handle(aTHX_ class, COMP_CLASS, &comp_vtbl, comp)));
    mPUSHi(write_fd);

IV
pid(comp)
    vzdump_qemu_compressor *comp
  CODE:
    /* -1 once it was reaped. */
    RETVAL = vzdump_qemu_compressor_pid(comp);
  OUTPUT:
    RETVAL

bool
_wait(func, comp, timeout_ms)
    const char *func
    vzdump_qemu_compressor *comp
    SV *timeout_ms
  PREINIT:
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    init_callbacks(aTHX_ &cbs, NULL);
    rc = vzdump_qemu_compressor_wait(comp, uv_of(aTHX_ timeout_ms), cancel_trampoline, &cbs,
                                     &err);
    /* A timeout leaves it running: false, wait again. */
    RETVAL = rc != VZDUMP_QEMU_TIMEOUT;
    if (rc == VZDUMP_QEMU_TIMEOUT && !cbs.error) {
        vzdump_qemu_string_free(err);
        rc = VZDUMP_QEMU_OK;
        err = NULL;
    }
    finish(aTHX_ func, &cbs, rc, err);
  OUTPUT:
    RETVAL

void
_kill(func, comp)
    const char *func
    vzdump_qemu_compressor *comp
  PREINIT:
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_compressor_kill(comp, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
