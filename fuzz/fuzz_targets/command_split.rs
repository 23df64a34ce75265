//! The Perl-style command-string splitter (`src/compressor/command.rs`, `plan_line`) and
//! what the spawner makes of its plan (`src/compressor/spawn.rs`).
//!
//! Input: the command line (invalid UTF-8 replaced, as no Rust string can hold it).
//!
//! Checked against a model written from perl's `doio.c` (`Perl_do_exec3`): leading
//! whitespace skipped; `. `, `exec `, `WORD=` go to the shell; otherwise the first shell
//! metacharacter decides: none, or a newline that ends the line, or the `>` of a
//! `<space>2>&1` followed only by whitespace, and the line runs directly, split on
//! whitespace; any other, and `/bin/sh -c` runs it. And: the spawner runs exactly the
//! plan's program and arguments, and refuses exactly an empty command or one with a NUL
//! byte (which no C string can carry).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vzdump_qemu::compressor::{plan_line, CommandSpec, Invocation};
use vzdump_qemu::fuzzing::program_for;

/// Perl's `isSPACE` (ASCII).
fn space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The characters `Perl_do_exec3` looks for (its `memCHRs` list).
fn meta(c: char) -> bool {
    "$&*(){}[]'\";\\|?<>~`\n".contains(c)
}

fn words(text: &str) -> Vec<String> {
    text.split(space)
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn model(line: &str) -> Invocation {
    let cmd = line.trim_start_matches(space);
    let shell = Invocation::Shell {
        script: cmd.to_string(),
    };
    let mut chars = cmd.chars();
    let (first, second) = (chars.next(), chars.next());
    if first == Some('.') && second.is_some_and(space) {
        return shell;
    }
    if cmd.starts_with("exec") && cmd[4..].chars().next().is_some_and(space) {
        return shell;
    }
    let word = cmd.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_');
    if word.starts_with('=') {
        return shell;
    }
    let Some(at) = cmd.find(meta) else {
        return Invocation::Direct {
            argv: words(cmd),
            stderr_to_stdout: false,
        };
    };
    if at == cmd.len() - 1 && cmd.ends_with('\n') {
        return Invocation::Direct {
            argv: words(&cmd[..at]),
            stderr_to_stdout: false,
        };
    }
    // The first metacharacter is the `>` of ` 2>&1` and only whitespace follows.
    let before = &cmd[..at];
    let redirect = cmd[at..].starts_with(">&1")
        && cmd[at + 3..].chars().all(space)
        && before.ends_with('2')
        && before[..before.len() - 1].ends_with(space)
        && at >= 2;
    if redirect {
        return Invocation::Direct {
            argv: words(&cmd[..at - 2]),
            stderr_to_stdout: true,
        };
    }
    shell
}

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let plan = plan_line(&line);
    assert_eq!(plan, model(&line), "{line:?}");

    let spec = CommandSpec::Line(line.to_string());
    assert_eq!(spec.invocation(), plan);
    assert_eq!(spec.describe(), line);

    let (argv, search_path, stderr_to_stdout) = match &plan {
        Invocation::Shell { script } => {
            assert!(!script.is_empty());
            let argv = vec!["/bin/sh".to_string(), "-c".into(), script.clone()];
            (argv, false, false)
        }
        Invocation::Direct {
            argv,
            stderr_to_stdout,
        } => {
            for word in argv {
                assert!(!word.is_empty() && !word.contains(space) && !word.contains(meta));
            }
            // Empty only for a line of whitespace.
            assert_eq!(argv.is_empty(), line.chars().all(space), "{line:?}");
            (argv.clone(), true, *stderr_to_stdout)
        }
    };
    let runnable = !argv.is_empty() && !argv.iter().any(|a| a.contains('\0'));
    match program_for(&spec) {
        Ok(spawned) => {
            assert!(runnable, "{line:?} would be spawned");
            let expected: Vec<Vec<u8>> = argv.iter().map(|a| a.as_bytes().to_vec()).collect();
            assert_eq!(spawned.argv, expected);
            assert_eq!(spawned.path, expected[0]);
            assert_eq!(spawned.search_path, search_path);
            assert_eq!(spawned.stderr_to_stdout, stderr_to_stdout);
        }
        Err(e) => {
            assert!(!runnable, "{line:?} refused: {e}");
            assert!(e.to_string().contains("NUL byte") || e.to_string().contains("empty command"));
        }
    }
});
