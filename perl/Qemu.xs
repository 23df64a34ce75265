/*
 * XS glue between Perl and libvzdump_qemu (include/vzdump_qemu.h); the Perl API and its
 * documentation are in lib/PVE/RS/VZDump/Qemu.pm, which calls the _-prefixed XSUBs here.
 *
 * Rules (docs: ffi-conventions.md section 6):
 * - croak only from an XSUB's own frame, after the library strings and handles of the call
 *   are freed; never while library frames are on the stack (a longjmp across Rust frames is
 *   undefined behaviour);
 * - Perl code run from inside the library (the log callback, signal handlers) runs under
 *   G_EVAL; its error is kept, stops the library call, and is rethrown once it returned;
 * - every message ends in "\n", so Perl appends no " at FILE line N" (PVE style).
 */
#define PERL_NO_GET_CONTEXT
#include "EXTERN.h"
#include "perl.h"
#include "XSUB.h"

#include <string.h>
#include <unistd.h>

#include "vzdump_qemu.h"

#define CONN_CLASS "PVE::RS::VZDump::Qemu::Conn"
#define POLL_CLASS "PVE::RS::VZDump::Qemu::Poll"
#define COMP_CLASS "PVE::RS::VZDump::Qemu::Compressor"

/* Perl sub run under G_EVAL to dispatch pending ("safe") signal handlers. */
#define DISPATCH_SUB "PVE::RS::VZDump::Qemu::_dispatch_signals"

/*
 * A compressor handle plus the process that spawned it: only that process can kill and
 * reap the child, so a copy inherited through fork() is dropped without touching it.
 */
typedef struct {
    vzdump_qemu_compressor *comp;
    pid_t pid;    /* the compressor's */
    pid_t owner;  /* the process that spawned it */
    bool done;    /* reaped by a wait that reported its exit status */
} vzq_comp;

static void croak_arg(pTHX_ const char *what, const char *expected, SV *got)
    __attribute__noreturn__;
static void fail(pTHX_ vzdump_qemu_result rc, char *err) __attribute__noreturn__;

/* ---- handles: blessed references to a scalar carrying our ext magic ---- */

static int conn_free_magic(pTHX_ SV *sv, MAGIC *mg);
static int poll_free_magic(pTHX_ SV *sv, MAGIC *mg);
static int comp_free_magic(pTHX_ SV *sv, MAGIC *mg);

/* The magic's identity marks objects made here; freeing the object frees the handle. */
static const MGVTBL conn_vtbl = { NULL, NULL, NULL, NULL, conn_free_magic, NULL, NULL, NULL };
static const MGVTBL poll_vtbl = { NULL, NULL, NULL, NULL, poll_free_magic, NULL, NULL, NULL };
static const MGVTBL comp_vtbl = { NULL, NULL, NULL, NULL, comp_free_magic, NULL, NULL, NULL };

static void
comp_release(vzq_comp *w)
{
    /* In a forked child the process is not ours: leave it to the parent. */
    if (w->owner == getpid())
        vzdump_qemu_compressor_free(w->comp);
    Safefree(w);
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
    if (mg->mg_ptr)
        comp_release((vzq_comp *)mg->mg_ptr);
    mg->mg_ptr = NULL;
    return 0;
}

/* A short description of a value for argument errors (a new mortal). */
static SV *
describe(pTHX_ SV *sv)
{
    if (!SvOK(sv))
        return sv_2mortal(newSVpvs("undef"));
    if (sv_isobject(sv))
        return sv_2mortal(newSVpvf("a %s object", sv_reftype(SvRV(sv), TRUE)));
    if (SvROK(sv)) {
        const char *type = sv_reftype(SvRV(sv), FALSE);
        return sv_2mortal(newSVpvf("%s %s reference", strchr("AEIOU", type[0]) ? "an" : "a",
                                   type));
    }
    return sv_2mortal(newSVpvf("'%" SVf "'", SVfARG(sv)));
}

/* Dies with "<what> must be <expected>, got <value>". */
static void
croak_arg(pTHX_ const char *what, const char *expected, SV *got)
{
    croak_sv(sv_2mortal(newSVpvf("%s must be %s, got %" SVf "\n", what, expected,
                                 SVfARG(describe(aTHX_ got)))));
}

