//! The status-poll state machine against scripted `query-backup` replies and wall-clock
//! seconds: every branch of the seed's loop and of the current one, with the exact lines.
//! Expected numbers are worked out in the comments.

use vzdump_qemu::log::Level;
use vzdump_qemu::progress::{
    BackupStatus, BitmapInfo, BitmapSetup, PollError, Progress, StatusLoop, Step, Style, Totals,
};

const UUID: &str = "1c6b2a1e-0d3c-4b8e-9a57-2f6f0e0d9c11";
const M: u64 = 1 << 20;
const G: u64 = 1 << 30;
/// 32 GiB, the doc's example disk.
const T: u64 = 32 * G;
/// The doc's example zero bytes: 64 % of 32 GiB.
const Z: u64 = 22_020_096_000;
const START: i64 = 1_000;

fn reply(status: &str, total: u64, transferred: u64, zero: u64) -> BackupStatus {
    BackupStatus {
        status: Some(status.into()),
        uuid: Some(UUID.into()),
        total: Some(total),
        transferred: Some(transferred),
        zero_bytes: Some(zero),
        ..Default::default()
    }
}

fn active(total: u64, transferred: u64, zero: u64) -> BackupStatus {
    reply("active", total, transferred, zero)
}

fn done(total: u64, transferred: u64, zero: u64) -> BackupStatus {
    reply("done", total, transferred, zero)
}

/// A PBS reply: `dirty` and `reused` set.
fn pbs(status: &str, total: u64, dirty: u64, transferred: u64, reused: u64) -> BackupStatus {
    BackupStatus {
        dirty: Some(dirty),
        reused: Some(reused),
        ..reply(status, total, transferred, 0)
    }
}

/// Feeds `script` (seconds after START, reply) and returns all lines and the last step.
/// Every step but the last must be `Continue`; every line must be at info level.
fn feed(state: &mut StatusLoop, script: &[(i64, BackupStatus)]) -> (Vec<String>, Step) {
    let mut lines = Vec::new();
    let mut step = Step::Continue;
    for (i, (at, status)) in script.iter().enumerate() {
        assert_eq!(
            step,
            Step::Continue,
            "script goes on after the end (reply {i})"
        );
        let observation = state.observe(status, START + at);
        for line in observation.lines {
            assert_eq!(line.level, Level::Info);
            lines.push(line.text);
        }
        step = observation.step;
    }
    (lines, step)
}

fn summary(state: &StatusLoop, at: i64) -> Vec<String> {
    state
        .summary(START + at)
        .into_iter()
        .map(|l| l.text)
        .collect()
}

/// Checks that the run ended (`step`) and its summary `at` seconds after START.
fn assert_finished(state: &StatusLoop, step: Step, at: i64, expected: &[&str]) {
    assert_eq!(step, Step::Finished);
    assert_eq!(summary(state, at), expected);
}

fn seed() -> StatusLoop {
    StatusLoop::new(Style::Seed, UUID, START, None)
}

fn current() -> StatusLoop {
    StatusLoop::new(Style::Current, UUID, START, None)
}

fn failed(e: PollError) -> Step {
    Step::Failed(e)
}

// ---- seed ----

#[test]
fn seed_full_run_prints_the_doc_lines() {
    let mut s = seed();
    let (lines, step) = feed(
        &mut s,
        &[
            // 1 s: timediff 1, nothing printed yet.
            (1, active(T, G / 3, 0)),
            // 3 s: 3 % (1 GiB * 100 / 32 GiB = 3.125); read 1 GiB / 3 s = 357 MB/s,
            // write (1 GiB - 256 MiB) / 3 s = 268 MB/s.
            (3, active(T, G, 256 * M)),
            // Same percent, not reprinted.
            (4, active(T, G + G / 5, 256 * M)),
            // 7 s: 6 %, timediff 4: 1 GiB / 4 = 268 MB/s both ways (zero unchanged).
            (7, active(T, 2 * G, 256 * M)),
            // 10 s: 2254857830 * 100 / 32 GiB = 6.56 → 6 again: not printed.
            (10, active(T, 2_254_857_830, 256 * M)),
            // done at 131 s, timediff 124: read 30 GiB / 124 = 259 MB/s, write
            // (30 GiB - (Z - 256 MiB)) / 124 = 84 MB/s; sparse 64 %.
            (131, done(T, T, Z)),
        ],
    );
    assert_eq!(
        lines,
        [
            "status: 3% (1073741824/34359738368), sparse 0% (268435456), duration 3, read/write 357/268 MB/s",
            "status: 6% (2147483648/34359738368), sparse 0% (268435456), duration 7, read/write 268/268 MB/s",
            "status: 100% (34359738368/34359738368), sparse 64% (22020096000), duration 131, read/write 259/84 MB/s",
        ]
    );
    // 32 GiB / 131 s = 262288079 B/s.
    assert_finished(
        &s,
        step,
        131,
        &["transferred 34359 MB in 131 seconds (262 MB/s)"],
    );
}

