//! What the commands print on standard output, without `println!`'s panic when the reader has
//! gone away (`flotilla chaos shipping --list | head -1`: `head` exits after one line, the next
//! write fails with EPIPE, since Rust ignores SIGPIPE, and `println!` panicked with exit 101).
//!
//! Two policies, by the kind of command:
//! - [`report!`](crate::report) for the one-shot commands (`chaos`, `status`, `load`,
//!   `migrate`, …): a closed stdout means nobody reads the rest, so the command ends there with
//!   status 0, as a Unix filter killed by SIGPIPE would have ended quietly;
//! - [`notice!`](crate::notice) for the long-running ones (`run`, `up`, `proxy`): their banner
//!   is a courtesy, and a closed stdout must not stop a server (or leave `up`'s children
//!   behind), so a failed write is ignored.

use std::io::Write;

/// Writes `line` and a newline to stdout; `Err` only when the write failed.
fn write_line(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// [`report!`](crate::report)'s body: a closed stdout ends the process with status 0; any other
/// failure to write is ignored (there is nowhere left to say it but stderr, which gets it).
pub fn report(line: std::fmt::Arguments<'_>) {
    match write_line(line) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => eprintln!("flotilla: cannot write to standard output: {e}"),
    }
}

/// [`notice!`](crate::notice)'s body: a failed write is ignored.
pub fn notice(line: std::fmt::Arguments<'_>) {
    let _ = write_line(line);
}

/// `println!` for a one-shot command: a closed stdout ends the command with status 0.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => { $crate::output::report(format_args!($($arg)*)) };
}

/// `println!` for a server's banner: a closed stdout is ignored.
#[macro_export]
macro_rules! notice {
    ($($arg:tt)*) => { $crate::output::notice(format_args!($($arg)*)) };
}
