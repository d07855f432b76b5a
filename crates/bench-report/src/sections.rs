//! What scripts/bench.sh measured, read from its results folder, and the report made of it.
//!
//! The folder holds, per section, the exact commands (`<section>.cmd`) and the figures:
//! `flotilla load --json` reports as they are (`mix/`: one file per run, named
//! `<n>-<label-with-dashes>.json`, drawn in name order), and JSON lines for the rest
//! (`checkout.jsonl` and `resources.jsonl` from the fleet bench, `edge.jsonl`,
//! `search.jsonl`). A section whose files are missing is left
//! out, so a partial run (`SECTIONS=...`) still gives a report of what it measured.

use anyhow::Context as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::plot::{self, Series, thousands};

/// The part of a `flotilla load --json` report (format `flotilla-load/1`) read here.
#[derive(Debug, Clone, Deserialize)]
pub struct LoadReport {
    pub format: String,
    pub steps: Vec<LoadStep>,
    pub invariants: Invariants,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LoadStep {
    pub offered_rate: Option<f64>,
    pub users: Option<u32>,
    pub journeys: u64,
    pub achieved_rate: f64,
    pub errors: Errors,
    pub latency: Latency,
    #[serde(default)]
    pub by_journey: Vec<JourneySeries>,
}

/// One journey's figures within a step.
#[derive(Debug, Clone, Deserialize)]
pub struct JourneySeries {
    pub journey: String,
    pub errors: Errors,
    pub latency: Latency,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Errors {
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub timeout: u64,
    pub connect: u64,
    pub other: u64,
    pub not_started: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.status_4xx
            + self.status_5xx
            + self.timeout
            + self.connect
            + self.other
            + self.not_started
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Invariants {
    pub violation_count: u64,
    pub orders_acknowledged: u64,
    pub orders_terminal: u64,
}

/// Most errors a step may have and still count towards the saturation throughput.
const MAX_ERROR_SHARE: f64 = 0.01;

impl LoadStep {
    fn error_share(&self) -> f64 {
        if self.journeys == 0 {
            return 0.0;
        }
        self.errors.total() as f64 / self.journeys as f64
    }

    /// The load the step offered: its rate, or its users in a closed loop.
    fn offered(&self) -> f64 {
        self.offered_rate
            .or(self.users.map(f64::from))
            .unwrap_or(0.0)
    }

    fn within(&self, p99_target_ms: f64) -> bool {
        self.latency.p99_ms <= p99_target_ms && self.error_share() <= MAX_ERROR_SHARE
    }
}

impl LoadReport {
    /// The highest throughput achieved by a step within the p99 target and with at most 1 %
    /// errors (DeathStarBench's saturation throughput); `None` when no step was.
    pub fn saturation(&self, p99_target_ms: f64) -> Option<f64> {
        self.steps
            .iter()
            .filter(|s| s.within(p99_target_ms))
            .map(|s| s.achieved_rate)
            .fold(None, |best: Option<f64>, r| {
                Some(best.map_or(r, |b| b.max(r)))
            })
    }
}

/// One `flotilla load` run of a section.
#[derive(Debug, Clone)]
pub struct Run {
    pub label: String,
    pub report: LoadReport,
}

/// `edge.jsonl`: one wrk run through one proxy.
#[derive(Debug, Clone, Deserialize)]
pub struct EdgeRound {
    pub scenario: String,
    pub rps: f64,
    pub p99_ms: f64,
    #[serde(default)]
    pub non_2xx: u64,
}

/// `search.jsonl`: one backend and catalog size.
#[derive(Debug, Clone, Deserialize)]
pub struct SearchRow {
    pub backend: String,
    pub products: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    #[serde(default)]
    pub non_2xx: u64,
    pub get_rps: f64,
}

/// `checkout.jsonl`: one deployment under the checkout load (closed loop of customers, each
/// checkout timed from `POST /api/orders` to CONFIRMED).
#[derive(Debug, Clone, Deserialize)]
pub struct CheckoutRow {
    pub label: String,
    pub users: u64,
    pub checkouts_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub confirmed: u64,
    pub errors: u64,
    pub ready_ms: u64,
}

/// `resources.jsonl`: one process over one phase (`idle`, or `load`, in which it served
/// `work` units of `work_unit`).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceRow {
    pub mode: String,
    pub process: String,
    pub phase: String,
    pub seconds: f64,
    pub cpu_s: f64,
    pub rss_kib: u64,
    #[serde(default)]
    pub work: u64,
    #[serde(default = "requests")]
    pub work_unit: String,
}

fn requests() -> String {
    "requests".to_owned()
}

/// `recovery.json`: what was killed, and when, in a `--report-every` run (`recovery/load.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct RecoveryMeta {
    /// Seconds from the start of the measured run to the kill.
    pub killed_at_s: f64,
    /// Length of each slice of the report.
    pub slice_s: f64,
    /// What was killed, in words.
    pub what: String,
    /// The journey whose p99 is followed (`checkout`), or the whole mix when absent.
    #[serde(default)]
    pub journey: Option<String>,
}

/// A recovery run: the p99 of each slice, and when it came back.
#[derive(Debug, Clone)]
pub struct Recovery {
    pub meta: RecoveryMeta,
    pub report: LoadReport,
}

/// How far above its steady value a slice's p99 may be and count as recovered.
pub const RECOVERED_WITHIN: f64 = 1.2;
/// Slices in a row within it that make a recovery (one good second is luck).
const RECOVERED_FOR: usize = 3;

/// What a recovery run shows.
#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryFigures {
    /// (start of the slice in s, p99 in ms, errors) per slice.
    pub slices: Vec<(f64, f64, u64)>,
    /// Median p99 of the slices before the kill.
    pub steady_p99_ms: f64,
    /// Seconds from the kill until `RECOVERED_FOR` slices in a row are within
    /// `RECOVERED_WITHIN` × steady; `None` when the run ended first.
    pub recovered_after_s: Option<f64>,
    /// Worst p99 after the kill.
    pub worst_p99_ms: f64,
    /// Failed journeys after the kill.
    pub errors_after: u64,
}

