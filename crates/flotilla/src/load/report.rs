//! The final report: per measured step, the journeys and each journey's routes with their
//! counts, errors by kind, latency percentiles and achieved throughput; then what the
//! invariant checks saw. Printed as a table, or as JSON with `--json` (the field names are a
//! published format, `flotilla-load/1`: add fields, never rename them; README, "flotilla load").

use serde::Serialize;
use std::fmt::Write as _;

use super::args::{ArrivalKind, Mix};
use super::invariants::InvariantReport;
use super::plan::Journey;
use super::plan::StepSpan;
use super::stats::{ErrorCounts, Percentiles, Series, StepStats};

/// The format name and version in every JSON report.
pub const FORMAT: &str = "flotilla-load/1";

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: &'static str,
    pub target: String,
    /// `open` (arrivals at a rate) or `closed` (virtual users).
    pub mode: &'static str,
    /// Inter-arrival distribution (open loop only).
    pub arrivals: Option<ArrivalKind>,
    pub seed: u64,
    pub mix: Mix,
    pub max_in_flight: u32,
    pub steps: Vec<StepReport>,
    pub invariants: InvariantReport,
}

/// One measured step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// From 0.
    pub index: usize,
    /// Journeys a second offered (open loop).
    pub offered_rate: Option<f64>,
    /// Virtual users (closed loop).
    pub users: Option<u32>,
    /// How long the step offered load, seconds.
    pub duration_s: f64,
    /// Journeys due in the step (started or not).
    pub journeys: u64,
    /// Journeys ended (with or without error) a second: the achieved throughput.
    pub achieved_rate: f64,
    /// Journeys that ended without an error, a second.
    pub ok_rate: f64,
    /// HTTP requests sent, and a second.
    pub requests: u64,
    pub request_rate: f64,
    /// Journeys that failed, by the kind of their failing request.
    pub errors: ErrorCounts,
    /// Whole journeys, from intended start to last answer.
    pub latency: Percentiles,
    /// Per journey.
    pub by_journey: Vec<SeriesReport>,
    /// Per journey and route.
    pub routes: Vec<SeriesReport>,
}

/// One journey, or one route of a journey.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesReport {
    pub journey: Journey,
    /// `METHOD /path/{param}`; absent for a whole journey.
    pub route: Option<&'static str>,
    pub count: u64,
    pub errors: ErrorCounts,
    pub latency: Percentiles,
}

fn series(journey: Journey, route: Option<&'static str>, s: &Series) -> SeriesReport {
    SeriesReport {
        journey,
        route,
        count: s.count,
        errors: s.errors,
        latency: Percentiles::of(&s.latency),
    }
}

/// The report of one step from its series and span.
pub fn step_report(
    index: usize,
    offered_rate: Option<f64>,
    users: Option<u32>,
    span: StepSpan,
    stats: &StepStats,
) -> StepReport {
    let mut all = Series::default();
    for s in stats.journeys.values() {
        all.merge(s);
    }
    let requests: u64 = stats.routes.values().map(|s| s.count).sum();
    let seconds = span.end.saturating_sub(span.start).as_secs_f64().max(1e-9);
    let ended = all.count - all.errors.not_started;
    StepReport {
        index,
        offered_rate,
        users,
        duration_s: seconds,
        journeys: all.count,
        achieved_rate: ended as f64 / seconds,
        ok_rate: (all.count - all.errors.total()) as f64 / seconds,
        requests,
        request_rate: requests as f64 / seconds,
        errors: all.errors,
        latency: Percentiles::of(&all.latency),
        by_journey: stats
            .journeys
            .iter()
            .map(|(j, s)| series(*j, None, s))
            .collect(),
        routes: stats
            .routes
            .iter()
            .map(|((j, r), s)| series(*j, Some(r), s))
            .collect(),
    }
}

fn error_cell(e: &ErrorCounts) -> String {
    if e.total() == 0 {
        return "0".to_owned();
    }
    let mut parts = Vec::new();
    for (name, n) in [
        ("4xx", e.status_4xx),
        ("5xx", e.status_5xx),
        ("timeout", e.timeout),
        ("connect", e.connect),
        ("other", e.other),
        ("not started", e.not_started),
    ] {
        if n > 0 {
            parts.push(format!("{n} {name}"));
        }
    }
    parts.join(", ")
}

fn row(out: &mut String, name: &str, count: u64, errors: &ErrorCounts, p: &Percentiles) {
    let _ = writeln!(
        out,
        "  {name:<42} {count:>8} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {}",
        p.p50_ms,
        p.p90_ms,
        p.p99_ms,
        p.p999_ms,
        p.max_ms,
        error_cell(errors)
    );
}

/// The report as the table printed on standard output.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let load = match report.mode {
        "closed" => "closed loop".to_owned(),
        _ => format!(
            "open loop, {} arrivals",
            report.arrivals.map_or("exp", |a| match a {
                ArrivalKind::Exp => "exponential",
                ArrivalKind::Uniform => "uniform",
            })
        ),
    };
    let _ = writeln!(
        out,
        "flotilla load against {}: {load}, seed {}, mix browse={} cart={} checkout={}",
        report.target, report.seed, report.mix.browse, report.mix.cart, report.mix.checkout
    );
    for step in &report.steps {
        let offered = match (step.offered_rate, step.users) {
            (Some(rate), _) => format!("offered {rate:.0} journeys/s"),
            (None, Some(users)) => format!("{users} users"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "\nstep {}: {offered} for {:.1}s; achieved {:.1} journeys/s ({:.1} without error), {:.1} requests/s",
            step.index + 1,
            step.duration_s,
            step.achieved_rate,
            step.ok_rate,
            step.request_rate
        );
        let _ = writeln!(
            out,
            "  {:<42} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}  ERRORS",
            "JOURNEY / ROUTE (latency ms)", "COUNT", "p50", "p90", "p99", "p99.9", "max"
        );
        row(
            &mut out,
            "all journeys",
            step.journeys,
            &step.errors,
            &step.latency,
        );
        for journey in &step.by_journey {
            row(
                &mut out,
                journey.journey.as_str(),
                journey.count,
                &journey.errors,
                &journey.latency,
            );
            for route in step.routes.iter().filter(|r| r.journey == journey.journey) {
                let name = format!("  {}", route.route.unwrap_or(""));
                row(&mut out, &name, route.count, &route.errors, &route.latency);
            }
        }
    }
    let inv = &report.invariants;
    let _ = writeln!(
        out,
        "\ninvariants: {} — {} orders acknowledged, {} terminal ({} confirmed, {} cancelled), {} totals checked, {} stock reads, {} failed reads",
        if inv.passed { "passed" } else { "VIOLATED" },
        inv.orders_acknowledged,
        inv.orders_terminal,
        inv.orders_confirmed,
        inv.orders_cancelled,
        inv.order_totals_checked,
        inv.stock_reads,
        inv.failed_reads
    );
    for violation in &inv.violations {
        let _ = writeln!(out, "  violation: {violation}");
    }
    if inv.violation_count > inv.violations.len() as u64 {
        let _ = writeln!(
            out,
            "  ... and {} more",
            inv.violation_count - inv.violations.len() as u64
        );
    }
    out
}
