//! Reading a `/metrics` answer in tests: the value of one sample picked by its labels, and
//! `promtool check metrics` (Debian's `prometheus` package; scripts/deps.sh installs it), which
//! fails the test when it is missing rather than skipping: CI must check the exposition.

use std::io::Write;
use std::process::{Command, Stdio};

/// The value of the sample of `name` whose labels include every `(label, value)` of `labels`;
/// `None` when there is none. Panics if more than one matches (the test named too few labels).
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(parts) => parts,
            None => continue,
        };
        let (sample_name, label_text) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if sample_name != name {
            continue;
        }
        let has = |(label, wanted): &(&str, &str)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{label}=\"{wanted}\""))
        };
        if labels.iter().all(has) {
            assert!(
                found.is_none(),
                "more than one {name} sample has {labels:?}:\n{text}"
            );
            found = Some(
                value
                    .parse::<f64>()
                    .unwrap_or_else(|e| panic!("{line}: the value is not a number: {e}")),
            );
        }
    }
    found
}

/// Like [`sample`], but panics with the text when there is no such sample.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels)
        .unwrap_or_else(|| panic!("no {name} sample with {labels:?} in:\n{text}"))
}

/// Runs `promtool check metrics` on `text`; panics with its findings when it finds any, and
/// when promtool is not installed (install the `prometheus` package: scripts/deps.sh).
pub fn promtool_check(text: &str) {
    let bin = std::env::var("FLOTILLA_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let mut child = Command::new(&bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool is needed by this test but `{bin}` could not run ({e}): install the \
                 Debian package `prometheus` (scripts/deps.sh does), or set FLOTILLA_PROMTOOL"
            )
        });
    child
        .stdin
        .take()
        .expect("promtool's stdin")
        .write_all(text.as_bytes())
        .expect("writing to promtool");
    let output = child.wait_with_output().expect("promtool ran");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool check metrics: {}\n{findings}\n--- the exposition:\n{text}",
        output.status
    );
}