impl Recovery {
    pub fn figures(&self) -> RecoveryFigures {
        let m = &self.meta;
        let slices: Vec<(f64, f64, u64)> = self
            .report
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let (p99, errors) = match &m.journey {
                    Some(name) => step
                        .by_journey
                        .iter()
                        .find(|j| &j.journey == name)
                        .map_or((f64::NAN, 0), |j| (j.latency.p99_ms, j.errors.total())),
                    None => (step.latency.p99_ms, step.errors.total()),
                };
                (i as f64 * m.slice_s, p99, errors)
            })
            .collect();
        let mut before: Vec<f64> = slices
            .iter()
            .filter(|(t, p, _)| t + m.slice_s <= m.killed_at_s && p.is_finite())
            .map(|s| s.1)
            .collect();
        let steady = median(&mut before);
        let after: Vec<&(f64, f64, u64)> = slices
            .iter()
            .filter(|(t, _, _)| t + m.slice_s > m.killed_at_s)
            .collect();
        let within = |p: f64| p.is_finite() && p <= steady * RECOVERED_WITHIN;
        let recovered_after_s = after
            .windows(RECOVERED_FOR)
            .find(|w| w.iter().all(|s| within(s.1)))
            .map(|w| (w[0].0 - m.killed_at_s).max(0.0));
        RecoveryFigures {
            steady_p99_ms: steady,
            recovered_after_s,
            worst_p99_ms: after.iter().map(|s| s.1).fold(0.0, f64::max),
            errors_after: after.iter().map(|s| s.2).sum(),
            slices,
        }
    }
}

/// `layers.jsonl`: one layer measured on against off, side by side in one run (medians).
#[derive(Debug, Clone, Deserialize)]
pub struct LayerRow {
    pub layer: String,
    pub off: String,
    pub off_rps: f64,
    pub on_rps: f64,
    pub off_p99_ms: f64,
    pub on_p99_ms: f64,
    #[serde(default)]
    pub target: String,
}

/// When and where the measurements were made.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Meta {
    pub commit: String,
    pub date: String,
    pub cpus: u32,
    pub load_before: String,
    pub load_after: String,
    pub total_s: f64,
    #[serde(default)]
    pub quick: bool,
}