#[test]
fn seed_first_line_needs_more_than_two_seconds() {
    let mut s = seed();
    let (lines, step) = feed(
        &mut s,
        &[
            (0, active(T, G, 0)),
            (1, active(T, G, 0)),
            (2, active(T, 2 * G, 0)),
        ],
    );
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(step, Step::Continue);
    // The first line counts its rates from the start: 3 GiB / 3 s.
    let (lines, _) = feed(&mut s, &[(3, active(T, 3 * G, 0))]);
    assert_eq!(
        lines,
        ["status: 9% (3221225472/34359738368), sparse 0% (0), duration 3, read/write 1073/1073 MB/s"]
    );
}

#[test]
fn seed_prints_100_percent_twice_and_zero_timediff_counts_as_one() {
    let mut s = seed();
    let total = 5_000_000;
    let (lines, step) = feed(
        &mut s,
        &[
            // 100 % while active at 3 s: 5e6 / 3 = 1 MB/s.
            (3, active(total, total, 0)),
            // done in the same second: timediff 0 counts as 1, no bytes since the line.
            (3, done(total, total, 0)),
        ],
    );
    assert_eq!(
        lines,
        [
            "status: 100% (5000000/5000000), sparse 0% (0), duration 3, read/write 1/1 MB/s",
            "status: 100% (5000000/5000000), sparse 0% (0), duration 3, read/write 0/0 MB/s",
        ]
    );
    assert_finished(&s, step, 3, &["transferred 5 MB in 3 seconds (1 MB/s)"]);
}

/// A run of one `done` reply `at` seconds after START, in either style: its one line, and
/// the summary at the same second.
#[test]
fn one_done_reply_prints_its_line_and_the_summary() {
    for (what, mut s, at, reply, line, expected) in [
        // Rates over one second (timediff 0 counts as 1), no summary (duration 0).
        (
            "seed_done_in_the_first_second_has_rates_over_one_second_and_no_summary",
            seed(),
            0,
            done(5_000_000, 5_000_000, 1_000_000),
            "status: 100% (5000000/5000000), sparse 20% (1000000), duration 0, read/write 5/4 MB/s",
            vec![],
        ),
        (
            "seed_summary_needs_transferred_bytes",
            seed(),
            5,
            done(0, 0, 0),
            "status: 0% (0/0), sparse 0% (0), duration 5, read/write 0/0 MB/s",
            vec![],
        ),
        (
            "current_within_the_first_second",
            current(),
            0,
            done(5_000_000, 5_000_000, 0),
            "100% (4.8 MiB of 4.8 MiB) in 0s, read: 4.8 MiB/s, write: 4.8 MiB/s",
            vec!["transferred 4.77 MiB in <1 seconds"],
        ),
        // Clock going backwards, printed like Perl. The seed: timediff -5: 5e6 / -5 / 1e6 = -1.
        (
            "clock_going_backwards_prints_like_perl, seed",
            seed(),
            -5,
            done(5_000_000, 5_000_000, 0),
            "status: 100% (5000000/5000000), sparse 0% (0), duration -5, read/write -1/-1 MB/s",
            vec!["transferred 5 MB in -5 seconds (-1 MB/s)"],
        ),
        // Today's: a negative duration renders empty; the rate is render_bytes of a negative
        // number.
        (
            "clock_going_backwards_prints_like_perl, current",
            current(),
            -5,
            done(5_000_000, 5_000_000, 0),
            "100% (4.8 MiB of 4.8 MiB) in , read: -1000000.0 B/s, write: -1000000.0 B/s",
            vec!["transferred 4.77 MiB in -5 seconds (-1000000.0 B/s)"],
        ),
    ] {
        let (lines, step) = feed(&mut s, &[(at, reply)]);
        assert_eq!(lines, [line], "{what}");
        assert_eq!(step, Step::Finished, "{what}");
        assert_eq!(summary(&s, at), expected, "{what}");
    }
}

