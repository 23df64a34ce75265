//! Human-readable sizes and durations, as pve-common's `render_bytes` and `render_duration`
//! print them (proxmox/pve-common `src/PVE/Format.pm`).

use super::perl_num::PerlNum;

const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// Decimals beyond this are clamped: they carry no information and would only allocate.
const MAX_PRECISION: usize = 64;

/// `value` bytes in binary units with `precision` decimals (0 means 2), e.g. `1.50 KiB`.
///
/// The unit index is `int(log($value)/log(1024))` in doubles, as in Perl, so values just
/// below a power of 1024 keep the rounding artefacts of the original (`1048575` with
/// precision 1 is `1024.0 KiB`, `1024^5 - 1` is `1.0 PiB`). The digits are glibc's
/// `sprintf`, ties to even. Where the index reaches 6 (from 1024^6 bytes, and from
/// `2^60 - 1`, whose double is 2^60) Perl's unit list has no entry: the number is followed
/// by a space and nothing else, e.g. `16.00 ` for `u64::MAX`.
pub fn render_bytes(value: u64, precision: u32) -> String {
    bytes_text(PerlNum::from(value), precision)
}

/// pve-common's `render_bytes($value, $precision)` (`proxmox/pve-common
/// src/PVE/Format.pm`) for any Perl number.
pub(super) fn bytes_text(value: PerlNum, precision: u32) -> String {
    // `%.${precision || 2}f`
    let precision = match precision {
        0 => 2,
        p => (p as usize).min(MAX_PRECISION),
    };
    let mut value = value;
    let mut max_unit = PerlNum::ZERO;
    if value.num_gt(PerlNum::iv(1023)) {
        // int(log($value)/log(1024)); neither log dies (both arguments are positive) and
        // log(1024) is no zero.
        let ratio = value.log().checked_div(PerlNum::iv(1024).log());
        max_unit = ratio.map_or(PerlNum::ZERO, PerlNum::int);
        // 1024**$max_unit: pp_pow multiplies a power-of-two base in doubles, exactly
        // (any index here is at most 102, whose power is still finite).
        let power = PerlNum::nv(1024f64.powi(max_unit.to_i64_saturating() as i32));
        value = value.checked_div(power).unwrap_or(value);
    }
    // $units[$max_unit]: undef, which prints as nothing, past the last unit.
    let unit = max_unit
        .as_integer()
        .and_then(|index| usize::try_from(index).ok())
        .and_then(|index| UNITS.get(index))
        .copied()
        .unwrap_or("");
    format!("{} {unit}", value.fixed(precision))
}

/// `secs` as its non-zero parts among weeks, days, hours, minutes and seconds, e.g.
/// `1h 2m 5s`; `0s` for zero.
pub fn render_duration(secs: u64) -> String {
    duration_text(PerlNum::from(secs))
}

