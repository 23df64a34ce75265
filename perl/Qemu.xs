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
 * - Perl code run from inside the library (the log sink, the VM callbacks, the cancel and
 *   signal checks that run pending signal handlers) runs under G_EVAL and a jump catcher
 *   of its own (call_caught); its error, or its exit, is kept, stops the library call, and
 *   is rethrown or carried on by settle() once the call returned;
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

/* Per-interpreter state in PL_modglobal, for what Perl code run inside a library call
 * leaves behind: the error a signal handler died with, and the jump (Perl's exit) it made.
 * settle() takes both once the library returned. */
#define SIGNAL_ERROR_KEY "PVE::RS::VZDump::Qemu/signal_error"
#define JUMP_KEY "PVE::RS::VZDump::Qemu/jump"
/* How many library calls run Perl code at the moment (call_caught), and the frames
 * released meanwhile (frame_release). */
#define INSIDE_KEY "PVE::RS::VZDump::Qemu/inside"
#define DEFERRED_KEY "PVE::RS::VZDump::Qemu/deferred"

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

/* The interpreter's own value under `key` in PL_modglobal (created undef). */
static SV *
global_slot(pTHX_ const char *key)
{
    return *hv_fetch(PL_modglobal, key, (I32)strlen(key), TRUE);
}

/* How many library calls run Perl code at the moment (call_caught). */
static IV
inside_count(pTHX)
{
    SV *slot = global_slot(aTHX_ INSIDE_KEY);

    return SvOK(slot) ? SvIV(slot) : 0;
}

/* The frames released while Perl code ran inside the library (frame_release). */
static AV *
deferred_frames(pTHX)
{
    SV *slot = global_slot(aTHX_ DEFERRED_KEY);

    if (!SvROK(slot))
        sv_setsv(slot, sv_2mortal(newRV_noinc((SV *)newAV())));
    return (AV *)SvRV(slot);
}

/* Frees the deferred frames once no library call runs Perl code any more. */
static void
free_deferred(pTHX)
{
    if (inside_count(aTHX) <= 0)
        av_clear(deferred_frames(aTHX));
}

/* ---- the values of one library call ---- */

/*
 * A library call's frame: an array holding what the call hands the library from Perl (the
 * copies of its strings, the owner of its peer, its handle arguments) by references of its
 * own, not by mortals, released with the scope of the calling statement. If Perl code run
 * inside the library exits, Perl unwinds every scope and frees every temporary before the
 * library returns: a frame released while Perl code runs inside the library (call_caught)
 * is deferred instead, and freed once no library call runs Perl code any more (settle()).
 */
static void
frame_release(pTHX_ void *ptr)
{
    if (inside_count(aTHX) > 0)
        av_push(deferred_frames(aTHX), (SV *)ptr);
    else
        SvREFCNT_dec((SV *)ptr);
}

/* A new frame, released with the scope of the calling statement. */
static AV *
frame_new(pTHX)
{
    AV *frame = newAV();

    SAVEDESTRUCTOR_X(frame_release, frame);
    return frame;
}

/* Holds `sv` (a handle argument) in `frame`. */
static void
hold(pTHX_ AV *frame, SV *sv)
{
    av_push(frame, SvREFCNT_inc_simple_NN(sv));
}

/* A string as UTF-8 bytes, valid as long as `frame`. */
static const char *
str_of(pTHX_ AV *frame, SV *sv)
{
    /* A copy, so the caller's value is not upgraded to UTF-8; one that does not take
     * over a temporary's buffer (a value may be read twice), made once (the macro reads
     * its argument more than once). */
    SV *copy = newSVsv_flags(sv, SV_GMAGIC | SV_NOSTEAL);

    av_push(frame, copy);
    return SvPVutf8_nolen(copy);
}

