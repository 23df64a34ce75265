//! After a PBS start, neither the password nor the key password is left anywhere in this
//! process's writable memory (heap, anonymous mappings, stacks): every copy the library
//! made on the way to QEMU (the parameters, the `backup` arguments, the request bytes) is
//! wiped before it is freed. Read through `/proc/self/mem`; the one copy the test keeps to
//! search with, and its read buffer, are left out of the search.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use serde_json::{Map, Value};
use testkit::Sim;
use vzdump_qemu::backup::{self, PbsParams};
use vzdump_qemu::qmp::{Options, Peer};

/// A secret made at run time, in one allocation of its final size (a `format!` would grow
/// and leave freed copies of its own).
fn secret(tag: &str) -> String {
    let mut s = String::with_capacity(40);
    s.push_str(tag);
    s.push_str("-7b1e");
    for d in (std::process::id() % 1_000_000).to_string().chars() {
        s.push(d);
    }
    s.push_str("-q9Zt");
    s
}

/// The start of every copy of `needle` in writable private mappings, but those in `skip`.
fn copies(needle: &[u8], skip: &[(usize, usize)]) -> Vec<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut mem = File::open("/proc/self/mem").unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let buf_range = (buf.as_ptr() as usize, buf.as_ptr() as usize + buf.len());
    let mut found = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap();
        let perms = fields.next().unwrap();
        if !perms.starts_with("rw") || line.contains("[vvar") || line.contains("[vsyscall") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (
            usize::from_str_radix(start, 16).unwrap(),
            usize::from_str_radix(end, 16).unwrap(),
        );
        let mut at = start;
        while at < end {
            let len = (end - at).min(buf.len());
            mem.seek(SeekFrom::Start(at as u64)).unwrap();
            let n = match mem.read(&mut buf[..len]) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            for i in memchr_all(&buf[..n], needle) {
                let addr = at + i;
                let inside = |(s, e): (usize, usize)| addr >= s && addr < e;
                if !inside(buf_range) && !skip.iter().copied().any(inside) {
                    found.push(addr);
                }
            }
            // Overlap the next chunk so that a copy across the edge is seen.
            at += n.saturating_sub(needle.len()).max(1);
        }
    }
    found
}

fn memchr_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn no_copy_of_a_pbs_password_is_left_after_the_start() {
    let sim = Sim::start(&["--gen-disk", "drive-scsi0=16M"]);
    let (password, key_password) = (secret("pbs-password"), secret("key-password"));
    // The needles: one copy each, kept for the search and skipped by it.
    let needles = [
        password.as_bytes().to_vec(),
        key_password.as_bytes().to_vec(),
    ];
    let skip: Vec<(usize, usize)> = needles
        .iter()
        .map(|n| (n.as_ptr() as usize, n.as_ptr() as usize + n.len()))
        .collect();

    let mut params = Map::new();
    for (key, value) in [
        ("backup-file", "root@pam@pbs:store"),
        ("backup-id", "100"),
        ("backup-time", "1700000000"),
        ("devlist", "drive-scsi0"),
        ("keyfile", "/etc/pve/priv/storage/pbs.enc"),
    ] {
        params.insert(key.into(), Value::String(value.into()));
    }
    params.insert("password".into(), Value::String(password));
    params.insert("key-password".into(), Value::String(key_password));
    let params: PbsParams = vzdump_qemu::loose::from_json(Value::Object(params)).unwrap();
    let peer = Peer::path(&sim.socket);
    let uuid = backup::start_pbs(&peer, &Options::default(), &params, None).unwrap();
    assert_eq!(uuid.len(), 36);
    drop(params);

    for (needle, name) in needles.iter().zip(["password", "key password"]) {
        let left = copies(needle, &skip);
        assert!(
            left.is_empty(),
            "{name}: {} copies left at {left:x?}",
            left.len()
        );
    }
}
