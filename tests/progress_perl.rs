//! Every number of the status-poll loop against real Perl: each test feeds a few thousand
//! cases (random with a fixed seed, plus edges) to one `/usr/bin/perl` process that runs
//! the upstream expression, and compares its output, line by line, with what the public
//! API prints.
//!
//! The Perl drivers below copy the expressions from the 2020 seed's
//! `$query_backup_status_loop`, from `$query_backup_status_loop` and `$bitmap_action_to_human`
//! of `proxmox/qemu-server src/PVE/VZDump/QemuServer.pm`, and `render_bytes` /
//! `render_duration` of `proxmox/pve-common src/PVE/Format.pm`. Inputs reach Perl as JSON
//! decoded by `JSON::PP`, so they are the IVs (UVs above `i64::MAX`) qemu-server gets from
//! QMP. Perl is a real peer: without it the tests fail, they never skip.

use std::io::Write;
use std::process::{Command, Stdio};

use testkit::Xorshift64Star;
use vzdump_qemu::progress::{
    render_bytes, render_duration, BackupStatus, BitmapInfo, BitmapSetup, Progress, StatusLoop,
    Style,
};

const PERL: &str = "/usr/bin/perl";
const UUID: &str = "1c6b2a1e-0d3c-4b8e-9a57-2f6f0e0d9c11";
/// `$starttime` of every loop.
const START: i64 = 1_000;
/// Random cases per test, on top of the edges.
const RANDOM_CASES: usize = 3_000;
const TWO_53: u64 = 1 << 53;
const IV_MAX: u64 = i64::MAX as u64;

/// The start of every driver: pve-common's two renderers and the two `$get_mbps`.
const PRELUDE: &str = r#"
use strict;
no warnings;
use JSON::PP ();
use POSIX qw(round);

# proxmox/pve-common src/PVE/Format.pm
sub render_duration {
    my ($duration_in_seconds) = @_;

    my $text = '';
    my $rest = round($duration_in_seconds // 0);

    return "0s" if !$rest;

    my $step = sub {
        my ($unit, $unitlength) = @_;

        if ((my $v = int($rest / $unitlength)) > 0) {
            $text .= " " if length($text);
            $text .= "${v}${unit}";
            $rest -= $v * $unitlength;
            return 1;
        }
        return undef;
    };

    $step->('w', 7 * 24 * 3600);
    $step->('d', 24 * 3600);
    $step->('h', 3600);
    $step->('m', 60);
    $step->('s', 1);

    return $text;
}

# proxmox/pve-common src/PVE/Format.pm
sub render_bytes {
    my ($value, $precision) = @_;

    $precision = $precision->{precision} if ref($precision) eq 'HASH';

    my @units = qw(B KiB MiB GiB TiB PiB);

    my $max_unit = 0;
    if ($value > 1023) {
        $max_unit = int(log($value)/log(1024));
        $value /= 1024**($max_unit);
    }
    my $unit = $units[$max_unit];
    return sprintf "%." . ($precision || 2) . "f $unit", $value;
}

# proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop
my $get_mbps = sub {
    my ($mb, $delta) = @_;
    return "0 B/s" if $mb <= 0;
    my $bw = int(($mb / $delta));
    return render_bytes($bw, 1) . "/s";
};

# the 2020 seed's $query_backup_status_loop
my $seed_get_mbps = sub {
    my ($mb, $delta) = @_;
    return ($mb > 0) ? int(($mb / $delta) / (1000 * 1000)) : 0;
};

# proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop: one reply's
# $rbytes, $wbytes (reused-aware), $timediff, and $get_mbps of both.
my $current_rates = sub {
    my ($transferred, $last_transferred, $zero, $last_zero, $reused, $last_reused, $ctime,
        $last_time) = @_;
    my $rbytes = $transferred - $last_transferred;
    my $wbytes;
    if ($reused) {
        # reused includes zero bytes for PBS
        $wbytes = $rbytes - ($reused - $last_reused);
    } else {
        $wbytes = $rbytes - ($zero - $last_zero);
    }
    my $timediff = ($ctime - $last_time) || 1; # fixme
    my $mbps_read = $get_mbps->($rbytes, $timediff);
    my $mbps_write = $get_mbps->($wbytes, $timediff);
    return ($rbytes, $wbytes, $timediff, $mbps_read, $mbps_write);
};

# The rates the Progress record must match, "<read>/<write>": int(($mb / $delta)) of
# qemu-server's $get_mbps above, 0 when not positive (the Rust side saturates them).
my $progress_rates = sub {
    my ($rbytes, $wbytes, $timediff) = @_;
    my $rate = sub { my ($mb, $delta) = @_; return $mb <= 0 ? 0 : int(($mb / $delta)); };
    return $rate->($rbytes, $timediff) . "/" . $rate->($wbytes, $timediff);
};

my $starttime = 1000;
"#;

/// The end of every driver: one case a line, one answer a line.
const MAIN_LOOP: &str = r#"
my $json = JSON::PP->new;
while (my $line = <STDIN>) {
    my @in = @{ $json->decode($line) };
    my $out = case(@in);
    $out =~ s/\n/\\n/g;
    print "$out\n";
}
"#;

/// Runs `body` (which defines `sub case`, called with each line's decoded JSON array) in
/// one perl process over all `cases`, returning one output line per case.
fn perl(body: &str, cases: &[String]) -> Vec<String> {
    let script = format!("{PRELUDE}\n{body}\n{MAIN_LOOP}");
    let mut child = Command::new(PERL)
        .arg("-e")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PERL} is needed for these tests: {e}"));
    let mut input = String::new();
    for case in cases {
        assert!(!case.contains('\n'));
        input.push_str(case);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    let written = writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "perl failed: {stderr}");
    written.unwrap();
    let lines: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), cases.len(), "perl answered short: {stderr}");
    lines
}