/* Blesses a new handle object into `class` (a class name, or CONN_CLASS etc.). */
static SV *
new_handle(pTHX_ SV *class, const char *fallback, const MGVTBL *vtbl, void *ptr)
{
    SV *obj = newSV_type(SVt_PVMG);
    const char *name = (SvOK(class) && !SvROK(class)) ? SvPV_nolen(class) : fallback;

    sv_magicext(obj, NULL, PERL_MAGIC_ext, vtbl, (const char *)ptr, 0);
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

/* The live pointer behind a handle object; dies if it is no such object or closed. */
static void *
handle_ptr(pTHX_ SV *sv, const MGVTBL *vtbl, const char *class, const char *what)
{
    MAGIC *mg = handle_magic(aTHX_ sv, vtbl);

    if (!mg && sv_isobject(sv) && sv_derived_from(sv, class))
        croak("the handle is a %s object not made by this module\n", class);
    if (!mg)
        croak_arg(aTHX_ "the handle", form("a %s object", class), sv);
    if (!mg->mg_ptr)
        croak("the %s handle is closed\n", what);
    return mg->mg_ptr;
}

/* ---- arguments ---- */

/* A string argument as UTF-8 bytes without NUL (valid until the statement ends). */
static const char *
str_arg(pTHX_ SV *sv, const char *what)
{
    STRLEN len;
    const char *p;

    if (!SvOK(sv) || (SvROK(sv) && !SvAMAGIC(sv)))
        croak_arg(aTHX_ what, "a string", sv);
    p = SvPVutf8(sv_mortalcopy(sv), len);
    if (strlen(p) != len)
        croak("%s must not contain NUL bytes\n", what);
    return p;
}

/* Like str_arg, undef meaning NULL. */
static const char *
opt_str_arg(pTHX_ SV *sv, const char *what)
{
    return SvOK(sv) ? str_arg(aTHX_ sv, what) : NULL;
}

/* A non-negative integer up to `max`; undef is 0. */
static UV
uint_arg(pTHX_ SV *sv, const char *what, UV max)
{
    NV value;

    if (!SvOK(sv))
        return 0;
    if (SvROK(sv) || !looks_like_number(sv))
        croak_arg(aTHX_ what, "a number", sv);
    value = SvNV(sv);
    if (!(value >= 0 && value <= (NV)max))    /* also refuses NaN */
        croak_arg(aTHX_ what, form("a number between 0 and %" UVuf, max), sv);
    return (UV)value;
}

/* A file descriptor number. */
static int32_t
fd_arg(pTHX_ SV *sv, const char *what)
{
    if (!SvOK(sv) || SvROK(sv) || !looks_like_number(sv) || SvNV(sv) < 0
        || SvNV(sv) > (NV)INT32_MAX || SvNV(sv) != (NV)(IV)SvNV(sv))
        croak_arg(aTHX_ what, "a file descriptor number", sv);
    return (int32_t)SvIV(sv);
}

/* A VM id: 1 to 10 decimal digits with a value that fits 32 bits. */
static bool
parse_vmid(const char *s, uint32_t *out)
{
    uint64_t value = 0;
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i >= 10 || s[i] < '0' || s[i] > '9')
            return FALSE;
        value = value * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || value > UINT32_MAX)
        return FALSE;
    *out = (uint32_t)value;
    return TRUE;
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
 * Dies with the library's message + "\n" after freeing it. The caller has freed every
 * other resource. On INTERRUPTED the pending signal handlers run first; if one dies
 * (the seed's "interrupted by signal"), that is the error, as with Perl's own waits.
 */
static void
fail(pTHX_ vzdump_qemu_result rc, char *err)
{
    SV *msg;

    if (rc == VZDUMP_QEMU_INTERRUPTED) {
        SV *handler_err = dispatch_signals(aTHX);
        if (handler_err) {
            vzdump_qemu_string_free(err);
            croak_sv(sv_2mortal(handler_err));
        }
    }
    if (err) {
        msg = sv_2mortal(newSVpvf("%s\n", err));
        sv_utf8_decode(msg);
        vzdump_qemu_string_free(err);
    } else {
        msg = sv_2mortal(newSVpvf("vzdump-qemu call failed with code %u\n", (unsigned)rc));
    }
    croak_sv(msg);
}

/* The VZDUMP_QEMU_STYLE_* of a style name ('seed' or 'current'; undef is 'seed'). */
static uint32_t
style_arg(pTHX_ SV *style, const char *what)
{
    const char *name = SvOK(style) ? str_arg(aTHX_ style, what) : "seed";

    if (strEQ(name, "seed"))
        return VZDUMP_QEMU_STYLE_SEED;
    if (strEQ(name, "current"))
        return VZDUMP_QEMU_STYLE_CURRENT;
    croak_arg(aTHX_ what, "'seed' or 'current'", style);
}

/*
 * Makes the peer for a VM id or socket path (a string with '/'), worded in the style of
 * $PVE::RS::VZDump::Qemu::STYLE; dies on bad input.
 */
static vzdump_qemu_peer *
new_peer(pTHX_ SV *target, SV *run_dir)
{
    vzdump_qemu_peer *peer = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
    uint32_t vmid;
    const char *t = str_arg(aTHX_ target, "the VM id or socket path");
    const char *dir = opt_str_arg(aTHX_ run_dir, "the run directory");
    SV *style_sv = get_sv("PVE::RS::VZDump::Qemu::STYLE", 0);
    uint32_t style = style_arg(aTHX_ style_sv ? style_sv : &PL_sv_undef,
                               "$PVE::RS::VZDump::Qemu::STYLE");

    if (strchr(t, '/'))
        rc = vzdump_qemu_peer_new_path(t, &peer, &err);
    else if (parse_vmid(t, &vmid))
        rc = vzdump_qemu_peer_new_vmid(vmid, dir, &peer, &err);
    else
        croak_sv(sv_2mortal(newSVpvf("'%s' is neither a VM id nor a socket path (a path"
                                     " contains '/')\n", t)));
    if (rc == VZDUMP_QEMU_OK)
        rc = vzdump_qemu_peer_set_style(peer, style, &err);
    if (rc != VZDUMP_QEMU_OK) {
        vzdump_qemu_peer_free(peer);
        fail(aTHX_ rc, err);
    }
    return peer;
}

/* ---- callbacks the library calls (status loop, agent steps) ---- */

typedef struct {
    PerlInterpreter *perl;
    SV *log_cb;   /* code reference (level, line) */
    SV *error;    /* first error of Perl code run from a callback; owned */
} callbacks;

static const char *
level_name(uint32_t level)
{
    switch (level) {
    case VZDUMP_QEMU_LOG_WARN:
        return "warn";
    case VZDUMP_QEMU_LOG_ERR:
        return "err";
    default:
        return "info";
    }
}

/*
 * Log sink: calls the Perl callback under G_EVAL and keeps the first error; a die stops
 * the status loop (the agent steps go on and the XSUB rethrows the error afterwards).
 * Pending signal handlers run first: Perl would run them inside the callback, where a
 * handler's die would cost the line (e.g. the error of the wait the signal interrupted).
 */
static uint32_t
log_trampoline(void *userdata, uint32_t level, const char *line)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);
    dSP;
    SV *text, *handler_err;
    uint32_t stop = 0;

    if ((handler_err = dispatch_signals(aTHX))) {
        if (!cbs->error)
            cbs->error = handler_err;
        else
            SvREFCNT_dec(handler_err);
        stop = 1;
    }
    ENTER;
    SAVETMPS;
    text = sv_2mortal(newSVpv(line ? line : "", 0));
    sv_utf8_decode(text);
    PUSHMARK(SP);
    EXTEND(SP, 2);
    PUSHs(sv_2mortal(newSVpv(level_name(level), 0)));
    PUSHs(text);
    PUTBACK;
    call_sv(cbs->log_cb, G_EVAL | G_DISCARD);
    if (SvTRUE(ERRSV)) {
        if (!cbs->error)
            cbs->error = newSVsv(ERRSV);
        stop = 1;
    }
    FREETMPS;
    LEAVE;
    return stop;
}