/* Like str_of, undef meaning NULL. */
static const char *
opt_str_of(pTHX_ AV *frame, SV *sv)
{
    return SvOK(sv) ? str_of(aTHX_ frame, sv) : NULL;
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
    return SvOK(sv) && strEQ(SvPV_nolen(sv), "current") ? VZDUMP_QEMU_STYLE_CURRENT
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

/* The jump Perl code run from the library made (non-zero: JMPENV's code, 2 for exit). Once
 * set, nothing calls Perl again until settle() carries the jump on. */
static int
pending_jump(pTHX)
{
    SV *slot = global_slot(aTHX_ JUMP_KEY);
    return SvOK(slot) ? (int)SvIV(slot) : 0;
}

/* Continues a jump Perl code made inside the library call, now that the library's frames
 * are gone: Perl had unwound its own stacks before the jump was caught. */
static void
carry_on_jump(pTHX)
{
    int jump = pending_jump(aTHX);

    if (jump) {
        sv_setsv(global_slot(aTHX_ JUMP_KEY), &PL_sv_undef);
        JMPENV_JUMP(jump);
    }
}

/* Keeps the first error a signal handler died with inside a library call (takes `err`). */
static void
keep_signal_error(pTHX_ SV *err)
{
    SV *slot = global_slot(aTHX_ SIGNAL_ERROR_KEY);

    if (!SvOK(slot))
        sv_setsv(slot, err);
    SvREFCNT_dec(err);
}

/* The kept signal-handler error (a new SV the caller owns), or NULL; clears it. */
static SV *
take_signal_error(pTHX)
{
    SV *slot = global_slot(aTHX_ SIGNAL_ERROR_KEY);
    SV *err;

    if (!SvOK(slot))
        return NULL;
    err = newSVsv(slot);
    sv_setsv(slot, &PL_sv_undef);
    return err;
}

/*
 * Calls the code reference `cv`, or the sub `name` when `cv` is NULL, with the arguments
 * `level` and `line` if `level` is given, under G_EVAL and a jump catcher of its own:
 * Perl's exit (or any other jump out of the call) must not unwind through the library's
 * frames. A jump is kept (pending_jump); Perl has already unwound its own stacks then.
 * Returns the error the code died with (a new SV the caller owns), or NULL.
 */
static SV *
call_caught(pTHX_ SV *cv, const char *name, const char *level, const char *line)
{
    dJMPENV;
    int ret;
    SV *volatile err = NULL;

    sv_setiv(global_slot(aTHX_ INSIDE_KEY), inside_count(aTHX) + 1);
    JMPENV_PUSH(ret);
    if (ret == 0) {
        dSP;
        ENTER;
        SAVETMPS;
        PUSHMARK(SP);
        if (level) {
            SV *text = sv_2mortal(newSVpv(line ? line : "", 0));
            sv_utf8_decode(text);
            EXTEND(SP, 2);
            PUSHs(sv_2mortal(newSVpv(level, 0)));
            PUSHs(text);
        }
        PUTBACK;
        if (cv)
            call_sv(cv, G_EVAL | G_DISCARD);
        else
            call_pv(name, G_EVAL | G_DISCARD | G_NOARGS);
        if (SvTRUE(ERRSV))
            err = newSVsv(ERRSV);
        FREETMPS;
        LEAVE;
    }
    else
        sv_setiv(global_slot(aTHX_ JUMP_KEY), ret);
    JMPENV_POP;
    sv_setiv(global_slot(aTHX_ INSIDE_KEY), inside_count(aTHX) - 1);
    if (!pending_jump(aTHX))
        free_deferred(aTHX);
    return err;
}

/*
 * Runs the handlers of signals that arrived while the library waited (Perl defers them
 * to its run loop), through call_caught. Returns the error a handler died with (a new SV
 * the caller owns), or NULL.
 */
static SV *
dispatch_signals(pTHX)
{
    if (!PL_sig_pending || pending_jump(aTHX))
        return NULL;
    return call_caught(aTHX_ NULL, DISPATCH_SUB, NULL, NULL);
}

/*
 * Dies with the library's message + "\n" after freeing it; argument errors name the Perl
 * function ("func: message"). On INTERRUPTED the pending signal handlers run first; if
 * one dies (the seed's "interrupted by signal"), that is the error, as with Perl's waits,
 * and if one exits, the exit goes on.
 */
static void
fail(pTHX_ const char *func, vzdump_qemu_result rc, char *err)
{
    SV *msg;
    bool argument = rc == VZDUMP_QEMU_INVALID_PARAMETER || rc == VZDUMP_QEMU_NULL_PARAMETER;

    if (err)
        msg = sv_2mortal(newSVpvf("%s%s%s\n", argument ? func : "", argument ? ": " : "", err));
    else
        msg = sv_2mortal(newSVpvf("%s: vzdump-qemu call failed with code %u\n", func,
                                  (unsigned)rc));
    vzdump_qemu_string_free(err);
    sv_utf8_decode(msg);
    if (rc == VZDUMP_QEMU_INTERRUPTED) {
        SV *handler_err = dispatch_signals(aTHX);
        carry_on_jump(aTHX);
        if (handler_err)
            croak_sv(sv_2mortal(handler_err));
    }
    croak_sv(msg);
}

/*
 * After every library call: carries on an exit that Perl code run inside it made, else
 * rethrows the first error of that code (a callback's, then a signal handler's), else
 * fails on rc. `out` (a library string or NULL) is freed when the call does not return.
 */
static void
settle(pTHX_ const char *func, callbacks *cbs, vzdump_qemu_result rc, char *err, char *out)
{
    SV *callback_err = cbs ? cbs->error : NULL;
    SV *signal_err = take_signal_error(aTHX);

    if (pending_jump(aTHX) || callback_err || signal_err || rc != VZDUMP_QEMU_OK)
        vzdump_qemu_string_free(out);
    if (pending_jump(aTHX)) {
        vzdump_qemu_string_free(err);
        SvREFCNT_dec(callback_err);
        SvREFCNT_dec(signal_err);
        /* The library is done with the frames the exit released. */
        free_deferred(aTHX);
        carry_on_jump(aTHX);
    }
    if (callback_err || signal_err) {
        vzdump_qemu_string_free(err);
        if (callback_err)
            SvREFCNT_dec(signal_err);
        croak_sv(sv_2mortal(callback_err ? callback_err : signal_err));
    }
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ func, rc, err);
}