/// Compares each case's Rust text with Perl's, reporting the first few differences.
fn compare(what: &str, cases: &[String], rust: &[String], perl: &[String]) {
    let differences: Vec<String> = cases
        .iter()
        .zip(rust.iter().zip(perl))
        .filter(|(_, (r, p))| r != p)
        .take(10)
        .map(|(case, (r, p))| format!("  {case}\n    rust: {r:?}\n    perl: {p:?}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{what}: {} of {} cases differ, e.g.\n{}",
        cases
            .iter()
            .zip(rust.iter().zip(perl))
            .filter(|(_, (r, p))| r != p)
            .count(),
        cases.len(),
        differences.join("\n")
    );
}

/// The cases of one comparison: for each, the JSON array Perl's `case` is called with and
/// the text Rust made.
#[derive(Default)]
struct Cases {
    json: Vec<String>,
    rust: Vec<String>,
}

impl Cases {
    fn push(&mut self, json: String, rust: String) {
        self.json.push(json);
        self.rust.push(rust);
    }

    /// Perl's answers: `body` run over every case.
    fn perl(&self, body: &str) -> Vec<String> {
        perl(body, &self.json)
    }

    /// Compares each case's Rust text with Perl's answer from `body`.
    fn match_perl(&self, what: &str, body: &str) {
        self.match_perl_read_as(what, body, str::to_string);
    }

    /// Compares each case's Rust text with Perl's answer from `body` as `read` makes it.
    fn match_perl_read_as(&self, what: &str, body: &str, read: impl Fn(&str) -> String) {
        let out: Vec<String> = self.perl(body).iter().map(|l| read(l)).collect();
        compare(what, &self.json, &self.rust, &out);
    }
}

impl FromIterator<(String, String)> for Cases {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(cases: I) -> Cases {
        let mut all = Cases::default();
        for (json, rust) in cases {
            all.push(json, rust);
        }
        all
    }
}

/// testkit's xorshift64*, fixed seed per test, with the draws the cases need.
struct Rng(Xorshift64Star);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(Xorshift64Star(seed))
    }

    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A value of a random bit length up to `bits`, so every magnitude gets cases.
    fn magnitude(&mut self, bits: u32) -> u64 {
        let len = self.below(u64::from(bits) + 1) as u32;
        if len == 0 {
            0
        } else {
            self.next() >> (64 - len)
        }
    }

    /// A QMP counter (at most 2^63 - 1): `magnitude(63)`, or one of 48 to 63 bits (where
    /// doubles lose digits), or a value within 1000 of 2^53, or an extreme.
    fn counter(&mut self) -> u64 {
        match self.below(8) {
            0 => TWO_53 - 1000 + self.below(2001),
            1 => [0, 1, IV_MAX, IV_MAX - 1, TWO_53][self.below(5) as usize],
            2 | 3 => self.next() >> (1 + self.below(16)),
            _ => self.magnitude(63),
        }
    }

    /// A value up to `max`, spread over magnitudes.
    fn up_to(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.magnitude(64);
        }
        self.magnitude(64) % (max + 1)
    }
}

fn json(values: &[Option<u64>]) -> String {
    let items: Vec<String> = values
        .iter()
        .map(|v| v.map_or("null".into(), |v| v.to_string()))
        .collect();
    format!("[{}]", items.join(","))
}

fn reply(status: &str, total: u64, transferred: u64) -> BackupStatus {
    BackupStatus {
        status: Some(status.into()),
        uuid: Some(UUID.into()),
        total: Some(total),
        transferred: Some(transferred),
        ..Default::default()
    }
}

/// The first line a fresh loop of `style` prints for `status`, `at` seconds after the
/// start, and the Progress record after it.
fn first_line(style: Style, status: &BackupStatus, at: i64) -> (String, Progress) {
    let mut state = StatusLoop::new(style, UUID, START, None);
    let lines = state.observe(status, START + at).lines;
    (lines[0].text.clone(), state.progress())
}

/// A case of the rates tests: `first` 3 s after the start (printed, so its counters become
/// the last ones), then `second` `step` seconds later; `json` for Perl.
struct RateCase {
    json: String,
    first: BackupStatus,
    second: BackupStatus,
    step: i64,
}

