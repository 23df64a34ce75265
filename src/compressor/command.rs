//! What to run: the compressor command, and Perl's rules for running a command string.

use std::fmt;

/// A compressor command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// Program and arguments; the program is searched in `PATH`, no shell is involved.
    Argv(Vec<String>),
    /// One command line (e.g. vzdump's `zstd --threads=2`), run as Perl's `exec STRING`
    /// runs it: see [`plan_line`].
    Line(String),
}

impl CommandSpec {
    /// The command as messages show it: the line as given, or the arguments joined by spaces.
    pub fn describe(&self) -> String {
        self.to_string()
    }

    /// How the command is started.
    pub fn invocation(&self) -> Invocation {
        match self {
            CommandSpec::Argv(argv) => Invocation::Direct {
                argv: argv.clone(),
                stderr_to_stdout: false,
            },
            CommandSpec::Line(line) => plan_line(line),
        }
    }
}

impl fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandSpec::Argv(argv) => f.write_str(&argv.join(" ")),
            CommandSpec::Line(line) => f.write_str(line),
        }
    }
}

/// How a command is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// Run `/bin/sh -c <script>`.
    Shell {
        /// The script handed to the shell.
        script: String,
    },
    /// Run `argv[0]`, searched in `PATH`, with `argv` as its arguments.
    Direct {
        /// Program and arguments; empty if the line held nothing but whitespace.
        argv: Vec<String>,
        /// The line ended in ` 2>&1`: the child's stderr becomes a copy of its stdout.
        stderr_to_stdout: bool,
    },
}

/// Characters that make Perl hand a command line to the shell.
const SHELL_METACHARS: &[u8] = b"$&*(){}[]'\";\\|?<>~`\n";

/// Decides how Perl's `exec STRING` would run `line` (perl's `doio.c`, `do_exec3`).
///
/// Leading whitespace is skipped. The rest goes to `/bin/sh -c` if it starts with `. ` or
/// `exec `, if its leading word characters are followed by `=` (`VAR=value cmd`), or if it
/// contains one of `` $&*(){}[]'";\|?<>~` `` or a newline. Two exceptions
/// keep it off the shell: a single newline at the very end is dropped, and a final ` 2>&1`
/// (only whitespace after it) is dropped and done by the spawner instead. Otherwise the
/// line is split on whitespace and run directly.
pub fn plan_line(line: &str) -> Invocation {
    let start = line
        .bytes()
        .position(|b| !is_perl_space(b))
        .unwrap_or(line.len());
    // Whitespace is ASCII, so `start` is a char boundary.
    let cmd = &line[start..];
    let bytes = cmd.as_bytes();
    let shell = || Invocation::Shell {
        script: cmd.to_string(),
    };

    if bytes.first() == Some(&b'.') && bytes.get(1).copied().is_some_and(is_perl_space) {
        return shell();
    }
    if bytes.starts_with(b"exec") && bytes.get(4).copied().is_some_and(is_perl_space) {
        return shell();
    }
    let word_end = bytes
        .iter()
        .position(|&b| !is_perl_word(b))
        .unwrap_or(bytes.len());
    if bytes.get(word_end) == Some(&b'=') {
        return shell();
    }

    let mut end = bytes.len();
    let mut stderr_to_stdout = false;
    for (i, &b) in bytes.iter().enumerate() {
        if !SHELL_METACHARS.contains(&b) {
            continue;
        }
        if b == b'\n' && i + 1 == bytes.len() {
            end = i;
            break;
        }
        if let Some(cut) = trailing_stderr_redirect(bytes, i) {
            end = cut;
            stderr_to_stdout = true;
            break;
        }
        return shell();
    }

    let argv = cmd[..end]
        .split(|c: char| c.is_ascii() && is_perl_space(c as u8))
        .filter(|word| !word.is_empty())
        .map(str::to_string)
        .collect();
    Invocation::Direct {
        argv,
        stderr_to_stdout,
    }
}

/// If `bytes[i]` is the `>` of a `<space>2>&1` followed by nothing but whitespace, the index
/// of that space (where the command proper ends).
fn trailing_stderr_redirect(bytes: &[u8], i: usize) -> Option<usize> {
    let is_redirect = i >= 2
        && bytes[i] == b'>'
        && bytes.get(i + 1) == Some(&b'&')
        && bytes.get(i + 2) == Some(&b'1')
        && bytes[i - 1] == b'2'
        && is_perl_space(bytes[i - 2]);
    if is_redirect && bytes[i + 3..].iter().all(|&b| is_perl_space(b)) {
        Some(i - 2)
    } else {
        None
    }
}