/// Everything read from the results folder.
#[derive(Debug, Default)]
pub struct Report {
    pub p99_target_ms: f64,
    pub meta: Option<Meta>,
    pub mix: Vec<Run>,
    pub checkout: Vec<CheckoutRow>,
    pub edge: Vec<EdgeRound>,
    pub search: Vec<SearchRow>,
    pub resources: Vec<ResourceRow>,
    pub layers: Vec<LayerRow>,
    pub recovery: Option<Recovery>,
    pub commands: BTreeMap<String, String>,
}

/// The report made: markdown, and SVG files by name.
#[derive(Debug)]
pub struct Rendered {
    pub markdown: String,
    pub plots: Vec<(String, String)>,
    pub sections: usize,
}

fn read_runs(dir: &Path) -> anyhow::Result<Vec<Run>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let report: LoadReport = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a flotilla load report", path.display()))?;
            anyhow::ensure!(
                report.format.starts_with("flotilla-load/"),
                "{}: format {}",
                path.display(),
                report.format
            );
            Ok(Run {
                label: label_of(path),
                report,
            })
        })
        .collect()
}

/// `3-fleet-orders-x2.json` → `fleet orders x2`.
fn label_of(path: &Path) -> String {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("run");
    let label = match stem.split_once('-') {
        Some((n, rest)) if n.chars().all(|c| c.is_ascii_digit()) => rest,
        _ => stem,
    };
    label.replace('-', " ")
}

fn read_recovery(dir: &Path) -> anyhow::Result<Option<Recovery>> {
    let (Ok(meta), Ok(load)) = (
        std::fs::read_to_string(dir.join("recovery.json")),
        std::fs::read_to_string(dir.join("recovery/load.json")),
    ) else {
        return Ok(None);
    };
    Ok(Some(Recovery {
        meta: serde_json::from_str(&meta).context("recovery.json")?,
        report: serde_json::from_str(&load).context("recovery/load.json")?,
    }))
}

fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

fn recovery_section(out: &mut String, recovery: &Recovery) -> anyhow::Result<String> {
    let f = recovery.figures();
    let m = &recovery.meta;
    let whose = m
        .journey
        .as_deref()
        .map_or("every journey".to_owned(), |j| format!("the {j} journeys"));
    let _ = writeln!(
        out,
        "{} at {:.0} s into a steady load; p99 of {whose} per {} s slice. Recovered: {} slices \
         in a row within {RECOVERED_WITHIN} × the steady p99 (the median of the slices before \
         the kill).\n",
        m.what, m.killed_at_s, m.slice_s, RECOVERED_FOR
    );
    let _ = writeln!(
        out,
        "| steady p99 | worst p99 after the kill | time to recover | failed journeys after the kill |"
    );
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| {:.1} ms | {:.1} ms | {} | {} |\n",
        f.steady_p99_ms,
        f.worst_p99_ms,
        f.recovered_after_s
            .map_or("not within the run".to_owned(), |s| format!("{s:.0} s")),
        f.errors_after
    );
    let top = f
        .slices
        .iter()
        .map(|s| s.1)
        .filter(|p| p.is_finite())
        .fold(f.steady_p99_ms, f64::max);
    let series = [
        Series {
            name: "p99 per slice".into(),
            points: f
                .slices
                .iter()
                .filter(|s| s.1.is_finite())
                .map(|s| (s.0, s.1))
                .collect(),
        },
        Series {
            name: "the kill".into(),
            points: vec![(m.killed_at_s, 0.0), (m.killed_at_s, top)],
        },
    ];
    let target = format!("{RECOVERED_WITHIN} × steady p99");
    plot::lines(&plot::Lines {
        title: "p99 per second around the kill",
        x_label: "seconds into the measured run",
        y_label: "p99 (ms)",
        series: &series,
        target: Some((f.steady_p99_ms * RECOVERED_WITHIN, &target)),
        log_x: false,
    })
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