/* Signal check of every peer (userdata: the interpreter): runs the pending signal handlers;
 * the call goes on if they return, and stops if one dies (its error is kept) or exits. */
static bool
signal_trampoline(void *userdata)
{
    dTHXa((PerlInterpreter *)userdata);
    SV *err = dispatch_signals(aTHX);

    if (err)
        keep_signal_error(aTHX_ err);
    return SvOK(global_slot(aTHX_ SIGNAL_ERROR_KEY)) || pending_jump(aTHX);
}

/* The peer a target names (the library parses it), worded in `style`; dies on bad input.
 * `frame` owns it: it is freed with the frame, also when a later conversion or call of the
 * XSUB dies. */
static vzdump_qemu_peer *
new_peer(pTHX_ AV *frame, const char *func, SV *target, SV *run_dir, SV *style)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
    SV *owner;

    rc = vzdump_qemu_peer_new_target(str_of(aTHX_ frame, target),
                                     opt_str_of(aTHX_ frame, run_dir), &peer, &err);
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_peer_set_style(peer, style_of(aTHX_ style), &err);
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_peer_set_signal_check(peer, signal_trampoline, aTHX, &err);
    if (rc != VZDUMP_QEMU_OK) {
        vzdump_qemu_peer_free(peer);
        fail(aTHX_ func, rc, err);
    }
    owner = newSV_type(SVt_PVMG);
    av_push(frame, owner);
    sv_magicext(owner, NULL, PERL_MAGIC_ext, &peer_vtbl, (const char *)peer, 0)->mg_flags |=
        MGf_DUP;
    return peer;
}

/*
 * Log sink: calls the Perl callback (call_caught); a die or exit asks the library to stop.
 * Pending signal handlers run first: Perl would run them inside the callback, where a
 * handler's die would cost the line (e.g. the error of the wait the signal interrupted).
 */
