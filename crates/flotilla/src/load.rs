//! `flotilla load`: drives a running Flotilla through its gateway with user journeys (browse,
//! cart, checkout), open loop at a constant or stepped rate or closed loop with N users,
//! measures latency from intended start times into HDR histograms, checks the shop's invariants
//! as it goes, and reports per step as a table or JSON. Exit status: 0 when every invariant
//! held, 3 when one was violated, 1 when the run could not be made (e.g. no shop at --target),
//! 2 for bad flags.
//!
//! The module tree follows one run: `args` (flags) → `plan` (when each journey arrives) →
//! `driver` (open or closed loop) → `journeys` (requests, over `shop`, as `users`) → `stats`
//! (histograms), with `invariants` beside the run, `progress` on the terminal and `report` at
//! the end.

pub mod args;
pub mod driver;
pub mod invariants;
pub mod journeys;
pub mod plan;
pub mod progress;
pub mod report;
pub mod shop;
pub mod stats;
pub mod users;

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use args::{LoadArgs, RateSpec};
use journeys::{CatalogView, World};
use plan::{Plan, Schedule, Step, StepSpan};
use progress::Live;
use report::{FORMAT, Report, step_report};
use shop::Shop;
use stats::Recorder;
use users::UserPool;

/// The exit status of a run that found a violated invariant.
pub const EXIT_VIOLATION: i32 = 3;

/// The measured steps of the flags: one per rate level, or for a constant rate with
/// `--report-every`, one per slice of its duration (the last one shorter when it does not
/// divide it).
pub fn plan(args: &LoadArgs, rate: &RateSpec) -> Plan {
    let step = |rate, duration| Step {
        rate,
        duration,
        requests: args.requests,
    };
    let steps = match (rate, args.report_every) {
        (RateSpec::Constant(rate), Some(every)) if !every.is_zero() => {
            let mut steps = Vec::new();
            let mut left = args.duration;
            while !left.is_zero() {
                let slice = every.min(left);
                steps.push(step(*rate, slice));
                left -= slice;
            }
            steps
        }
        (RateSpec::Constant(rate), _) => vec![step(*rate, args.duration)],
        (RateSpec::Stepped { .. }, _) => rate
            .levels()
            .into_iter()
            .map(|rate| step(rate, args.step_duration))
            .collect(),
    };
    Plan {
        warmup: args.warmup,
        steps,
    }
}

/// Runs the load and prints the report; `Ok(false)` when an invariant was violated.
pub async fn run(args: LoadArgs) -> anyhow::Result<bool> {
    let rate = args.rate_spec().unwrap_or_else(|usage| usage.exit());
    if args.duration.is_zero() || args.step_duration.is_zero() {
        anyhow::bail!("--duration and --step-duration must be longer than 0s");
    }
    if args.timeout.is_zero() || args.order_deadline.is_zero() {
        anyhow::bail!("--timeout and --order-deadline must be longer than 0s");
    }
    if let Some(every) = args.report_every {
        if !matches!(rate, RateSpec::Constant(_)) {
            anyhow::bail!("--report-every slices a constant --rate; a stepped rate has its steps");
        }
        if every.is_zero() {
            anyhow::bail!("--report-every must be longer than 0s");
        }
        if args.duration.as_secs_f64() / every.as_secs_f64() > args::MAX_STEPS {
            anyhow::bail!(
                "--duration / --report-every makes more than {} slices: report less often",
                args::MAX_STEPS
            );
        }
    }
    let shop = Shop::new(&args.target, args.timeout)?;
    let catalog = CatalogView::discover(&shop).await?;
    let invariants = Arc::new(invariants::Invariants::new(
        shop.clone(),
        args.order_deadline,
        catalog.cart_products.clone(),
    ));
    let plan = plan(&args, &rate);
    let steps = if args.users.is_some() {
        1
    } else {
        plan.steps.len()
    };
    let recorder = Arc::new(Recorder::new(steps));
    let world = Arc::new(World {
        shop,
        recorder: recorder.clone(),
        catalog,
        users: UserPool::new(),
        invariants: invariants.clone(),
    });
    let stop = CancellationToken::new();
    let watcher = {
        let (invariants, stop) = (invariants.clone(), stop.clone());
        tokio::spawn(async move { invariants.watch(stop).await })
    };
    let live = Arc::new(Live::default());
    let progress = tokio::spawn(progress::show(
        recorder.clone(),
        invariants.clone(),
        live.clone(),
        steps,
        stop.clone(),
    ));

    let rates: Vec<f64> = plan.steps.iter().map(|s| s.rate).collect();
    let spans: Vec<StepSpan> = match args.users {
        Some(users) => {
            let closed = driver::Closed {
                users,
                warmup: args.warmup,
                duration: args.duration,
                requests: args.requests,
                mix: args.mix,
                seed: args.seed,
            };
            let measured = driver::closed(world.clone(), closed, live).await;
            vec![StepSpan {
                start: Duration::ZERO,
                end: measured,
            }]
        }
        None => {
            let mut schedule = Schedule::new(plan, args.arrivals, args.mix, args.seed);
            driver::open(
                world.clone(),
                &mut schedule,
                &rates,
                args.max_in_flight,
                args.timeout,
                &live,
            )
            .await;
            schedule.spans().to_vec()
        }
    };
    stop.cancel();
    let _ = progress.await;
    let _ = watcher.await;
    let invariants = invariants.finish().await;

    let stats = recorder.steps();
    let report = Report {
        format: FORMAT,
        target: world.shop.base().to_owned(),
        mode: if args.users.is_some() {
            "closed"
        } else {
            "open"
        },
        arrivals: args.users.is_none().then_some(args.arrivals),
        seed: args.seed,
        mix: args.mix,
        max_in_flight: args.max_in_flight,
        steps: stats
            .iter()
            .zip(spans)
            .enumerate()
            .map(|(i, (stats, span))| {
                let offered = args
                    .users
                    .is_none()
                    .then(|| rates.get(i).copied())
                    .flatten();
                step_report(i, offered, args.users, span, stats)
            })
            .collect(),
        invariants,
    };
    if args.json {
        crate::report!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let table = report::table(&report);
        crate::report!("{}", table.trim_end_matches('\n'));
    }
    let passed = report.invariants.passed;
    if !passed {
        eprintln!(
            "flotilla load: {} invariant violation(s); the first: {}",
            report.invariants.violation_count,
            report
                .invariants
                .violations
                .first()
                .map_or("(not kept)", String::as_str)
        );
    }
    Ok(passed)
}