impl Report {
    pub fn read(dir: &Path, p99_target_ms: f64) -> anyhow::Result<Self> {
        let meta = match std::fs::read_to_string(dir.join("meta.json")) {
            Ok(text) => Some(serde_json::from_str(&text).context("meta.json")?),
            Err(_) => None,
        };
        let mut commands = BTreeMap::new();
        for section in [
            "mix",
            "checkout",
            "edge",
            "search",
            "resources",
            "layers",
            "recovery",
        ] {
            if let Ok(text) = std::fs::read_to_string(dir.join(format!("{section}.cmd"))) {
                commands.insert(section.to_owned(), text.trim().to_owned());
            }
        }
        Ok(Self {
            p99_target_ms,
            meta,
            mix: read_runs(&dir.join("mix"))?,
            checkout: read_lines(&dir.join("checkout.jsonl"))?,
            edge: read_lines(&dir.join("edge.jsonl"))?,
            search: read_lines(&dir.join("search.jsonl"))?,
            resources: read_lines(&dir.join("resources.jsonl"))?,
            layers: read_lines(&dir.join("layers.jsonl"))?,
            recovery: read_recovery(dir)?,
            commands,
        })
    }

    fn command(&self, out: &mut String, section: &str) {
        if let Some(cmd) = self.commands.get(section) {
            let _ = writeln!(out, "```sh\n{cmd}\n```\n");
        }
    }

    pub fn render(&self, plots_link: &str) -> anyhow::Result<Rendered> {
        let mut out = String::new();
        let mut plots = Vec::new();
        let mut sections = 0;
        let _ = writeln!(
            out,
            "## The benchmark suite (`bash scripts/bench.sh`, issue 15)\n"
        );
        if let Some(m) = &self.meta {
            let _ = writeln!(
                out,
                "Measured at commit `{}` on {}, {} cores; load average {} before and {} after; \
                 the whole suite took {:.1} min{}. Everything below this paragraph, down to \
                 the end marker, is rewritten by the next run.\n",
                m.commit,
                m.date,
                m.cpus,
                m.load_before,
                m.load_after,
                m.total_s / 60.0,
                if m.quick {
                    " (`QUICK=1`: shorter steps, figures noisier)"
                } else {
                    ""
                }
            );
        }
        let mut plot_ref = |out: &mut String, name: &str, alt: &str, svg: String| {
            let _ = writeln!(out, "![{alt}]({plots_link}/{name})\n");
            plots.push((name.to_owned(), svg));
        };
        if !self.mix.is_empty() {
            sections += 1;
            let _ = writeln!(
                out,
                "### a. The 80/15/5 mix: p99 against offered load, and the saturation throughput\n"
            );
            self.command(&mut out, "mix");
            let _ = writeln!(
                out,
                "Open loop, exponential inter-arrival times, latency of whole journeys from their \
                 intended start (coordinated omission corrected); browse 80 %, cart 15 %, \
                 checkout 5 %. Saturation throughput: the most journeys a second achieved by a \
                 step with p99 ≤ {} ms and ≤ 1 % errors.\n",
                self.p99_target_ms
            );
            self.load_section(&mut out, &self.mix);
            let svg = self.load_plot("The 80/15/5 mix: p99 against offered load", &self.mix)?;
            plot_ref(&mut out, "mix-p99.svg", "p99 against offered load", svg);
        }
        if !self.checkout.is_empty() {
            sections += 1;
            let _ = writeln!(
                out,
                "### c. Checkout throughput and p99: one process, the fleet, replicas of its bottleneck\n"
            );
            self.command(&mut out, "checkout");
            let bars = self.checkout_section(&mut out);
            let svg = plot::bars("Confirmed checkouts a second", "checkouts/s", &bars)?;
            plot_ref(&mut out, "checkout.svg", "checkouts a second", svg);
        }
        if !self.edge.is_empty() {
            sections += 1;
            let _ = writeln!(
                out,
                "### b. The gateway against nginx, HAProxy and a direct call\n"
            );
            self.command(&mut out, "edge");
            let bars = self.edge_section(&mut out);
            let svg = plot::bars(
                "Reverse proxies, one worker each: req/s (median)",
                "req/s",
                &bars,
            )?;
            plot_ref(&mut out, "edge-rps.svg", "req/s per proxy", svg);
        }
        if !self.search.is_empty() {
            sections += 1;
            let _ = writeln!(out, "### d. Catalog search at 1k, 10k and 100k products\n");
            self.command(&mut out, "search");
            let svg = self.search_section(&mut out)?;
            plot_ref(
                &mut out,
                "search-p99.svg",
                "search p99 against catalog size",
                svg,
            );
        }
        if !self.resources.is_empty() {
            sections += 1;
            let _ = writeln!(
                out,
                "### e. CPU and memory per process, idle and under load\n"
            );
            self.command(&mut out, "resources");
            let bars = self.resources_section(&mut out);
            let svg = plot::bars(
                "CPU-seconds per 1,000 units of work, per process",
                "CPU-s per 1,000",
                &bars,
            )?;
            plot_ref(&mut out, "resources-cpu.svg", "CPU per 1,000 requests", svg);
        }
        if !self.layers.is_empty() {
            sections += 1;
            let _ = writeln!(
                out,
                "### f. The cost of the platform's layers (on against off)\n"
            );
            self.command(&mut out, "layers");
            let bars = self.layers_section(&mut out);
            let svg = plot::bars("Each layer off and on: req/s (median)", "req/s", &bars)?;
            plot_ref(
                &mut out,
                "layers-rps.svg",
                "req/s with each layer off and on",
                svg,
            );
        }
        if let Some(recovery) = &self.recovery {
            sections += 1;
            let _ = writeln!(out, "### g. Recovery after a crash\n");
            self.command(&mut out, "recovery");
            let svg = recovery_section(&mut out, recovery)?;
            plot_ref(
                &mut out,
                "recovery.svg",
                "p99 per second around the kill",
                svg,
            );
        }
        Ok(Rendered {
            markdown: out,
            plots,
            sections,
        })
    }