static uint32_t
log_trampoline(void *userdata, uint32_t level, const char *line)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);
    SV *err;
    uint32_t stop = 0;

    if (pending_jump(aTHX))
        return 1;
    if (!cbs->log_cb)
        return 0;
    if ((err = dispatch_signals(aTHX))) {
        keep_error(aTHX_ cbs, err);
        stop = 1;
    }
    if (pending_jump(aTHX))
        return 1;
    err = call_caught(aTHX_ cbs->log_cb, NULL,
                      level == VZDUMP_QEMU_LOG_ERR ? "err"
                      : level == VZDUMP_QEMU_LOG_WARN ? "warn" : "info", line);
    if (err) {
        keep_error(aTHX_ cbs, err);
        stop = 1;
    }
    return stop || pending_jump(aTHX);
}

/* Cancel check (every 100 ms and at every signal): runs pending signal handlers, as Perl
 * would between two statements; a handler that dies or exits stops the call, as does one
 * that died in a signal check before. */
static bool
cancel_trampoline(void *userdata)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);
    SV *err = dispatch_signals(aTHX);

    if (err)
        keep_error(aTHX_ cbs, err);
    return cbs->error != NULL || SvOK(global_slot(aTHX_ SIGNAL_ERROR_KEY)) ||
        pending_jump(aTHX);
}

/* The backup job's callbacks: the log sink and cancel check above, and the VM's start and
 * stop. `base` comes first: the log and cancel trampolines take the same userdata. */
typedef struct {
    callbacks base;
    SV *start_cb;
    SV *stop_cb;
} job_callbacks;

/* Calls a VM start or stop code reference (call_caught); its die text (without the final
 * newline) is the callback's failure message. */