/// Runs each case on a fresh loop of `style` and compares what `read` takes from the line the
/// second reply prints, then `|<read>/<write>` of the Progress rates after it, with Perl's
/// answer from `body`, which ends in `|` and `$progress_rates` (saturated here as the
/// Progress fields are).
fn rates_match_perl(
    what: &str,
    style: Style,
    cases: impl IntoIterator<Item = RateCase>,
    read: impl Fn(&str) -> String,
    body: &str,
) {
    let cases: Cases = cases
        .into_iter()
        .map(|case| {
            let mut state = StatusLoop::new(style, UUID, START, None);
            let printed = state.observe(&case.first, START + 3).lines;
            assert_eq!(printed.len(), 1, "{what}: {}", case.json);
            let lines = state.observe(&case.second, START + 3 + case.step).lines;
            let progress = state.progress();
            let rates = format!("{}/{}", progress.read_rate, progress.write_rate);
            (case.json, format!("{}|{rates}", read(&lines[0].text)))
        })
        .collect();
    cases.match_perl_read_as(what, body, saturated_rates);
}

/// The summary of a fresh loop of `style` that read `status` 1 s after the start, taken `at`
/// seconds after the start, its lines joined by `\n`.
fn summary_after(style: Style, status: &BackupStatus, at: i64) -> String {
    let mut state = StatusLoop::new(style, UUID, START, None);
    let _ = state.observe(status, START + 1);
    let lines: Vec<String> = state
        .summary(START + at)
        .into_iter()
        .map(|l| l.text)
        .collect();
    lines.join("\\n")
}

/// The text between `before` and the next `after` in `line`.
fn between<'a>(line: &'a str, before: &str, after: &str) -> &'a str {
    let start = line
        .find(before)
        .unwrap_or_else(|| panic!("{before:?} in {line:?}"));
    let rest = &line[start + before.len()..];
    &rest[..rest
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {line:?}"))]
}

/// A Perl integer (or, past 2^64, double) as printed, clamped into a `u64` as the
/// `Progress` fields are.
fn saturated(perl: &str) -> u64 {
    match perl.parse::<i128>() {
        Ok(value) => value.clamp(0, i128::from(u64::MAX)) as u64,
        Err(_) => perl.parse::<f64>().unwrap() as u64,
    }
}

/// A Perl answer that ends in `|<read>/<write>` (`$progress_rates`), with both rates
/// saturated into a `u64` as the `Progress` fields are.
fn saturated_rates(perl: &str) -> String {
    let (text, rates) = perl.rsplit_once('|').unwrap();
    let (read, write) = rates.split_once('/').unwrap();
    format!("{text}|{}/{}", saturated(read), saturated(write))
}

/// Field `n` of each `|`-separated line.
fn field(lines: &[String], n: usize) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.split('|').nth(n).unwrap().to_string())
        .collect()
}

/// (total, transferred) pairs for the percent tests: transferred ≤ total mostly, some above,
/// totals up to 2^63 - 1, values around 2^53, exact multiples, zeros.
fn percent_cases(rng: &mut Rng) -> Vec<(u64, u64)> {
    let mut cases = Vec::new();
    let totals = [
        0,
        1,
        2,
        3,
        7,
        99,
        100,
        101,
        TWO_53 - 1,
        TWO_53,
        TWO_53 + 1,
        TWO_53 / 100,
        TWO_53 / 100 + 1,
        92_233_720_368_547_758,
        184_467_440_737_095_517,
        IV_MAX / 100,
        IV_MAX - 1,
        IV_MAX,
    ];
    for &total in &totals {
        for transferred in [
            0,
            1,
            total / 3,
            total / 2,
            total.saturating_sub(1),
            total,
            total.saturating_add(1).min(IV_MAX),
            TWO_53 - 1,
            TWO_53,
            TWO_53 + 1,
            IV_MAX,
        ] {
            cases.push((total, transferred));
        }
    }
    for _ in 0..RANDOM_CASES {
        let total = rng.counter();
        let transferred = match rng.below(10) {
            // Exact multiples: transferred * 100 == total * p, above 2^53 for large totals.
            0 => (total / 100) * rng.below(101),
            1 => total / 100 * 100,
            // Above the total (a broken QEMU), up to 2^63 - 1.
            2 => rng.counter(),
            _ => rng.up_to(total),
        };
        cases.push((total, transferred));
    }
    cases
}

