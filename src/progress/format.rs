//! Human-readable sizes and durations, as pve-common's `render_bytes` and `render_duration`
//! print them (`docs/pve-backup-qmp.md` 12.1, 12.2).

const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/// Decimals beyond this are clamped: they carry no information and would only allocate.
const MAX_PRECISION: usize = 64;

/// `value` bytes in binary units with `precision` decimals (0 means 2), e.g. `1.50 KiB`.
///
/// The unit index is `trunc(ln(value) / ln(1024))` in f64, as in Perl, so values just below
/// a power of 1024 keep the rounding artefacts of the original (`1048575` with precision 1
/// is `1024.0 KiB`, `1024^5 - 1` is `1.0 PiB`). Rust's `{:.N}` rounds like glibc's
/// `sprintf`, ties to even. Values of 1024^6 and more stay in PiB (Perl prints no unit).
pub fn render_bytes(value: u64, precision: u32) -> String {
    let precision = match precision {
        0 => 2,
        p => (p as usize).min(MAX_PRECISION),
    };
    let mut scaled = value as f64;
    let mut unit = 0;
    if value > 1023 {
        unit = ((scaled.ln() / 1024f64.ln()) as usize).min(UNITS.len() - 1);
        scaled /= 1024f64.powi(unit as i32);
    }
    format!("{scaled:.precision$} {}", UNITS[unit])
}

/// `secs` as its non-zero parts among weeks, days, hours, minutes and seconds, e.g.
/// `1h 2m 5s`; `0s` for zero.
pub fn render_duration(secs: u64) -> String {
    const PARTS: [(char, u64); 5] = [
        ('w', 604_800),
        ('d', 86_400),
        ('h', 3_600),
        ('m', 60),
        ('s', 1),
    ];
    if secs == 0 {
        return "0s".to_string();
    }
    let mut rest = secs;
    let mut parts = Vec::new();
    for (unit, length) in PARTS {
        let count = rest / length;
        if count > 0 {
            parts.push(format!("{count}{unit}"));
            rest -= count * length;
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
    fn bytes_beyond_pib_and_large_precision_are_bounded() {
        assert_eq!(render_bytes(u64::MAX, 2), "16384.00 PiB");
        assert_eq!(render_bytes(1 << 60, 1), "1024.0 PiB");
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