    fn load_section(&self, out: &mut String, runs: &[Run]) {
        let _ = writeln!(
            out,
            "| run | offered /s | achieved /s | p50 ms | p90 ms | p99 ms | p99.9 ms | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for run in runs {
            for step in &run.report.steps {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} ({:.1} %) |",
                    run.label,
                    thousands(step.offered()),
                    thousands(step.achieved_rate),
                    thousands(step.latency.p50_ms),
                    thousands(step.latency.p90_ms),
                    thousands(step.latency.p99_ms),
                    thousands(step.latency.p999_ms),
                    step.errors.total(),
                    step.error_share() * 100.0
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| run | saturation throughput (p99 ≤ {} ms) | orders acknowledged / terminal | invariant violations |",
            self.p99_target_ms
        );
        let _ = writeln!(out, "|---|---|---|---|");
        for run in runs {
            let inv = run.report.invariants;
            let last_within = run
                .report
                .steps
                .last()
                .is_some_and(|s| s.within(self.p99_target_ms));
            let saturation = match run.report.saturation(self.p99_target_ms) {
                None => "no step within the target".to_owned(),
                // Not reached: the highest load offered was still within the target.
                Some(r) if last_within => {
                    format!(
                        "≥ {} journeys/s (every step within the target)",
                        thousands(r)
                    )
                }
                Some(r) => format!("{} journeys/s", thousands(r)),
            };
            let _ = writeln!(
                out,
                "| {} | {saturation} | {} / {} | {} |",
                run.label, inv.orders_acknowledged, inv.orders_terminal, inv.violation_count
            );
        }
        out.push('\n');
    }

    fn load_plot(&self, title: &str, runs: &[Run]) -> anyhow::Result<String> {
        let series: Vec<Series> = runs
            .iter()
            .map(|run| Series {
                name: run.label.clone(),
                points: run
                    .report
                    .steps
                    .iter()
                    .map(|s| (s.offered(), s.latency.p99_ms))
                    .collect(),
            })
            .collect();
        let target = format!("p99 target {} ms", self.p99_target_ms);
        plot::lines(&plot::Lines {
            title,
            x_label: "offered load (journeys a second)",
            y_label: "p99 (ms)",
            series: &series,
            target: Some((self.p99_target_ms, &target)),
            log_x: false,
        })
    }