#[test]
fn seed_percent_and_sparse_percent_match_perl() {
    let mut rng = Rng::new(0x5eed_0001);
    let mut cases = Cases::default();
    for (total, transferred) in percent_cases(&mut rng) {
        let zero = match rng.below(4) {
            0 => transferred,
            1 => rng.counter(),
            _ => rng.up_to(total),
        };
        let status = BackupStatus {
            zero_bytes: Some(zero),
            ..reply("active", total, transferred)
        };
        // The first reply after 3 s always prints (percent differs from -1).
        let (line, _) = first_line(Style::Seed, &status, 3);
        let percents = format!(
            "{} {}",
            between(&line, "status: ", "% ("),
            between(&line, ", sparse ", "% (")
        );
        cases.push(
            json(&[Some(total), Some(transferred), Some(zero)]),
            percents,
        );
    }
    // The 2020 seed's $query_backup_status_loop: $percent and $zero_per, interpolated.
    cases.match_perl(
        "seed percent / zero_per",
        r#"
sub case {
    my ($total, $transferred, $zero) = @_;
    $total = $total || 0;
    $transferred = $transferred || 0;
    my $percent = $total ? int(($transferred * 100)/$total) : 0;
    $zero = $zero || 0;
    my $zero_per = $total ? int(($zero * 100)/$total) : 0;
    return "$percent ${zero_per}";
}
"#,
    );
    // The cases reach where Perl's arithmetic parts from exact integers: `transferred *
    // 100` beyond 2^53 (not exact as a double) and beyond 2^64 (a double product).
    let products: Vec<u128> = percent_cases(&mut Rng::new(0x5eed_0001))
        .iter()
        .map(|&(_, transferred)| u128::from(transferred) * 100)
        .collect();
    assert!(products.iter().filter(|&&p| p > 1 << 53).count() > 800);
    assert!(products.iter().filter(|&&p| p > 1 << 64).count() > 150);
}

#[test]
fn current_percent_matches_perl() {
    let mut rng = Rng::new(0x5eed_0002);
    let mut cases = Cases::default();
    for (total, transferred) in percent_cases(&mut rng) {
        // Sometimes a dirty count (below, equal to or above the total), sometimes none.
        let dirty = match rng.below(4) {
            0 => None,
            1 => Some(rng.up_to(total)),
            2 => Some(rng.counter()),
            _ => Some(total),
        };
        let status = BackupStatus {
            dirty,
            ..reply("active", total, transferred)
        };
        let (line, progress) = first_line(Style::Current, &status, 3);
        let printed = &line[..line.find('%').unwrap()];
        cases.push(
            json(&[Some(total), dirty, Some(transferred)]),
            format!("{printed}|{}", progress.percent),
        );
    }
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop:
    // $target and $percent, printed with "%3d"; then $percent itself, which the
    // saturating `Progress::percent` must match.
    let out = cases.perl(
        r#"
sub case {
    my ($total, $dirty, $transferred) = @_;
    $total = $total || 0;
    my $target = (defined($dirty) && $dirty < $total) ? $dirty : $total;
    $transferred = $transferred || 0;
    my $percent = $target ? int(($transferred * 100) / $target) : 100;
    return sprintf("%3d", $percent) . "|$percent";
}
"#,
    );
    let (rust_printed, perl_printed) = (field(&cases.rust, 0), field(&out, 0));
    compare(
        "current %3d percent",
        &cases.json,
        &rust_printed,
        &perl_printed,
    );
    // Progress::percent is Perl's $percent, saturated into a u64.
    let perl_progress: Vec<String> = field(&out, 1)
        .iter()
        .map(|p| saturated(p).to_string())
        .collect();
    compare(
        "Progress::percent",
        &cases.json,
        &field(&cases.rust, 1),
        &perl_progress,
    );
}

/// A time difference between two replies: usually small, sometimes 0 (counts as 1),
/// negative (clock went backwards) or large.
fn time_step(rng: &mut Rng) -> i64 {
    match rng.below(8) {
        0 => 0,
        1 => -(rng.magnitude(20) as i64),
        2 => rng.magnitude(40) as i64,
        _ => 1 + rng.below(600) as i64,
    }
}

#[test]
fn seed_rates_match_perl() {
    let mut rng = Rng::new(0x5eed_0003);
    let mut inputs = vec![
        (0, 0, 0, 0, 1),
        (0, 0, TWO_53 + 1, 0, 1),
        (0, 0, TWO_53 + 3, 0, 2),
        (0, 0, IV_MAX, 0, 3),
        (1, IV_MAX, IV_MAX, 0, 7),
        (IV_MAX, 0, 0, IV_MAX, 1),
        (5, 5, 5, 5, 0),
        (0, 0, 10_000_000_000_000_000 - 1, 0, 1),
        (0, 0, 3_000_000_000_000_000_000 - 3, 0, 3),
    ];
    for _ in 0..RANDOM_CASES {
        let (t1, z1, t2, z2) = (rng.counter(), rng.counter(), rng.counter(), rng.counter());
        inputs.push((t1, z1, t2, z2, time_step(&mut rng)));
    }
    let cases = inputs.into_iter().map(|(t1, z1, t2, z2, step)| RateCase {
        json: format!("[{t1},{z1},{t2},{z2},{step}]"),
        first: BackupStatus {
            zero_bytes: Some(z1),
            ..reply("active", t1, t1)
        },
        // Any end status prints the line in the seed.
        second: BackupStatus {
            zero_bytes: Some(z2),
            ..reply("error", t2, t2)
        },
        step,
    });
    // The 2020 seed's $query_backup_status_loop: $rbytes, $wbytes, $timediff and
    // $get_mbps after one printed reply; then qemu-server's int(($mb / $delta)) of
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm's $get_mbps, which the
    // Progress rates (saturated, 0 when not positive) must match.
    rates_match_perl(
        "seed get_mbps and Progress rates",
        Style::Seed,
        cases,
        |line| between(line, "read/write ", " MB/s").to_string(),
        r#"
sub case {
    my ($t1, $z1, $t2, $z2, $step) = @_;
    my ($last_percent, $last_total, $last_zero, $last_transferred) = (-1, 0, 0, 0);
    my $last_time = $starttime + 3;
    $last_zero = $z1 if $z1;
    $last_transferred = $t1 if $t1;
    my $ctime = $last_time + $step;
    my $transferred = $t2 || 0;
    my $zero = $z2 || 0;
    my $rbytes = $transferred - $last_transferred;
    my $wbytes = $rbytes - ($zero - $last_zero);
    my $timediff = ($ctime - $last_time) || 1; # fixme
    my $mbps_read = $seed_get_mbps->($rbytes, $timediff);
    my $mbps_write = $seed_get_mbps->($wbytes, $timediff);
    return "$mbps_read/$mbps_write|" . $progress_rates->($rbytes, $wbytes, $timediff);
}
"#,
    );
}