/// Perl's `isSPACE` on a byte (ASCII whitespace including vertical tab).
fn is_perl_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Perl's `isWORDCHAR` on a byte: ASCII letter, digit or underscore.
fn is_perl_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(words: &[&str]) -> Invocation {
        Invocation::Direct {
            argv: words.iter().map(|w| w.to_string()).collect(),
            stderr_to_stdout: false,
        }
    }

    fn shell(script: &str) -> Invocation {
        Invocation::Shell {
            script: script.to_string(),
        }
    }

    #[test]
    fn vzdump_compressor_strings_run_directly() {
        assert_eq!(plan_line("lzop"), direct(&["lzop"]));
        assert_eq!(
            plan_line("gzip --rsyncable"),
            direct(&["gzip", "--rsyncable"])
        );
        assert_eq!(
            plan_line("pigz -p 4 --rsyncable"),
            direct(&["pigz", "-p", "4", "--rsyncable"])
        );
        assert_eq!(
            plan_line("zstd --threads=2"),
            direct(&["zstd", "--threads=2"])
        );
    }

    #[test]
    fn whitespace_is_skipped_and_collapsed() {
        assert_eq!(
            plan_line(" \t zstd   -1\t\x0b-T1 \r"),
            direct(&["zstd", "-1", "-T1"])
        );
        assert_eq!(plan_line("   "), direct(&[]));
        assert_eq!(plan_line(""), direct(&[]));
    }

    #[test]
    fn every_metachar_selects_the_shell() {
        for &meta in SHELL_METACHARS {
            let line = format!("cat {}x", meta as char);
            assert_eq!(plan_line(&line), shell(&line), "metachar {meta:?}");
        }
    }

    #[test]
    fn non_metachars_stay_direct() {
        assert_eq!(
            plan_line("zstd -o /tmp/a,b%c@d#e+f:g=h!i"),
            direct(&["zstd", "-o", "/tmp/a,b%c@d#e+f:g=h!i"])
        );
    }

    #[test]
    fn shell_script_keeps_everything_after_leading_whitespace() {
        assert_eq!(plan_line("  cat | cat\n"), shell("cat | cat\n"));
        assert_eq!(plan_line("sh -c 'exit 3'"), shell("sh -c 'exit 3'"));
    }

    #[test]
    fn dot_and_exec_prefixes_select_the_shell() {
        assert_eq!(plan_line(". ./env"), shell(". ./env"));
        assert_eq!(plan_line(".\t./env"), shell(".\t./env"));
        assert_eq!(plan_line("exec zstd"), shell("exec zstd"));
        assert_eq!(plan_line(" exec\tzstd"), shell("exec\tzstd"));
        assert_eq!(plan_line("./zstd"), direct(&["./zstd"]));
        assert_eq!(plan_line("executor x"), direct(&["executor", "x"]));
        assert_eq!(plan_line("exec"), direct(&["exec"]));
    }

    #[test]
    fn assignment_prefix_selects_the_shell() {
        assert_eq!(plan_line("ZSTD_CLEVEL=3 zstd"), shell("ZSTD_CLEVEL=3 zstd"));
        assert_eq!(plan_line("=x"), shell("=x"));
        // `=` after a non-word character is an ordinary argument character.
        assert_eq!(
            plan_line("zstd --threads=2"),
            direct(&["zstd", "--threads=2"])
        );
        assert_eq!(plan_line("a-b=c"), direct(&["a-b=c"]));
    }

    #[test]
    fn newlines() {
        assert_eq!(plan_line("gzip\n"), direct(&["gzip"]));
        assert_eq!(plan_line("gzip\n\n"), shell("gzip\n\n"));
        assert_eq!(plan_line("gzip\nlzop"), shell("gzip\nlzop"));
    }

    #[test]
    fn trailing_stderr_redirect_is_done_without_shell() {
        let plain = Invocation::Direct {
            argv: vec!["zstd".into(), "-q".into()],
            stderr_to_stdout: true,
        };
        assert_eq!(plan_line("zstd -q 2>&1"), plain);
        assert_eq!(plan_line("zstd -q 2>&1 \n"), plain);
        assert_eq!(plan_line("zstd -q 2>&1 x"), shell("zstd -q 2>&1 x"));
        assert_eq!(plan_line("zstd -q2>&1"), shell("zstd -q2>&1"));
        assert_eq!(plan_line("zstd 2>&12"), shell("zstd 2>&12"));
        assert_eq!(plan_line("2>&1"), shell("2>&1"));
        // An earlier metacharacter wins.
        assert_eq!(plan_line("a;b 2>&1"), shell("a;b 2>&1"));
    }

    #[test]
    fn describe_shows_the_command_as_given() {
        let line = CommandSpec::Line("  zstd --threads=2\n".into());
        assert_eq!(line.describe(), "  zstd --threads=2\n");
        let argv = CommandSpec::Argv(vec!["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(argv.describe(), "sh -c exit 3");
        assert_eq!(
            argv.invocation(),
            direct(&["sh", "-c", "exit 3"]),
            "argv is never re-parsed"
        );
    }
}