    fn checkout_section(&self, out: &mut String) -> Vec<(String, f64)> {
        let users = self.checkout.first().map_or(0, |r| r.users);
        let _ = writeln!(
            out,
            "{users} customers in a closed loop, each putting a product in its cart and checking \
             out with an idempotency key; a checkout is timed from `POST /api/orders` to its \
             CONFIRMED order (the saga across inventory, payments and shipping). The fleet's \
             bottleneck is the service whose instances used the most CPU in the fleet's run.\n"
        );
        let _ = writeln!(
            out,
            "| deployment | checkouts/s | p50 ms | p99 ms | confirmed / errors | ready after start |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        let mut bars = Vec::new();
        for row in &self.checkout {
            let _ = writeln!(
                out,
                "| {} | {} | {:.1} | {:.1} | {} / {} | {} ms |",
                row.label,
                thousands(row.checkouts_per_s),
                row.p50_ms,
                row.p99_ms,
                row.confirmed,
                row.errors,
                row.ready_ms
            );
            bars.push((row.label.clone(), row.checkouts_per_s));
        }
        out.push('\n');
        bars
    }

    fn layers_section(&self, out: &mut String) -> Vec<(String, f64)> {
        let _ = writeln!(
            out,
            "| layer | against | req/s off | req/s on | on ÷ off | p99 off | p99 on | on ÷ off | target |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        let mut bars = Vec::new();
        for row in &self.layers {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.3} | {:.2} ms | {:.2} ms | {:.3} | {} |",
                row.layer,
                row.off,
                thousands(row.off_rps),
                thousands(row.on_rps),
                row.on_rps / row.off_rps,
                row.off_p99_ms,
                row.on_p99_ms,
                row.on_p99_ms / row.off_p99_ms,
                row.target
            );
            let short = row.layer.split(" (").next().unwrap_or(&row.layer);
            bars.push((format!("{short}: off"), row.off_rps));
            bars.push((format!("{short}: on"), row.on_rps));
        }
        let _ = writeln!(
            out,
            "\nWall-clock ratios on a shared 2-core machine move by several per cent between runs; \
             the instruction counts under callgrind (in the history below) are the steadier figure.\n"
        );
        bars
    }

    /// Medians per scenario, in the order first seen, with ratios to nginx.
    fn edge_section(&self, out: &mut String) -> Vec<(String, f64)> {
        let mut order: Vec<&str> = Vec::new();
        let mut by: BTreeMap<&str, (Vec<f64>, Vec<f64>, u64)> = BTreeMap::new();
        for round in &self.edge {
            if !order.contains(&round.scenario.as_str()) {
                order.push(&round.scenario);
            }
            let entry = by.entry(&round.scenario).or_default();
            entry.0.push(round.rps);
            entry.1.push(round.p99_ms);
            entry.2 += round.non_2xx;
        }
        let mut medians: BTreeMap<&str, (f64, f64, usize, u64)> = BTreeMap::new();
        for (name, (rps, p99, bad)) in &mut by {
            medians.insert(name, (median(rps), median(p99), rps.len(), *bad));
        }
        let nginx = medians.get("nginx").copied();
        let _ = writeln!(
            out,
            "| scenario | rounds | req/s (median) | p99 ms (median) | non-2xx | req/s ÷ nginx | p99 ÷ nginx |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        let mut bars = Vec::new();
        for name in order {
            let Some(&(rps, p99, rounds, bad)) = medians.get(name) else {
                continue;
            };
            let (r, p) = nginx.map_or((f64::NAN, f64::NAN), |n| (rps / n.0, p99 / n.1));
            let _ = writeln!(
                out,
                "| {name} | {rounds} | {} | {:.2} | {bad} | {r:.2} | {p:.2} |",
                thousands(rps),
                p99
            );
            bars.push((name.to_owned(), rps));
        }
        out.push('\n');
        bars
    }

    fn search_section(&self, out: &mut String) -> anyhow::Result<String> {
        let _ = writeln!(
            out,
            "| backend | products | search req/s | p50 ms | p99 ms | non-2xx | product GET req/s | search ÷ GET |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        let mut series: Vec<Series> = Vec::new();
        for row in &self.search {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.2} | {} | {} | {:.0} % |",
                row.backend,
                thousands(row.products as f64),
                thousands(row.rps),
                row.p50_ms,
                row.p99_ms,
                row.non_2xx,
                thousands(row.get_rps),
                if row.get_rps > 0.0 {
                    100.0 * row.rps / row.get_rps
                } else {
                    f64::NAN
                }
            );
            match series.iter_mut().find(|s| s.name == row.backend) {
                Some(s) => s.points.push((row.products as f64, row.p99_ms)),
                None => series.push(Series {
                    name: row.backend.clone(),
                    points: vec![(row.products as f64, row.p99_ms)],
                }),
            }
        }
        out.push('\n');
        plot::lines(&plot::Lines {
            title: "Search p99 against catalog size",
            x_label: "products in the catalog (log scale)",
            y_label: "p99 (ms)",
            series: &series,
            target: Some((20.0, "target 20 ms (issue 10)")),
            log_x: true,
        })
    }

