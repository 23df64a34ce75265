//! The one table of `make bench`: reads the rows the other bench programs appended to
//! `BENCH_OUT` (JSON lines), prints them as one table, and writes `target/bench/bench.json`
//! (rows, machine, conditions) and `target/bench/bench.md` (the table in Markdown, for
//! `docs/performance.md`). Fails when a row is missing, so that the quick run checks that
//! everything ran. Settings: `BENCH_OUT` (required), `BENCH_CONDITIONS` (free text: how
//! the run was made, e.g. what else loaded the machine).

mod common;

use std::process::Command;

use serde_json::{json, Value};

/// Every section's variants, and how many cases each section has at least.
const EXPECTED: &[(&str, usize, &[&str])] = &[
    (
        "qmp",
        2,
        &[
            "raw socket, Rust (floor)",
            "library, Rust",
            "library via Perl module",
            "qemu-server way (Perl IO::Multiplex+JSON::XS)",
            "Python qemu.qmp",
        ],
    ),
    (
        "completion",
        1,
        &["seed loop (query, sleep 1 s)", "library Poller"],
    ),
    (
        "spawn",
        2,
        &[
            "fork+exec, Rust",
            "posix_spawnp, Rust (no library)",
            "library, Rust (posix_spawn)",
            "library via C API",
            "library via Perl module",
            "seed's way (Perl fork+exec)",
        ],
    ),
    (
        "e2e",
        1,
        &[
            "simulator writes the file itself",
            "library, no compressor",
            "zstd alone on the VMA (cat | zstd)",
            "library + zstd (1 MiB pipe)",
            "library + zstd (64 KiB pipe)",
            "lzop alone on the VMA (cat | lzop)",
            "library + lzop (1 MiB pipe)",
        ],
    ),
    (
        "memory",
        1,
        &[
            "C, plain libc (no library)",
            "C with the library",
            "Perl, POSIX/IO only (no module)",
            "Perl with PVE::RS::VZDump::Qemu",
        ],
    ),
];

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn machine() -> Value {
    let lscpu = Command::new("lscpu")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let model = lscpu
        .lines()
        .find_map(|l| l.strip_prefix("Model name:"))
        .map_or("?".into(), |m| m.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0);
    json!({
        "nproc": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": model,
        "memory_gib": (mem_kib as f64 / (1 << 20) as f64 * 10.0).round() / 10.0,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "qemu": first_line("qemu-system-x86_64", &["--version"]),
        "zstd": first_line("zstd", &["--version"]),
        "perl": first_line("perl", &["-e", "print $^V"]),
        "loadavg_at_report": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn num(v: &Value) -> String {
    v.as_f64().map_or("?".into(), common::fmt)
}

fn main() {
    let path = std::env::var_os("BENCH_OUT").expect("BENCH_OUT: the rows file");
    let rows: Vec<Value> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();

    // The table.
    let head = [
        "section", "case", "variant", "median", "p95", "unit", "n", "ratio", "paired", "vs",
        "target",
    ];
    let cells: Vec<[String; 11]> = rows
        .iter()
        .map(|r| {
            [
                text(&r["section"]),
                text(&r["case"]),
                text(&r["variant"]),
                num(&r["median"]),
                num(&r["p95"]),
                text(&r["unit"]),
                text(&r["n"]),
                r["ratio"]
                    .as_f64()
                    .map_or("?".into(), |x| format!("{x:.2}x")),
                r["paired_ratio"]
                    .as_f64()
                    .map_or(String::new(), |x| format!("{x:.2}x")),
                if r["baseline"].is_null() {
                    "(baseline)".into()
                } else {
                    text(&r["baseline"])
                },
                text(&r["target"]),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let numeric = [
        false, false, false, true, true, false, true, true, true, false, false,
    ];
    let line = |row: &[String]| {
        row.iter()
            .zip(&widths)
            .zip(numeric)
            .map(|((c, &w), right)| {
                let pad = w - c.chars().count();
                if right {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let head: Vec<String> = head.iter().map(|h| h.to_string()).collect();
    println!("{}", line(&head));
    let mut section = String::new();
    for row in &cells {
        if row[0] != section && !section.is_empty() {
            println!();
        }
        section = row[0].clone();
        println!("{}", line(row));
    }

    // Markdown, for docs/performance.md.
    let mut md = format!("| {} |\n", head.join(" | "));
    md.push_str(&format!("|{}\n", " --- |".repeat(head.len())));
    for row in &cells {
        md.push_str(&format!("| {} |\n", row.join(" | ").replace('`', "\\`")));
    }

    let machine = machine();
    let conditions = std::env::var("BENCH_CONDITIONS").unwrap_or_default();
    println!("\nmachine: {machine}");
    if !conditions.is_empty() {
        println!("conditions: {conditions}");
    }
    let out = common::bench_dir();
    let report = json!({
        "quick": common::quick(),
        "conditions": conditions,
        "machine": machine,
        "rows": rows,
    });
    std::fs::write(
        out.join("bench.json"),
        serde_json::to_string_pretty(&report).unwrap() + "\n",
    )
    .unwrap();
    std::fs::write(out.join("bench.md"), md).unwrap();
    println!(
        "written: {} and {}",
        out.join("bench.json").display(),
        out.join("bench.md").display()
    );

    // Every row must be there.
    let mut missing = Vec::new();
    for (section, min_cases, variants) in EXPECTED {
        let mut cases: Vec<String> = rows
            .iter()
            .filter(|r| r["section"] == *section)
            .map(|r| text(&r["case"]))
            .collect();
        cases.dedup();
        if cases.len() < *min_cases {
            missing.push(format!(
                "{section}: {} cases, expected {min_cases}",
                cases.len()
            ));
        }
        for case in &cases {
            for variant in *variants {
                let found = rows.iter().find(|r| {
                    r["section"] == *section
                        && text(&r["case"]) == *case
                        && r["variant"] == *variant
                });
                match found {
                    None => missing.push(format!("{section} / {case} / {variant}")),
                    Some(r) if r["median"].as_f64().is_none() || r["n"].as_u64() == Some(0) => {
                        missing.push(format!("{section} / {case} / {variant}: no samples"))
                    }
                    Some(_) => {}
                }
            }
        }
    }
    if !missing.is_empty() {
        eprintln!("bench: rows missing:\n  {}", missing.join("\n  "));
        std::process::exit(1);
    }
    println!("all {} rows present", rows.len());
}