#[test]
fn seed_done_with_wrong_byte_count_fails_after_the_line() {
    let mut s = seed();
    let (lines, step) = feed(&mut s, &[(4, done(T, G, 0))]);
    // 1 GiB / 4 s = 268 MB/s.
    assert_eq!(
        lines,
        ["status: 3% (1073741824/34359738368), sparse 0% (0), duration 4, read/write 268/268 MB/s"]
    );
    let error = PollError::WrongTransferred {
        total: T,
        transferred: G,
    };
    assert_eq!(
        error.to_string(),
        "got wrong number of transfered bytes (34359738368 != 1073741824)"
    );
    assert_eq!(step, failed(error));
}

#[test]
fn uuid_is_checked_first_in_both_styles() {
    for style in [Style::Seed, Style::Current] {
        for uuid in [
            None,
            Some(""),
            Some("0"),
            Some("2d7c3b2f-0000-0000-0000-000000000000"),
        ] {
            let mut s = StatusLoop::new(style, UUID, START, None);
            let mut status = reply("error", T, G, 0);
            status.errmsg = Some("backup canceled".into());
            status.uuid = uuid.map(Into::into);
            let observation = s.observe(&status, START + 5);
            assert!(observation.lines.is_empty(), "{style:?} {uuid:?}");
            assert_eq!(observation.step, failed(PollError::UnexpectedUuid));
            assert_eq!(PollError::UnexpectedUuid.to_string(), "got unexpected uuid");
        }
    }
}

#[test]
fn seed_error_prints_the_line_then_fails_with_errmsg() {
    let mut s = seed();
    let mut status = reply("error", T, G, 0);
    status.errmsg = Some("job failed with err -5 - Input/output error".into());
    let (lines, step) = feed(&mut s, &[(3, active(T, G / 2, 0)), (5, status)]);
    // 3 s: 512 MiB / 3 = 178 MB/s; 5 s: timediff 2, 512 MiB / 2 = 268 MB/s.
    assert_eq!(
        lines,
        [
            "status: 1% (536870912/34359738368), sparse 0% (0), duration 3, read/write 178/178 MB/s",
            "status: 3% (1073741824/34359738368), sparse 0% (0), duration 5, read/write 268/268 MB/s",
        ]
    );
    let expected = PollError::Backup("job failed with err -5 - Input/output error".into());
    assert_eq!(
        expected.to_string(),
        "job failed with err -5 - Input/output error"
    );
    assert_eq!(step, failed(expected));
}

#[test]
fn error_without_message_is_unknown_error() {
    for errmsg in [None, Some("")] {
        for style in [Style::Seed, Style::Current] {
            let mut s = StatusLoop::new(style, UUID, START, None);
            let mut status = reply("error", T, 0, 0);
            status.errmsg = errmsg.map(Into::into);
            let observation = s.observe(&status, START + 1);
            assert_eq!(observation.lines.len(), 1);
            assert_eq!(
                observation.step,
                failed(PollError::Backup("unknown error".into()))
            );
        }
    }
    assert_eq!(
        PollError::Backup("unknown error".into()).to_string(),
        "unknown error"
    );
}

#[test]
fn unexpected_and_missing_status() {
    let mut s = seed();
    let (lines, step) = feed(&mut s, &[(2, reply("paused", 100, 50, 0))]);
    assert_eq!(
        lines,
        ["status: 50% (50/100), sparse 0% (0), duration 2, read/write 0/0 MB/s"]
    );
    assert_eq!(step, failed(PollError::UnexpectedStatus("paused".into())));
    assert_eq!(
        PollError::UnexpectedStatus("paused".into()).to_string(),
        "got unexpected status 'paused'"
    );

    for status in [None, Some("")] {
        let mut s = current();
        let mut reply = reply("x", 100, 50, 0);
        reply.status = status.map(Into::into);
        let observation = s.observe(&reply, START + 2);
        assert_eq!(
            observation.lines[0].text,
            " 50% (50.0 B of 100.0 B) in 2s, read: 25.0 B/s, write: 25.0 B/s"
        );
        let error = PollError::UnexpectedStatus("unknown".into());
        assert_eq!(error.to_string(), "got unexpected status 'unknown'");
        assert_eq!(observation.step, failed(error));
    }
}

