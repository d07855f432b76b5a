//! `flotilla-bench-report`: the second half of `scripts/bench.sh` (issue 15). The script runs
//! the measurements and leaves them raw in a results folder (the `flotilla load` JSON reports
//! as they are, the other figures as JSON lines); this tool reads them, derives the figures the
//! issues' targets are read from (saturation throughput at a p99 target, medians of rounds,
//! ratios to a baseline, CPU-seconds per 1,000 requests), and rewrites the generated part of
//! `docs/benchmarks.md` with a table and an SVG plot per series.
//!
//! A tool of its own, not a `flotilla` subcommand: the shop's binary has no business drawing
//! charts, and keeping the arithmetic here (typed, unit-tested) keeps it out of shell and awk.

mod doc;
mod plot;
mod sections;

use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;

/// Rewrites docs/benchmarks.md's generated part from scripts/bench.sh's measurements.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The folder scripts/bench.sh wrote its measurements to.
    #[arg(long, default_value = "target/bench")]
    results: PathBuf,
    /// The document whose generated part (between its two markers) is rewritten.
    #[arg(long, default_value = "docs/benchmarks.md")]
    doc: PathBuf,
    /// Where the SVG plots are written; the document links them relative to itself.
    #[arg(long, default_value = "docs/bench")]
    plots: PathBuf,
    /// The p99 target that defines the saturation throughput, in ms (DeathStarBench reports
    /// the highest load served within a tail-latency target).
    #[arg(long, default_value_t = 100.0)]
    p99_target_ms: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let report = sections::Report::read(&args.results, args.p99_target_ms)
        .with_context(|| format!("reading the measurements in {}", args.results.display()))?;
    std::fs::create_dir_all(&args.plots)
        .with_context(|| format!("creating {}", args.plots.display()))?;
    let plots_link = doc::relative_link(&args.doc, &args.plots);
    let rendered = report.render(&plots_link)?;
    for (name, svg) in &rendered.plots {
        let path = args.plots.join(name);
        std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    let old = std::fs::read_to_string(&args.doc).unwrap_or_default();
    let new = doc::replace_generated(&old, &rendered.markdown);
    std::fs::write(&args.doc, new).with_context(|| format!("writing {}", args.doc.display()))?;
    println!(
        "{}: {} sections, {} plots in {}",
        args.doc.display(),
        rendered.sections,
        rendered.plots.len(),
        args.plots.display()
    );
    Ok(())
}