/// pve-common's `render_duration($duration_in_seconds)` (`proxmox/pve-common
/// src/PVE/Format.pm`) for any Perl number: negative durations give an empty text.
pub(super) fn duration_text(secs: PerlNum) -> String {
    const PARTS: [(char, i64); 5] = [
        ('w', 7 * 24 * 3600),
        ('d', 24 * 3600),
        ('h', 3600),
        ('m', 60),
        ('s', 1),
    ];
    // my $rest = round($duration_in_seconds // 0);
    let mut rest = secs.round();
    if !rest.is_true() {
        return "0s".to_string();
    }
    let mut parts = Vec::new();
    for (unit, length) in PARTS {
        let length = PerlNum::iv(length);
        // if ((my $v = int($rest / $unitlength)) > 0); the lengths are no zeros.
        let Some(v) = rest.checked_div(length).map(PerlNum::int) else {
            continue;
        };
        if v.num_gt(PerlNum::ZERO) {
            parts.push(format!("{v}{unit}"));
            rest = rest - v * length;
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_below_one_kib_stay_bytes() {
        assert_eq!(render_bytes(0, 0), "0.00 B");
        assert_eq!(render_bytes(0, 1), "0.0 B");
        assert_eq!(render_bytes(1, 2), "1.00 B");
        assert_eq!(render_bytes(1023, 0), "1023.00 B");
        assert_eq!(render_bytes(1023, 1), "1023.0 B");
    }

    #[test]
    fn bytes_scale_by_powers_of_1024() {
        assert_eq!(render_bytes(1024, 0), "1.00 KiB");
        assert_eq!(render_bytes(1536, 0), "1.50 KiB");
        assert_eq!(render_bytes(1536, 1), "1.5 KiB");
        assert_eq!(render_bytes(1 << 20, 1), "1.0 MiB");
        assert_eq!(render_bytes(1 << 30, 1), "1.0 GiB");
        assert_eq!(render_bytes(34_359_738_368, 1), "32.0 GiB");
        assert_eq!(render_bytes(34_359_738_368, 2), "32.00 GiB");
        assert_eq!(render_bytes(22_020_096_000, 0), "20.51 GiB");
        assert_eq!(render_bytes(1 << 40, 2), "1.00 TiB");
        assert_eq!(render_bytes(1 << 50, 2), "1.00 PiB");
        assert_eq!(render_bytes(357_913_941, 1), "341.3 MiB");
        assert_eq!(render_bytes(268_435_456, 1), "256.0 MiB");
        assert_eq!(render_bytes(262_287_315, 1), "250.1 MiB");
    }

    #[test]
    fn bytes_keep_the_float_artefacts_below_a_power() {
        assert_eq!(render_bytes(1_048_575, 1), "1024.0 KiB");
        assert_eq!(render_bytes(1_048_575, 2), "1024.00 KiB");
        assert_eq!(render_bytes((1u64 << 50) - 1, 1), "1.0 PiB");
        assert_eq!(render_bytes((1u64 << 50) - 1, 3), "1.000 PiB");
    }

    #[test]
    fn bytes_round_ties_to_even_like_sprintf() {
        // 1280 B = 1.25 KiB exactly: a binary tie, rounded to even.
        assert_eq!(render_bytes(1280, 1), "1.2 KiB");
        // 1.75 KiB: tie rounded up to the even digit 8.
        assert_eq!(render_bytes(1792, 1), "1.8 KiB");
        assert_eq!(render_bytes(1025, 2), "1.00 KiB");
    }

    #[test]
    fn bytes_beyond_pib_have_no_unit_and_large_precision_is_bounded() {
        // Perl's `$units[6]` is undef: the number, a space and nothing. This used to be
        // clamped to PiB (`16384.00 PiB`, `1024.0 PiB`); Perl prints the following.
        assert_eq!(render_bytes(u64::MAX, 2), "16.00 ");
        assert_eq!(render_bytes(1 << 60, 1), "1.0 ");
        // (double)(2^60 - 1) is 2^60.
        assert_eq!(render_bytes((1 << 60) - 1, 1), "1.0 ");
        assert_eq!(bytes_text(PerlNum::nv(1e30), 2), "807.79 ");
        let wide = render_bytes(1536, u32::MAX);
        assert_eq!(wide.len(), "1.".len() + MAX_PRECISION + " KiB".len());
        assert!(wide.starts_with("1.5000"));
    }

    #[test]
    fn durations_list_the_nonzero_parts() {
        assert_eq!(render_duration(0), "0s");
        assert_eq!(render_duration(1), "1s");
        assert_eq!(render_duration(59), "59s");
        assert_eq!(render_duration(60), "1m");
        assert_eq!(render_duration(65), "1m 5s");
        assert_eq!(render_duration(120), "2m");
        assert_eq!(render_duration(131), "2m 11s");
        assert_eq!(render_duration(3600), "1h");
        assert_eq!(render_duration(3725), "1h 2m 5s");
        assert_eq!(render_duration(86_400), "1d");
        assert_eq!(render_duration(90_061), "1d 1h 1m 1s");
        assert_eq!(render_duration(604_800), "1w");
        assert_eq!(render_duration(604_801), "1w 1s");
        assert_eq!(render_duration(694_861), "1w 1d 1h 1m 1s");
        assert_eq!(render_duration(1_209_600 + 7_200), "2w 2h");
    }
}