#[test]
fn seed_negative_deltas_print_zero() {
    let mut s = seed();
    let (lines, _) = feed(
        &mut s,
        &[
            (3, active(T, 4 * G, G)),
            // Counters went backwards: both deltas negative.
            (6, active(T, 2 * G, 0)),
        ],
    );
    assert_eq!(
        lines[1],
        "status: 6% (2147483648/34359738368), sparse 0% (0), duration 6, read/write 0/0 MB/s"
    );
}

// ---- current ----

#[test]
fn current_full_run_prints_the_doc_lines() {
    let mut s = current();
    let (lines, step) = feed(
        &mut s,
        &[
            // Nothing copied yet after 62 s: 0 % differs from "none yet", printed.
            (62, active(T, 0, 0)),
            // 65 s, timediff 3: read 1 GiB / 3 = 341.3 MiB/s, write 768 MiB / 3 = 256 MiB/s.
            (65, active(T, G, 256 * M)),
            (66, active(T, G + M, 256 * M)),
            // done at 131 s, timediff 66: read 31 GiB / 66 = 481.0 MiB/s, write
            // (31 GiB - (Z - 256 MiB)) / 66 = 166.7 MiB/s.
            (131, done(T, T, Z)),
        ],
    );
    assert_eq!(
        lines,
        [
            "  0% (0.0 B of 32.0 GiB) in 1m 2s, read: 0 B/s, write: 0 B/s",
            "  3% (1.0 GiB of 32.0 GiB) in 1m 5s, read: 341.3 MiB/s, write: 256.0 MiB/s",
            "100% (32.0 GiB of 32.0 GiB) in 2m 11s, read: 481.0 MiB/s, write: 166.7 MiB/s",
        ]
    );
    // Z * 100 / 32 GiB = 64.08; 32 GiB / 131 s = 262288079 B/s = 250.1 MiB/s.
    assert_finished(
        &s,
        step,
        131,
        &[
            "backup is sparse: 20.51 GiB (64%) total zero data",
            "transferred 32.00 GiB in 131 seconds (250.1 MiB/s)",
        ],
    );
    assert_eq!(
        s.totals(),
        Totals {
            total: T,
            reused: None
        }
    );
}

#[test]
fn current_skips_the_final_line_after_100_percent_and_accepts_short_counts() {
    let mut s = current();
    let (lines, step) = feed(
        &mut s,
        &[(3, active(3 * M, 3 * M, 0)), (4, done(3 * M, 3 * M, 0))],
    );
    assert_eq!(
        lines,
        ["100% (3.0 MiB of 3.0 MiB) in 3s, read: 1.0 MiB/s, write: 1.0 MiB/s"]
    );
    assert_eq!(step, Step::Finished);

    let mut s = current();
    let (lines, step) = feed(&mut s, &[(4, done(T, G, 0))]);
    assert_eq!(
        lines,
        ["  3% (1.0 GiB of 32.0 GiB) in 4s, read: 256.0 MiB/s, write: 256.0 MiB/s"]
    );
    assert_finished(
        &s,
        step,
        4,
        &["transferred 1.00 GiB in 4 seconds (256.0 MiB/s)"],
    );
}

#[test]
fn current_error_after_100_percent_prints_nothing_more() {
    let mut s = current();
    let mut error = reply("error", 3 * M, 3 * M, 0);
    error.errmsg = Some("backup canceled".into());
    let (lines, step) = feed(&mut s, &[(3, active(3 * M, 3 * M, 0)), (9, error)]);
    assert_eq!(lines.len(), 1);
    assert_eq!(step, failed(PollError::Backup("backup canceled".into())));
}

