//! The 2020 (seed) format: raw byte counts, decimal MB.
//! Every number is computed as the 2020 seed's `$query_backup_status_loop` computes it in
//! Perl ([`PerlNum`]).

use super::perl_num::PerlNum;
use super::status_loop::{percent_of, Last, Numbers};
use crate::log::LogLine;

/// `1000 * 1000`, folded by Perl into the integer 1000000.
const MILLION: PerlNum = PerlNum::iv(1_000_000);

/// The seed's `$get_mbps`: `($mb > 0) ? int(($mb / $delta) / (1000 * 1000)) : 0`, whole
/// decimal MB per second. `delta` is never zero (a zero time difference counts as 1, a zero
/// duration prints no summary).
fn mbps(mb: PerlNum, delta: PerlNum) -> PerlNum {
    if !mb.num_gt(PerlNum::ZERO) {
        return PerlNum::ZERO;
    }
    mb.checked_div(delta)
        .and_then(|per_sec| per_sec.checked_div(MILLION))
        .map_or(PerlNum::ZERO, PerlNum::int)
}

/// `status: <p>% (<transferred>/<total>), sparse <z>% (<zero>), duration <d>, read/write <r>/<w> MB/s`.
pub(super) fn status_line(n: &Numbers) -> String {
    // $total ? int(($zero * 100)/$total) : 0
    let zero_per = percent_of(PerlNum::from(n.zero), PerlNum::from(n.total), 0);
    format!(
        "status: {}% ({}/{}), sparse {zero_per}% ({}), duration {}, read/write {}/{} MB/s",
        n.percent,
        n.transferred,
        n.total,
        n.zero,
        n.duration,
        mbps(n.read, n.timediff),
        mbps(n.write, n.timediff)
    )
}

/// `transferred <n> MB in <s> seconds (<r> MB/s)`, when both the last transferred count
/// and the duration are non-zero.
pub(super) fn summary(last: &Last, duration: PerlNum) -> Vec<LogLine> {
    let transferred = PerlNum::from(last.read_transferred);
    if !(transferred.is_true() && duration.is_true()) {
        return Vec::new();
    }
    // my $mb = int($transferred / (1000 * 1000));
    let mb = transferred
        .checked_div(MILLION)
        .map_or(PerlNum::ZERO, PerlNum::int);
    vec![LogLine::info(format!(
        "transferred {mb} MB in {duration} seconds ({} MB/s)",
        mbps(transferred, duration)
    ))]
}