    /// Per mode and process: idle CPU and RSS, CPU-seconds per 1,000 requests under load.
    fn resources_section(&self, out: &mut String) -> Vec<(String, f64)> {
        let unit = self
            .resources
            .iter()
            .find(|r| r.phase == "load")
            .map_or("requests", |r| r.work_unit.as_str());
        let _ = writeln!(
            out,
            "| mode | process | idle CPU (ms a second) | idle RSS MiB | CPU-s per 1,000 {unit} under load | RSS under load MiB (max) |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|");
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for row in &self.resources {
            let key = (row.mode.as_str(), row.process.as_str());
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut bars = Vec::new();
        for (mode, process) in keys {
            let of = |phase: &str| {
                self.resources
                    .iter()
                    .find(|r| r.mode == mode && r.process == process && r.phase == phase)
            };
            let mib = |r: &ResourceRow| r.rss_kib as f64 / 1024.0;
            let idle = of("idle");
            let load = of("load");
            let per_1k = load
                .filter(|r| r.work > 0)
                .map(|r| r.cpu_s * 1000.0 / r.work as f64);
            let _ = writeln!(
                out,
                "| {mode} | {process} | {} | {} | {} | {} |",
                idle.map_or("–".into(), |r| format!(
                    "{:.1}",
                    r.cpu_s * 1000.0 / r.seconds.max(1e-9)
                )),
                idle.map_or("–".into(), |r| format!("{:.1}", mib(r))),
                per_1k.map_or("–".into(), |v| format!("{v:.3}")),
                load.map_or("–".into(), |r| format!("{:.1}", mib(r))),
            );
            if let Some(v) = per_1k {
                bars.push((format!("{mode} {process}"), v));
            }
        }
        out.push('\n');
        bars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(offered: f64, achieved: f64, p99: f64, journeys: u64, errors: u64) -> LoadStep {
        LoadStep {
            offered_rate: Some(offered),
            users: None,
            journeys,
            achieved_rate: achieved,
            errors: Errors {
                status_5xx: errors,
                ..Errors::default()
            },
            latency: Latency {
                p50_ms: p99 / 3.0,
                p90_ms: p99 / 2.0,
                p99_ms: p99,
                p999_ms: p99 * 2.0,
            },
            by_journey: Vec::new(),
        }
    }

    fn report(steps: Vec<LoadStep>) -> LoadReport {
        LoadReport {
            format: "flotilla-load/1".into(),
            steps,
            invariants: Invariants::default(),
        }
    }

    #[test]
    fn saturation_is_the_best_step_within_the_target_and_the_error_bound() {
        let r = report(vec![
            step(100.0, 99.0, 20.0, 1000, 0),
            step(200.0, 197.0, 60.0, 2000, 10),
            // Within the p99 target but 2 % errors: does not count.
            step(300.0, 290.0, 90.0, 3000, 60),
            // Over the target.
            step(400.0, 310.0, 900.0, 4000, 0),
        ]);
        assert_eq!(r.saturation(100.0), Some(197.0));
        assert_eq!(r.saturation(10.0), None);
        assert_eq!(r.saturation(1000.0), Some(310.0));
    }

    #[test]
    fn recovery_is_three_slices_in_a_row_within_the_bound() {
        // Steady 10 ms, the kill at 3 s, a spike, a lucky slice, then back from 7 s.
        let p99s = [
            10.0, 11.0, 9.0, 80.0, 40.0, 11.0, 30.0, 11.5, 10.0, 12.0, 10.0,
        ];
        let steps = p99s
            .iter()
            .map(|&p| step(20.0, 20.0, p, 20, u64::from(p > 50.0)))
            .collect();
        let recovery = Recovery {
            meta: RecoveryMeta {
                killed_at_s: 3.0,
                slice_s: 1.0,
                what: "kill -9".into(),
                journey: None,
            },
            report: report(steps),
        };
        let f = recovery.figures();
        assert_eq!(f.steady_p99_ms, 10.0);
        assert_eq!(f.recovered_after_s, Some(4.0));
        assert_eq!(f.worst_p99_ms, 80.0);
        assert_eq!(f.errors_after, 1);
        // Never back: none.
        let never = Recovery {
            report: report(vec![
                step(20.0, 20.0, 10.0, 20, 0),
                step(20.0, 20.0, 10.0, 20, 0),
                step(20.0, 20.0, 90.0, 20, 0),
                step(20.0, 20.0, 10.0, 20, 0),
            ]),
            meta: RecoveryMeta {
                killed_at_s: 2.0,
                ..recovery.meta.clone()
            },
        };
        assert_eq!(never.figures().recovered_after_s, None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn labels_come_from_file_names() {
        assert_eq!(label_of(Path::new("mix/1-one-process.json")), "one process");
        assert_eq!(label_of(Path::new("mix/fleet.json")), "fleet");
        assert_eq!(
            label_of(Path::new("checkout/3-fleet-orders-x2.json")),
            "fleet orders x2"
        );
    }

    #[test]
    fn a_results_folder_becomes_a_report_with_a_plot_per_series() {
        let dir = tempfile::tempdir().expect("temp dir");
        let results = dir.path();
        std::fs::create_dir_all(results.join("mix")).expect("mkdir");
        let load = serde_json::json!({
            "format": "flotilla-load/1",
            "target": "http://127.0.0.1:1",
            "steps": [
                {"index": 0, "offered_rate": 50.0, "users": null, "journeys": 500,
                 "achieved_rate": 49.8, "errors": {"status_4xx": 0, "status_5xx": 0,
                 "timeout": 0, "connect": 0, "other": 0, "not_started": 0},
                 "latency": {"p50_ms": 4.0, "p90_ms": 7.0, "p99_ms": 12.5, "p999_ms": 30.0,
                 "max_ms": 41.0, "mean_ms": 5.0}, "routes": []}
            ],
            "invariants": {"violation_count": 0, "orders_acknowledged": 25,
                           "orders_terminal": 25}
        });
        std::fs::write(results.join("mix/1-one-process.json"), load.to_string()).expect("write");
        std::fs::write(
            results.join("mix.cmd"),
            "flotilla load --rate 50..50/step 50",
        )
        .expect("cmd");
        std::fs::write(
            results.join("edge.jsonl"),
            "{\"scenario\":\"nginx\",\"rps\":80000,\"p99_ms\":1.5}\n\
             {\"scenario\":\"flotilla\",\"rps\":20000,\"p99_ms\":4.5}\n\
             {\"scenario\":\"nginx\",\"rps\":90000,\"p99_ms\":1.7}\n\
             {\"scenario\":\"flotilla\",\"rps\":22000,\"p99_ms\":4.1}\n",
        )
        .expect("edge");
        let report = Report::read(results, 100.0).expect("read");
        let rendered = report.render("bench").expect("render");
        assert_eq!(rendered.sections, 2);
        let md = &rendered.markdown;
        assert!(md.contains("flotilla load --rate 50..50/step 50"), "{md}");
        assert!(md.contains("| one process | 50.0 | 49.8 |"), "{md}");
        assert!(
            md.contains(
                "| one process | ≥ 49.8 journeys/s (every step within the target) | 25 / 25 | 0 |"
            ),
            "{md}"
        );
        // Medians 85,000 and 21,000: 0.25 × nginx.
        assert!(
            md.contains("| flotilla | 2 | 21,000 | 4.30 | 0 | 0.25 | 2.69 |"),
            "{md}"
        );
        assert!(md.contains("![p99 against offered load](bench/mix-p99.svg)"));
        let names: Vec<&str> = rendered.plots.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["mix-p99.svg", "edge-rps.svg"]);
    }

    #[test]
    fn a_broken_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("search.jsonl"), "{\"backend\": 1}\n").expect("write");
        let error = Report::read(dir.path(), 100.0).expect_err("refused");
        assert!(
            format!("{error:#}").contains("search.jsonl line 1"),
            "{error:#}"
        );
    }
}