#[test]
fn current_percent_is_100_without_a_target() {
    let mut s = current();
    let (lines, _) = feed(&mut s, &[(3, active(0, 0, 0))]);
    assert_eq!(
        lines,
        ["100% (0.0 B of 0.0 B) in 3s, read: 0 B/s, write: 0 B/s"]
    );
    assert_eq!(s.progress().percent, 100);

    // The seed style says 0 for the same reply.
    let mut s = seed();
    let (lines, _) = feed(&mut s, &[(3, active(0, 0, 0))]);
    assert_eq!(
        lines,
        ["status: 0% (0/0), sparse 0% (0), duration 3, read/write 0/0 MB/s"]
    );
}

#[test]
fn current_negative_deltas_print_zero_rates() {
    let mut s = current();
    let (lines, _) = feed(
        &mut s,
        &[(3, active(T, 4 * G, G)), (6, active(T, 2 * G, 0))],
    );
    assert_eq!(
        lines[1],
        "  6% (2.0 GiB of 32.0 GiB) in 6s, read: 0 B/s, write: 0 B/s"
    );
}

#[test]
fn current_pbs_run_uses_dirty_target_and_reused_write_rate() {
    let mut s = current();
    let clean = 28 * G;
    let (lines, step) = feed(
        &mut s,
        &[
            // 25 % of the 4 GiB dirty part; write = 1 GiB - (28 GiB + 256 MiB) < 0.
            (3, pbs("active", T, 4 * G, G, clean + 256 * M)),
            // write = 1 GiB - 256 MiB over 3 s = 256 MiB/s.
            (6, pbs("active", T, 4 * G, 2 * G, clean + 512 * M)),
            // done, timediff 2: read 1 GiB/s, write (2 GiB - 512 MiB) / 2 = 768 MiB/s.
            (8, pbs("done", T, 4 * G, 4 * G, clean + G)),
        ],
    );
    assert_eq!(
        lines,
        [
            " 25% (1.0 GiB of 4.0 GiB) in 3s, read: 341.3 MiB/s, write: 0 B/s",
            " 50% (2.0 GiB of 4.0 GiB) in 6s, read: 341.3 MiB/s, write: 256.0 MiB/s",
            "100% (4.0 GiB of 4.0 GiB) in 8s, read: 1.0 GiB/s, write: 768.0 MiB/s",
        ]
    );
    // 29 GiB reused of 32 GiB = 90.6 %; 4 GiB / 8 s = 512 MiB/s.
    assert_finished(
        &s,
        step,
        8,
        &[
            "backup was done incrementally, reused 29.00 GiB (90%)",
            "transferred 4.00 GiB in 8 seconds (512.0 MiB/s)",
        ],
    );
    assert_eq!(
        s.totals(),
        Totals {
            total: T,
            reused: Some(29 * G)
        }
    );
}

#[test]
fn current_bitmap_info_fixes_target_and_initial_reuse() {
    let info = BitmapInfo {
        drive: "drive-scsi0".into(),
        action: "used".into(),
        size: T,
        dirty: 4 * G,
    };
    let setup = BitmapSetup::new(&[info], false);
    assert_eq!(
        setup
            .lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>(),
        [
            "scsi0: dirty-bitmap status: OK (4.0 GiB of 32.0 GiB dirty)",
            "using fast incremental mode (dirty-bitmap), 4.0 GiB dirty of 32.0 GiB total",
        ]
    );
    let mut s = StatusLoop::new(Style::Current, UUID, START, Some(&setup));
    // No dirty field: the target still comes from the bitmaps. The clean 28 GiB were
    // reused from the start, so the write rate is (1 GiB - 256 MiB) / 3 s.
    let mut status = pbs("active", T, 0, G, 28 * G + 256 * M);
    status.dirty = None;
    let (lines, _) = feed(&mut s, &[(3, status)]);
    assert_eq!(
        lines,
        [" 25% (1.0 GiB of 4.0 GiB) in 3s, read: 341.3 MiB/s, write: 256.0 MiB/s"]
    );

    // The seed style ignores bitmap info.
    let mut s = StatusLoop::new(Style::Seed, UUID, START, Some(&setup));
    let (lines, _) = feed(&mut s, &[(3, pbs("active", T, 4 * G, G, 0))]);
    assert_eq!(
        lines,
        ["status: 3% (1073741824/34359738368), sparse 0% (0), duration 3, read/write 357/357 MB/s"]
    );
}