#[test]
fn seed_summary_matches_perl() {
    let mut rng = Rng::new(0x5eed_0004);
    let mut inputs = vec![
        (0, 5),
        (5, 0),
        (999_999, 1),
        (1_000_000, 1),
        (TWO_53 + 1, 1),
        (TWO_53 + 1_000_000, 1),
        (IV_MAX, 1),
        (IV_MAX, 7),
        (IV_MAX, -1),
        (1_000_000_000_000_000_000, 1_000),
        // Just below a multiple of 10^6 beyond 2^53: the double rounds up to it, so Perl's
        // MB figure is one more than integer division would give.
        (10_000_000_000_000_000 - 1, 1),
        (1_000_000_000_000_000_000 - 1, 1),
        (2_000_000_000_000_000_000 - 2, 2),
        (IV_MAX / 1_000_000 * 1_000_000 - 1, 1),
    ];
    for _ in 0..RANDOM_CASES {
        let duration = match rng.below(6) {
            0 => -(rng.magnitude(30) as i64),
            1 => rng.magnitude(62) as i64,
            _ => rng.below(100_000) as i64,
        };
        inputs.push((rng.counter(), duration));
    }
    let cases: Cases = inputs
        .into_iter()
        .map(|(transferred, duration)| {
            // Read but not printed (1 s): the summary uses the last value read.
            let status = reply("active", transferred, transferred);
            let summary = summary_after(Style::Seed, &status, duration);
            (format!("[{transferred},{duration}]"), summary)
        })
        .collect();
    // The 2020 seed's $query_backup_status_loop, after the loop: $mb and $mbps.
    cases.match_perl(
        "seed summary",
        r#"
sub case {
    my ($transferred, $offset) = @_;
    my $duration = ($starttime + $offset) - $starttime;
    if ($transferred && $duration) {
        my $mb = int($transferred / (1000 * 1000));
        my $mbps = $seed_get_mbps->($transferred, $duration);
        return "transferred $mb MB in $duration seconds ($mbps MB/s)";
    }
    return "";
}
"#,
    );
}

#[test]
fn current_rates_match_perl() {
    let mut rng = Rng::new(0x5eed_0005);
    let mut inputs = vec![
        (0, 0, None, 0, 0, None, 1),
        (0, 0, None, TWO_53 + 1, 0, None, 1),
        (0, 0, Some(IV_MAX), IV_MAX, 0, Some(1), 1),
        (0, 0, Some(IV_MAX), IV_MAX, 0, Some(1), -1),
        (1, 0, Some(5), 1, 0, Some(0), 3),
        (0, 0, None, 1 << 60, 0, None, 1),
    ];
    for _ in 0..RANDOM_CASES {
        let reused = |rng: &mut Rng| match rng.below(4) {
            0 => None,
            1 => Some(0),
            _ => Some(rng.counter()),
        };
        let (t1, z1, r1) = (rng.up_to(1 << 62), rng.counter(), reused(&mut rng));
        let (t2, z2, r2) = (rng.counter(), rng.counter(), reused(&mut rng));
        inputs.push((t1, z1, r1, t2, z2, r2, time_step(&mut rng)));
    }
    let cases = inputs.into_iter().map(|(t1, z1, r1, t2, z2, r2, step)| {
        let counters = json(&[Some(t1), Some(z1), r1, Some(t2), Some(z2), r2]);
        RateCase {
            json: format!("{},{step}]", counters.trim_end_matches(']')),
            // Printed (3 s after the start) below 50 %, so the end reply prints too.
            first: BackupStatus {
                zero_bytes: Some(z1),
                reused: r1,
                ..reply("active", IV_MAX, t1)
            },
            second: BackupStatus {
                zero_bytes: Some(z2),
                reused: r2,
                ..reply("error", IV_MAX, t2)
            },
            step,
        }
    });
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop:
    // $rbytes, $wbytes (reused-aware), $timediff and $get_mbps (render_bytes with one
    // decimal) after one printed reply; then int(($mb / $delta)) for the Progress rates.
    rates_match_perl(
        "current get_mbps and Progress rates",
        Style::Current,
        cases,
        |line| {
            let write = &line[line.find(", write: ").unwrap() + ", write: ".len()..];
            format!("{}|{write}", between(line, ", read: ", ", write: "))
        },
        r#"
sub case {
    my ($t1, $z1, $r1, $t2, $z2, $r2, $step) = @_;
    my ($last_percent, $last_total, $last_target, $last_zero, $last_transferred) =
        (-1, 0, 0, 0, 0);
    my $last_reused = 0;
    my $last_time = $starttime + 3;
    $last_zero = $z1 if $z1;
    $last_transferred = $t1 if $t1;
    $last_reused = $r1;
    my $ctime = $last_time + $step;
    my $transferred = $t2 || 0;
    my $reused = $r2;
    my $zero = $z2 || 0;
    my ($rbytes, $wbytes, $timediff, $mbps_read, $mbps_write) = $current_rates->(
        $transferred, $last_transferred, $zero, $last_zero, $reused, $last_reused,
        $ctime, $last_time);
    return "$mbps_read|$mbps_write|" . $progress_rates->($rbytes, $wbytes, $timediff);
}
"#,
    );
}