static uint32_t
vm_trampoline(pTHX_ SV *cb, char *error_buf, size_t error_len)
{
    SV *err = pending_jump(aTHX) ? NULL : call_caught(aTHX_ cb, NULL, NULL, NULL);
    STRLEN len;
    const char *msg;

    if (pending_jump(aTHX)) {
        SvREFCNT_dec(err);
        snprintf(error_buf, error_len, "the Perl process is exiting");
        return 1;
    }
    if (!err)
        return 0;
    msg = SvPVutf8(err, len);
    while (len > 0 && msg[len - 1] == '\n')
        len--;
    snprintf(error_buf, error_len, "%.*s", (int)len, msg);
    SvREFCNT_dec(err);
    return 1;
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
    AV *frame;
    vzdump_qemu_peer *peer;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_mon_cmd(peer, str_of(aTHX_ frame, command),
                             opt_str_of(aTHX_ frame, args_json), fd_of(aTHX_ fd),
                             uv_of(aTHX_ timeout_ms), &out, &err);
    settle(aTHX_ func, NULL, rc, err, out);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_backup_start_vma(peer, fd_of(aTHX_ fd), opt_str_of(aTHX_ frame, params_json),
                                      uv_of(aTHX_ budget_ms), &uuid, &err);
    settle(aTHX_ func, NULL, rc, err, uuid);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_backup_start_pbs(peer, str_of(aTHX_ frame, params_json),
                                      uv_of(aTHX_ timeout_ms), &uuid, &err);
    settle(aTHX_ func, NULL, rc, err, uuid);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_backup_query(peer, &out, &err);
    settle(aTHX_ func, NULL, rc, err, out);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_backup_cancel(peer, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);

SV *
_qga_fs_freeze(func, target, run_dir, style, log_cb)
    const char *func
    SV *target
    SV *run_dir
    SV *style
    SV *log_cb
  PREINIT:
    AV *frame;
    vzdump_qemu_peer *peer;
    callbacks cbs;
    bool frozen = FALSE;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_qga_fs_freeze(peer, log_trampoline, cancel_trampoline, &cbs, &frozen,
                                   &err);
    settle(aTHX_ func, &cbs, rc, err, NULL);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_qga_fs_thaw(peer, log_trampoline, &cbs, &err);
    settle(aTHX_ func, &cbs, rc, err, NULL);

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
    AV *frame;
    vzdump_qemu_peer *peer;
    vzdump_qemu_job *job = NULL;
    job_callbacks cbs;
    char *record = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = strEQ(format, "pbs")
        ? vzdump_qemu_job_new_pbs(peer, str_of(aTHX_ frame, job_json), &job, &err)
        : vzdump_qemu_job_new_vma(peer, str_of(aTHX_ frame, job_json), &job, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
    init_callbacks(aTHX_ &cbs.base, log_cb);
    cbs.start_cb = start_cb;
    cbs.stop_cb = stop_cb;
    rc = vzdump_qemu_job_run(job, log_trampoline, start_trampoline, stop_trampoline,
                             cancel_trampoline, &cbs, &err);
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_job_result_json(job, &record, &err);
    vzdump_qemu_job_free(job);
    settle(aTHX_ func, &cbs.base, rc, err, record);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    vzdump_qemu_power *power = NULL;
    job_callbacks cbs;
    char *state = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_power_new(peer, str_of(aTHX_ frame, state_json), &power, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
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
    settle(aTHX_ func, &cbs.base, rc, err, state);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_backup_abort(peer, log_trampoline, &cbs, &err);
    settle(aTHX_ func, &cbs, rc, err, NULL);

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Conn

SV *
_open(func, class, target, run_dir, style)
    const char *func
    SV *class
    SV *target
    SV *run_dir
    SV *style
  PREINIT:
    AV *frame;
    vzdump_qemu_peer *peer;
    vzdump_qemu_conn *conn = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_conn_open(peer, &conn, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
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
    AV *frame;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    rc = vzdump_qemu_conn_execute(conn, str_of(aTHX_ frame, command),
                                  opt_str_of(aTHX_ frame, args_json), fd_of(aTHX_ fd),
                                  uv_of(aTHX_ timeout_ms), &out, &err);
    settle(aTHX_ func, NULL, rc, err, out);
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
    AV *frame;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    rc = vzdump_qemu_conn_getfd(conn, str_of(aTHX_ frame, fdname), fd_of(aTHX_ fd), &err);
    settle(aTHX_ func, NULL, rc, err, NULL);

SV *
_take_events(func, conn)
    const char *func
    vzdump_qemu_conn *conn
  PREINIT:
    AV *frame;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    rc = vzdump_qemu_conn_take_events(conn, &out, &err);
    settle(aTHX_ func, NULL, rc, err, out);
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
    AV *frame;
    vzdump_qemu_peer *peer;
    vzdump_qemu_poll *poll = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    peer = new_peer(aTHX_ frame, func, target, run_dir, style);
    rc = vzdump_qemu_poll_new(peer, str_of(aTHX_ frame, job_uuid), style_of(aTHX_ style),
                              uv_of(aTHX_ interval_ms), &poll, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
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
    AV *frame;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    rc = vzdump_qemu_poll_set_qemu_support(poll, str_of(aTHX_ frame, support_json),
                                           SvTRUE(is_template), &err);
    settle(aTHX_ func, NULL, rc, err, NULL);

SV *
_run(func, poll, log_cb, cancel_on_error)
    const char *func
    vzdump_qemu_poll *poll
    SV *log_cb
    SV *cancel_on_error
  PREINIT:
    AV *frame;
    callbacks cbs;
    char *progress = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    init_callbacks(aTHX_ &cbs, log_cb);
    rc = vzdump_qemu_poll_run(poll, log_trampoline, cancel_trampoline, &cbs,
                              SvTRUE(cancel_on_error), &progress, &err);
    settle(aTHX_ func, &cbs, rc, err, progress);
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
    AV *frame;
    int32_t write_fd = -1;
    vzdump_qemu_compressor *comp = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  PPCODE:
    frame = frame_new(aTHX);
    rc = vzdump_qemu_compressor_spawn(str_of(aTHX_ frame, command), fd_of(aTHX_ output_fd),
                                      uv_of(aTHX_ pipe_size), &comp, &write_fd, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
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
    AV *frame;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
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
    settle(aTHX_ func, &cbs, rc, err, NULL);
  OUTPUT:
    RETVAL

void
_kill(func, comp)
    const char *func
    vzdump_qemu_compressor *comp
  PREINIT:
    AV *frame;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    frame = frame_new(aTHX);
    hold(aTHX_ frame, ST(1));
    rc = vzdump_qemu_compressor_kill(comp, &err);
    settle(aTHX_ func, NULL, rc, err, NULL);