/* Cancel check (every 100 ms): runs pending signal handlers; a die stops the loop. */
static bool
cancel_trampoline(void *userdata)
{
    callbacks *cbs = (callbacks *)userdata;
    dTHXa(cbs->perl);

    if (!cbs->error)
        cbs->error = dispatch_signals(aTHX);
    return cbs->error != NULL;
}

/* ---- the guest agent ---- */

/*
 * Makes the peer whose guest agent a target names: a VM id's <run_dir>/<vmid>.qga, or a
 * socket path taken as the agent's own socket. Dies on bad input.
 */
static vzdump_qemu_peer *
new_agent_peer(pTHX_ SV *target, SV *run_dir)
{
    vzdump_qemu_peer *peer = new_peer(aTHX_ target, run_dir);
    const char *t = str_arg(aTHX_ target, "the VM id or socket path");
    char *err = NULL;
    vzdump_qemu_result rc;

    if (!strchr(t, '/'))
        return peer;
    rc = vzdump_qemu_peer_set_agent_path(peer, t, &err);
    if (rc != VZDUMP_QEMU_OK) {
        vzdump_qemu_peer_free(peer);
        fail(aTHX_ rc, err);
    }
    return peer;
}

static void
check_log_cb(pTHX_ SV *log_cb)
{
    if (!SvROK(log_cb) || SvTYPE(SvRV(log_cb)) != SVt_PVCV)
        croak_arg(aTHX_ "the log callback", "a code reference", log_cb);
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
_command(target, run_dir, command, args_json, timeout_ms)
    SV *target
    SV *run_dir
    SV *command
    SV *args_json
    SV *timeout_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    const char *cmd, *args;
    UV ms;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    cmd = str_arg(aTHX_ command, "the command");
    args = opt_str_arg(aTHX_ args_json, "the arguments");
    ms = uint_arg(aTHX_ timeout_ms, "the timeout", UINT64_MAX / 2);
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_command(peer, cmd, args, ms, &out, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

SV *
_backup_start_vma(target, run_dir, fd, params_json, budget_ms)
    SV *target
    SV *run_dir
    SV *fd
    SV *params_json
    SV *budget_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    int32_t target_fd;
    const char *params;
    UV ms;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    target_fd = fd_arg(aTHX_ fd, "the output file descriptor");
    params = opt_str_arg(aTHX_ params_json, "the parameters");
    ms = uint_arg(aTHX_ budget_ms, "the timeout", UINT64_MAX / 2);
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_backup_start_vma(peer, target_fd, params, ms, &uuid, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ uuid);
  OUTPUT:
    RETVAL

SV *
_backup_start_pbs(target, run_dir, params_json, timeout_ms)
    SV *target
    SV *run_dir
    SV *params_json
    SV *timeout_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    const char *params;
    UV ms;
    char *uuid = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    params = str_arg(aTHX_ params_json, "the parameters");
    ms = uint_arg(aTHX_ timeout_ms, "the timeout", UINT64_MAX / 2);
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_backup_start_pbs(peer, params, ms, &uuid, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ uuid);
  OUTPUT:
    RETVAL

SV *
_backup_query(target, run_dir)
    SV *target
    SV *run_dir
  PREINIT:
    vzdump_qemu_peer *peer;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_backup_query(peer, &out, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
_backup_cancel(target, run_dir)
    SV *target
    SV *run_dir
  PREINIT:
    vzdump_qemu_peer *peer;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_backup_cancel(peer, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);

SV *
_qga_command(target, run_dir, command, args_json, timeout_ms)
    SV *target
    SV *run_dir
    SV *command
    SV *args_json
    SV *timeout_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    const char *cmd, *args;
    UV ms;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    cmd = str_arg(aTHX_ command, "the command");
    args = opt_str_arg(aTHX_ args_json, "the arguments");
    ms = uint_arg(aTHX_ timeout_ms, "the timeout", UINT64_MAX / 2);
    peer = new_agent_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_qga_command(peer, cmd, args, ms, &out, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

SV *
_qga_fs_freeze(target, run_dir, log_cb)
    SV *target
    SV *run_dir
    SV *log_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    callbacks cbs;
    bool frozen = FALSE;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    check_log_cb(aTHX_ log_cb);
    peer = new_agent_peer(aTHX_ target, run_dir);
    cbs.perl = aTHX;
    cbs.log_cb = log_cb;
    cbs.error = NULL;
    rc = vzdump_qemu_qga_fs_freeze(peer, log_trampoline, &cbs, &frozen, &err);
    /* The library treats a signal as a failed step; its handler runs here, not after
     * we returned, where a die would lose the "thaw due" result. */
    if (!cbs.error)
        cbs.error = dispatch_signals(aTHX);
    /* A die leaves the caller no way to thaw: thaw now, quietly (its log sink died or
     * the task is being aborted), so the guest is never left frozen. */
    if (cbs.error && frozen)
        vzdump_qemu_qga_fs_thaw(peer, NULL, NULL, NULL);
    vzdump_qemu_peer_free(peer);
    if (cbs.error) {
        vzdump_qemu_string_free(err);
        croak_sv(sv_2mortal(cbs.error));
    }
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    /* The seed's values: 1 when a thaw is due, else undef. */
    RETVAL = frozen ? newSViv(1) : newSV(0);
  OUTPUT:
    RETVAL

void
_qga_fs_thaw(target, run_dir, log_cb)
    SV *target
    SV *run_dir
    SV *log_cb
  PREINIT:
    vzdump_qemu_peer *peer;
    callbacks cbs;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    check_log_cb(aTHX_ log_cb);
    peer = new_agent_peer(aTHX_ target, run_dir);
    cbs.perl = aTHX;
    cbs.log_cb = log_cb;
    cbs.error = NULL;
    rc = vzdump_qemu_qga_fs_thaw(peer, log_trampoline, &cbs, &err);
    vzdump_qemu_peer_free(peer);
    if (cbs.error) {
        vzdump_qemu_string_free(err);
        croak_sv(sv_2mortal(cbs.error));
    }
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Conn

SV *
_open(class, target, run_dir)
    SV *class
    SV *target
    SV *run_dir
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_conn *conn = NULL;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_conn_open(peer, &conn, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = new_handle(aTHX_ class, CONN_CLASS, &conn_vtbl, conn);
  OUTPUT:
    RETVAL

SV *
_execute(conn, command, args_json, fd, timeout_ms)
    vzdump_qemu_conn *conn
    SV *command
    SV *args_json
    SV *fd
    SV *timeout_ms
  PREINIT:
    const char *cmd, *args;
    int32_t send_fd;
    UV ms;
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    cmd = str_arg(aTHX_ command, "the command");
    args = opt_str_arg(aTHX_ args_json, "the arguments");
    send_fd = SvOK(fd) ? fd_arg(aTHX_ fd, "the file descriptor") : -1;
    ms = uint_arg(aTHX_ timeout_ms, "the timeout", UINT64_MAX / 2);
    rc = vzdump_qemu_conn_execute(conn, cmd, args, send_fd, ms, &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
_getfd(conn, fd, fdname)
    vzdump_qemu_conn *conn
    SV *fd
    SV *fdname
  PREINIT:
    int32_t send_fd;
    const char *name;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    send_fd = fd_arg(aTHX_ fd, "the file descriptor");
    name = str_arg(aTHX_ fdname, "the fd name");
    rc = vzdump_qemu_conn_getfd(conn, name, send_fd, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);

SV *
_take_events(conn)
    vzdump_qemu_conn *conn
  PREINIT:
    char *out = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    rc = vzdump_qemu_conn_take_events(conn, &out, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ out);
  OUTPUT:
    RETVAL

void
close(self)
    SV *self
  PREINIT:
    MAGIC *mg;
  CODE:
    mg = handle_magic(aTHX_ self, &conn_vtbl);
    if (!mg)
        croak_arg(aTHX_ "the handle", "a " CONN_CLASS " object", self);
    vzdump_qemu_conn_free((vzdump_qemu_conn *)mg->mg_ptr);
    mg->mg_ptr = NULL;

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Poll

SV *
_new(class, target, run_dir, job_uuid, style, interval_ms)
    SV *class
    SV *target
    SV *run_dir
    SV *job_uuid
    SV *style
    SV *interval_ms
  PREINIT:
    vzdump_qemu_peer *peer;
    vzdump_qemu_poll *poll = NULL;
    const char *uuid;
    uint32_t style_code;
    UV ms;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    uuid = str_arg(aTHX_ job_uuid, "the job UUID");
    style_code = style_arg(aTHX_ style, "the style");
    ms = uint_arg(aTHX_ interval_ms, "the interval", UINT64_MAX / 2);
    peer = new_peer(aTHX_ target, run_dir);
    rc = vzdump_qemu_poll_new(peer, uuid, style_code, ms, &poll, &err);
    vzdump_qemu_peer_free(peer);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = new_handle(aTHX_ class, POLL_CLASS, &poll_vtbl, poll);
  OUTPUT:
    RETVAL

void
_set_qemu_support(poll, support_json, is_template)
    vzdump_qemu_poll *poll
    SV *support_json
    SV *is_template
  PREINIT:
    const char *support;
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    support = str_arg(aTHX_ support_json, "the qemu_support");
    rc = vzdump_qemu_poll_set_qemu_support(poll, support, SvTRUE(is_template), &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);

SV *
_run(poll, log_cb, cancel_on_error)
    vzdump_qemu_poll *poll
    SV *log_cb
    SV *cancel_on_error
  PREINIT:
    callbacks cbs;
    bool cancel = SvTRUE(cancel_on_error);
    char *progress = NULL, *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    check_log_cb(aTHX_ log_cb);
    cbs.perl = aTHX;
    cbs.log_cb = log_cb;
    cbs.error = NULL;
    for (;;) {
        rc = vzdump_qemu_poll_run(poll, log_trampoline, cancel_trampoline, &cbs, cancel,
                                  &progress, &err);
        if (rc != VZDUMP_QEMU_INTERRUPTED || cbs.error)
            break;
        /* A signal: run its Perl handler now. If it returned, resume the loop; if it
         * died, stop, but with cancel_on_error resume once more: the cancel check then
         * stops the loop at once, which cancels the job as for any other failure. */
        vzdump_qemu_string_free(err);
        err = NULL;
        cbs.error = dispatch_signals(aTHX);
        if (cbs.error && !cancel)
            break;
    }
    if (cbs.error) {
        vzdump_qemu_string_free(progress);
        vzdump_qemu_string_free(err);
        croak_sv(sv_2mortal(cbs.error));
    }
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    RETVAL = take_string(aTHX_ progress);
  OUTPUT:
    RETVAL

MODULE = PVE::RS::VZDump::Qemu    PACKAGE = PVE::RS::VZDump::Qemu::Compressor

void
_spawn(class, command, output_fd, pipe_size)
    SV *class
    SV *command
    SV *output_fd
    SV *pipe_size
  PREINIT:
    const char *cmd;
    int32_t out_fd, write_fd = -1;
    UV size;
    vzdump_qemu_compressor *comp = NULL;
    vzq_comp *w;
    char *err = NULL;
    vzdump_qemu_result rc;
  PPCODE:
    cmd = str_arg(aTHX_ command, "the compressor command");
    out_fd = fd_arg(aTHX_ output_fd, "the output file descriptor");
    size = uint_arg(aTHX_ pipe_size, "the pipe size", INT32_MAX);
    rc = vzdump_qemu_compressor_spawn(cmd, out_fd, size, &comp, &write_fd, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    Newx(w, 1, vzq_comp);
    w->comp = comp;
    w->pid = vzdump_qemu_compressor_pid(comp);
    w->owner = getpid();
    w->done = FALSE;
    EXTEND(SP, 2);
    PUSHs(sv_2mortal(new_handle(aTHX_ class, COMP_CLASS, &comp_vtbl, w)));
    mPUSHi(write_fd);

IV
pid(w)
    vzq_comp *w
  CODE:
    RETVAL = w->pid;
  OUTPUT:
    RETVAL

bool
_wait(w, timeout_ms)
    vzq_comp *w
    SV *timeout_ms
  PREINIT:
    UV ms;
    char *err = NULL;
    SV *handler_err;
    vzdump_qemu_result rc;
  CODE:
    ms = uint_arg(aTHX_ timeout_ms, "the timeout", UINT64_MAX / 2);
    if (w->owner != getpid())
        croak("compressor %d was started by process %d\n", (int)w->pid, (int)w->owner);
    /* Like Perl's waitpid: run signal handlers and wait on unless one died. */
    while ((rc = vzdump_qemu_compressor_wait(w->comp, ms, &err)) == VZDUMP_QEMU_INTERRUPTED) {
        vzdump_qemu_string_free(err);
        err = NULL;
        handler_err = dispatch_signals(aTHX);
        if (handler_err)
            croak_sv(sv_2mortal(handler_err));
    }
    if (rc == VZDUMP_QEMU_OK || rc == VZDUMP_QEMU_COMPRESSOR)
        w->done = TRUE;
    if (rc == VZDUMP_QEMU_TIMEOUT) {
        vzdump_qemu_string_free(err);
        RETVAL = FALSE;
    } else if (rc != VZDUMP_QEMU_OK) {
        fail(aTHX_ rc, err);
    } else {
        RETVAL = TRUE;
    }
  OUTPUT:
    RETVAL

void
_kill(w)
    vzq_comp *w
  PREINIT:
    char *err = NULL;
    vzdump_qemu_result rc;
  CODE:
    if (w->owner != getpid())
        croak("compressor %d was started by process %d\n", (int)w->pid, (int)w->owner);
    if (w->done)
        XSRETURN_EMPTY;
    rc = vzdump_qemu_compressor_kill(w->comp, &err);
    if (rc != VZDUMP_QEMU_OK)
        fail(aTHX_ rc, err);
    w->done = TRUE;

bool
_done(w)
    vzq_comp *w
  CODE:
    RETVAL = w->done;
  OUTPUT:
    RETVAL