#[test]
fn current_bitmap_lines_and_first_status_line_match_perl() {
    let mut rng = Rng::new(0x5eed_0006);
    let mut cases = Cases::default();
    for i in 0..RANDOM_CASES {
        // Mostly int64 sizes as QEMU reports them; every fourth case sizes up to u64::MAX,
        // whose sums leave the UV range and become doubles in Perl.
        let big = i % 4 == 0;
        let drives: Vec<(u64, u64)> = (0..1 + rng.below(4))
            .map(|_| {
                let size = if big {
                    rng.magnitude(64)
                } else {
                    rng.counter()
                };
                let dirty = match rng.below(5) {
                    0 => 0,
                    1 => size,
                    2 => rng.counter(),
                    _ => rng.up_to(size),
                };
                (size, dirty)
            })
            .collect();
        let (transferred, zero) = (rng.counter(), rng.counter());
        let reused = [None, Some(0), Some(rng.counter())][rng.below(3) as usize];
        let at = time_step(&mut rng);

        let infos: Vec<BitmapInfo> = drives
            .iter()
            .enumerate()
            .map(|(n, &(size, dirty))| BitmapInfo {
                drive: format!("drive-scsi{n}"),
                action: "used".into(),
                size,
                dirty,
            })
            .collect();
        let setup = BitmapSetup::new(&infos, false);
        let mut state = StatusLoop::new(Style::Current, UUID, START, Some(&setup));
        let status = BackupStatus {
            zero_bytes: Some(zero),
            reused,
            ..reply("error", IV_MAX, transferred)
        };
        // An end reply before any printed line always prints.
        let observation = state.observe(&status, START + at);
        let texts: Vec<&str> = setup
            .lines
            .iter()
            .chain(&observation.lines)
            .map(|l| l.text.as_str())
            .collect();
        let drives: Vec<String> = drives
            .iter()
            .map(|(size, dirty)| format!("{size},{dirty}"))
            .collect();
        let json = format!(
            "[[{}],{transferred},{zero},{},{at}]",
            drives.join(","),
            reused.map_or("null".into(), |r| r.to_string())
        );
        cases.push(json, texts.join("\\n"));
    }
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm: $bitmap_action_to_human for
    // "used", the bitmap sums and fast incremental line of $query_backup_status_loop,
    // then its first status line ("%3d%%" and render_bytes / render_duration).
    cases.match_perl(
        "bitmap and status lines",
        r#"
sub case {
    my ($sizes, $transferred_in, $zero_in, $reused_in, $at) = @_;
    my @out;
    my @bitmap_info;
    for (my $i = 0; $i < @$sizes; $i += 2) {
        push @bitmap_info, { drive => "drive-scsi" . ($i / 2), action => 'used',
            size => $sizes->[$i], dirty => $sizes->[$i + 1] };
    }
    my $target = 0;
    my $last_reused = 0;
    my $total = 0;
    for my $info (sort { $a->{drive} cmp $b->{drive} } @bitmap_info) {
        my $text;
        if ($info->{dirty} == 0) {
            $text = "OK (drive clean)";
        } else {
            my $size = render_bytes($info->{size}, 1);
            my $dirty = render_bytes($info->{dirty}, 1);
            $text = "OK ($dirty of $size dirty)";
        }
        my $drive = $info->{drive};
        $drive =~ s/^drive-//; # for consistency
        push @out, "$drive: dirty-bitmap status: $text";
        $target += $info->{dirty};
        $total += $info->{size};
        $last_reused += $info->{size} - $info->{dirty};
    }
    if ($target < $total) {
        my $total_h = render_bytes($total, 1);
        my $target_h = render_bytes($target, 1);
        push @out, "using fast incremental mode (dirty-bitmap), $target_h dirty of $total_h total";
    }
    my ($last_percent, $last_zero, $last_transferred) = (-1, 0, 0);
    my $last_time = $starttime;
    my $transferred = $transferred_in || 0;
    my $reused = $reused_in;
    my $percent = $target ? int(($transferred * 100) / $target) : 100;
    my $zero = $zero_in || 0;
    my $ctime = $starttime + $at;
    my $duration = $ctime - $starttime;
    my (undef, undef, undef, $mbps_read, $mbps_write) = $current_rates->(
        $transferred, $last_transferred, $zero, $last_zero, $reused, $last_reused,
        $ctime, $last_time);
    my $target_h = render_bytes($target, 1);
    my $transferred_h = render_bytes($transferred, 1);
    my $statusline = sprintf(
        "%3d%% ($transferred_h of $target_h) in %s"
            . ", read: $mbps_read, write: $mbps_write",
        $percent,
        render_duration($duration),
    );
    push @out, $statusline if $last_percent < 100;
    return join("\n", @out);
}
"#,
    );
}