#[test]
fn current_finishing_message_comes_once_with_a_printed_line() {
    let finishing = |transferred: u64| BackupStatus {
        finishing: true,
        ..active(100 * M, transferred, 0)
    };
    let mut s = current();
    let (lines, step) = feed(
        &mut s,
        &[
            // finishing, but no line printed (timediff 1): no message either.
            (1, finishing(99 * M)),
            (3, finishing(99 * M)),
            (4, finishing(99 * M)),
            // Printed again (percent changed) while still finishing: no second message.
            (7, finishing(100 * M)),
            (8, done(100 * M, 100 * M, 0)),
        ],
    );
    assert_eq!(
        lines,
        [
            " 99% (99.0 MiB of 100.0 MiB) in 3s, read: 33.0 MiB/s, write: 33.0 MiB/s",
            "Waiting for server to finish backup validation...",
            "100% (100.0 MiB of 100.0 MiB) in 7s, read: 256.0 KiB/s, write: 256.0 KiB/s",
        ]
    );
    assert_eq!(step, Step::Finished);
    assert!(!s.progress().finishing);
}

/// One reply 3 s after START, which a loop ignores in part: the one line it prints.
#[test]
fn one_reply_prints_one_line_ignoring_what_the_style_does_not_read() {
    for (what, mut s, reply, line) in [
        (
            "seed_missing_counters_count_as_zero_and_ignore_dirty_and_reused",
            seed(),
            BackupStatus {
                status: Some("active".into()),
                uuid: Some(UUID.into()),
                dirty: Some(10),
                reused: Some(10),
                ..Default::default()
            },
            "status: 0% (0/0), sparse 0% (0), duration 3, read/write 0/0 MB/s",
        ),
        (
            "current_dirty_not_below_total_is_ignored",
            current(),
            pbs("active", 4 * G, 8 * G, G, 0),
            " 25% (1.0 GiB of 4.0 GiB) in 3s, read: 341.3 MiB/s, write: 341.3 MiB/s",
        ),
        (
            "seed_ignores_finishing",
            seed(),
            BackupStatus {
                finishing: true,
                ..active(100, 99, 0)
            },
            "status: 99% (99/100), sparse 0% (0), duration 3, read/write 0/0 MB/s",
        ),
    ] {
        let (lines, _) = feed(&mut s, &[(3, reply)]);
        assert_eq!(lines, [line], "{what}");
    }
}

#[test]
fn current_summary_with_zero_target_and_zero_total() {
    // Zero bytes but no non-zero target ever: 0 %; reused without a total: 0 %.
    let mut s = current();
    let mut status = done(0, 0, 4 * M);
    status.reused = Some(M);
    let (_, step) = feed(&mut s, &[(2, status)]);
    assert_finished(
        &s,
        step,
        2,
        &[
            "backup is sparse: 4.00 MiB (0%) total zero data",
            "backup was done incrementally, reused 1.00 MiB (0%)",
        ],
    );
}

#[test]
fn progress_record_follows_each_accepted_reply() {
    let mut s = current();
    assert_eq!(s.progress(), Progress::default());
    s.observe(&pbs("active", T, 4 * G, G, 28 * G), START + 4);
    assert_eq!(
        s.progress(),
        Progress {
            percent: 25,
            transferred: G,
            total: T,
            target: 4 * G,
            zero: 0,
            reused: 28 * G,
            duration: 4,
            read_rate: G / 4,
            write_rate: 0,
            finishing: false,
        }
    );
    // A reply for another job leaves it alone.
    let mut other = active(T, 2 * G, 0);
    other.uuid = Some("other".into());
    s.observe(&other, START + 5);
    assert_eq!(s.progress().transferred, G);
    // Seed: the target is the total.
    let mut s = seed();
    s.observe(&active(T, G, 0), START + 1);
    assert_eq!((s.progress().target, s.progress().percent), (T, 3));
}

#[test]
fn extreme_clock_readings_do_not_panic() {
    for style in [Style::Seed, Style::Current] {
        let mut s = StatusLoop::new(style, UUID, START, None);
        for now in [i64::MIN, i64::MAX, 0] {
            let observation = s.observe(&active(T, G, 0), now);
            assert_eq!(observation.step, Step::Continue);
        }
        assert_eq!(s.observe(&done(T, T, 0), i64::MIN).step, Step::Finished);
        assert_eq!(s.summary(i64::MAX).len(), 1);
    }
}