/// One case per value, `[<value>]` for Perl, with the text `rust` makes of it.
fn one_value_cases(values: &[u64], rust: impl Fn(u64) -> String) -> Cases {
    values
        .iter()
        .map(|&v| (format!("[{v}]"), rust(v)))
        .collect()
}

/// Values for `render_bytes`: every magnitude up to `u64::MAX`, around each power of 1024,
/// and exact binary ties of one and two decimals.
fn byte_values(rng: &mut Rng) -> Vec<u64> {
    let mut values = vec![
        0,
        1,
        1023,
        1024,
        1025,
        1280,
        1792,
        TWO_53 - 1,
        TWO_53,
        TWO_53 + 1,
    ];
    values.extend([IV_MAX, IV_MAX - 1, u64::MAX, u64::MAX - 1, u64::MAX - 1024]);
    for unit in 1..=6u32 {
        let power = 1u64 << (10 * unit);
        for delta in 0..=64u64 {
            values.push(power - delta);
            values.push(power.saturating_add(delta));
        }
        // m / 2^j KiB-ish fractions: ties when rounding to one or two decimals.
        for mantissa in [1u64, 3, 5, 7, 9, 11, 13, 15, 17, 21, 25, 51, 125, 1023] {
            for shift in 1..=4 {
                let value = (u128::from(mantissa) << (10 * unit)) >> shift;
                if let Ok(value) = u64::try_from(value) {
                    values.push(value);
                }
            }
        }
    }
    for _ in 0..RANDOM_CASES {
        values.push(match rng.below(4) {
            // A random number of 1024ths of a unit: many ties and near-ties.
            0 => {
                let unit = rng.below(6) as u32;
                (rng.below(1 << 20) << (10 * unit)) >> 10
            }
            _ => rng.magnitude(64),
        });
    }
    values
}

#[test]
fn render_bytes_matches_perl() {
    let mut rng = Rng::new(0x5eed_0007);
    let cases = one_value_cases(&byte_values(&mut rng), |v| {
        format!(
            "{}|{}|{}",
            render_bytes(v, 1),
            render_bytes(v, 2),
            render_bytes(v, 0)
        )
    });
    // proxmox/pve-common src/PVE/Format.pm, render_bytes with precision 1, 2 and none.
    cases.match_perl(
        "render_bytes",
        r#"
sub case {
    my ($value) = @_;
    return render_bytes($value, 1) . "|" . render_bytes($value, 2) . "|" . render_bytes($value);
}
"#,
    );
}

#[test]
fn current_rate_strings_match_perl() {
    // The rate string alone: `$get_mbps->($mb, $delta)` for a positive $mb over a range of
    // deltas, through the first status line's read rate (timediff = the start offset).
    let mut rng = Rng::new(0x5eed_0008);
    let mut cases = Cases::default();
    let mut inputs: Vec<(u64, i64)> = byte_values(&mut rng)
        .into_iter()
        .filter(|&v| v <= IV_MAX)
        .map(|v| (v, 1))
        .collect();
    for _ in 0..RANDOM_CASES {
        inputs.push((rng.counter(), time_step(&mut rng)));
    }
    for &(transferred, at) in &inputs {
        let (line, _) = first_line(Style::Current, &reply("error", IV_MAX, transferred), at);
        let read = between(&line, ", read: ", ", write: ").to_string();
        cases.push(format!("[{transferred},{at}]"), read);
    }
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $get_mbps of
    // $query_backup_status_loop (render_bytes($bw, 1) . "/s").
    cases.match_perl(
        "current get_mbps",
        r#"
sub case {
    my ($mb, $at) = @_;
    my $timediff = (($starttime + $at) - $starttime) || 1;
    return $get_mbps->($mb, $timediff);
}
"#,
    );
}

#[test]
fn render_duration_matches_perl() {
    let mut rng = Rng::new(0x5eed_0009);
    let mut values: Vec<u64> = vec![0, 1, 59, 60, 61, 3599, 3600, 86_399, 86_400, 604_799];
    values.extend([604_800, TWO_53 - 1, TWO_53, TWO_53 + 1, IV_MAX, u64::MAX]);
    for _ in 0..RANDOM_CASES {
        values.push(rng.magnitude(64));
    }
    let cases = one_value_cases(&values, render_duration);
    // proxmox/pve-common src/PVE/Format.pm, render_duration.
    cases.match_perl(
        "render_duration",
        r#"
sub case {
    my ($secs) = @_;
    return render_duration($secs);
}
"#,
    );
}

/// One `done` reply, then the summary `at` seconds after the start.
struct SummaryCase {
    total: u64,
    dirty: Option<u64>,
    transferred: u64,
    zero: u64,
    reused: Option<u64>,
    at: i64,
}

impl SummaryCase {
    fn rust(&self) -> String {
        let status = BackupStatus {
            dirty: self.dirty,
            zero_bytes: Some(self.zero),
            reused: self.reused,
            ..reply("done", self.total, self.transferred)
        };
        summary_after(Style::Current, &status, self.at)
    }

    fn json(&self) -> String {
        let [dirty, reused] =
            [self.dirty, self.reused].map(|v| v.map_or("null".into(), |v| v.to_string()));
        format!(
            "[{},{dirty},{},{},{reused},{}]",
            self.total, self.transferred, self.zero, self.at
        )
    }
}

/// proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop: the `done`
/// branch's `$last_*` and the summary after the loop ($zero_per, $reuse_per, transferred
/// line with $get_mbps). A die (division by zero) prints `DIES: <message>`.
const CURRENT_SUMMARY: &str = r#"
sub case {
    my ($total_in, $dirty, $transferred_in, $zero_in, $reused_in, $at) = @_;
    my ($last_percent, $last_total, $last_target, $last_zero, $last_transferred) =
        (-1, 0, 0, 0, 0);
    my ($transferred, $reused);
    my @out;
    eval {
        my $total = $total_in || 0;
        my $target = (defined($dirty) && $dirty < $total) ? $dirty : $total;
        $transferred = $transferred_in || 0;
        $reused = $reused_in;
        my $zero = $zero_in || 0;
        $last_target = $target if $target;
        $last_total = $total if $total;
        $last_zero = $zero if $zero;
        $last_transferred = $transferred if $transferred;

        my $duration = ($starttime + $at) - $starttime;

        if ($last_zero) {
            my $zero_per = $last_target ? int(($last_zero * 100) / $last_target) : 0;
            my $zero_h = render_bytes($last_zero);
            push @out, "backup is sparse: $zero_h (${zero_per}%) total zero data";
        }
        if ($reused) {
            my $reused_h = render_bytes($reused);
            my $reuse_per = int($reused * 100 / $last_total);
            push @out, "backup was done incrementally, reused $reused_h (${reuse_per}%)";
        }
        if ($transferred) {
            my $transferred_h = render_bytes($transferred);
            if ($duration) {
                my $mbps = $get_mbps->($transferred, $duration);
                push @out, "transferred $transferred_h in $duration seconds ($mbps)";
            } else {
                push @out, "transferred $transferred_h in <1 seconds";
            }
        }
    };
    return "DIES: $@" if $@;
    return join("\n", @out);
}
"#;

/// proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop: $zero_per,
/// $reuse_per and the summary lines (see [`CURRENT_SUMMARY`]).
#[test]
fn current_summary_percents_match_perl() {
    let mut rng = Rng::new(0x5eed_000a);
    let mut inputs = Vec::new();
    for (total, transferred) in percent_cases(&mut rng) {
        if total == 0 {
            // Reuse without a total is the one case where Perl dies: see below.
            continue;
        }
        let dirty = [None, Some(rng.up_to(total)), Some(rng.counter())][rng.below(3) as usize];
        let zero = match rng.below(3) {
            0 => 0,
            1 => rng.up_to(total),
            _ => rng.counter(),
        };
        let reused =
            [None, Some(0), Some(rng.up_to(total)), Some(rng.counter())][rng.below(4) as usize];
        let at = [0, 1, time_step(&mut rng)][rng.below(3) as usize];
        inputs.push(SummaryCase {
            total,
            dirty,
            transferred,
            zero,
            reused,
            at,
        });
    }
    let cases: Cases = inputs.iter().map(|c| (c.json(), c.rust())).collect();
    cases.match_perl("current summary", CURRENT_SUMMARY);
}

#[test]
fn reuse_percent_with_zero_total_is_the_one_place_perl_dies() {
    // proxmox/qemu-server src/PVE/VZDump/QemuServer.pm, $query_backup_status_loop:
    // `int($reused * 100 / $last_total)` dies when no reply had a total; the summary here
    // cannot fail and prints 0 % (QEMU never reports reuse without a total).
    let case = SummaryCase {
        total: 0,
        dirty: None,
        transferred: 5,
        zero: 0,
        reused: Some(7),
        at: 1,
    };
    let out = perl(CURRENT_SUMMARY, &[case.json()]);
    assert!(
        out[0].starts_with("DIES: Illegal division by zero"),
        "{out:?}"
    );
    assert_eq!(
        case.rust(),
        "backup was done incrementally, reused 7.00 B (0%)\\ntransferred 5.00 B in 1 seconds (5.0 B/s)"
    );
}
