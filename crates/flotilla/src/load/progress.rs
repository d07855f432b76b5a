//! The live progress line on standard error (indicatif), drawn only when standard error is a
//! terminal: the step, the rate offered against the rate achieved, errors and the p99 of the
//! journeys that ended in the last half second.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use super::invariants::Invariants;
use super::stats::{Percentiles, Recorder};

/// How often the line is redrawn.
const TICK: Duration = Duration::from_millis(500);

/// What the driver is doing now, for the line.
#[derive(Debug, Default)]
pub struct Live {
    /// 0 during the warm-up, step + 1 after.
    phase: AtomicU64,
    /// The offered rate in thousandths of a journey a second (0 in a closed loop).
    offered_milli: AtomicU64,
}

impl Live {
    pub fn set(&self, step: Option<usize>, offered: Option<f64>) {
        self.phase
            .store(step.map_or(0, |s| s as u64 + 1), Ordering::Relaxed);
        self.offered_milli.store(
            offered.map_or(0, |r| (r * 1000.0) as u64),
            Ordering::Relaxed,
        );
    }
}

/// Draws the line until `stop`.
pub async fn show(
    recorder: Arc<Recorder>,
    invariants: Arc<Invariants>,
    live: Arc<Live>,
    steps: usize,
    stop: CancellationToken,
) {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if bar.is_hidden() {
        // Not a terminal: no line, and nothing to sample for it.
        return;
    }
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    let mut errors = 0u64;
    let mut last = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(TICK) => {}
        }
        let window = recorder.take_live();
        let seconds = last.elapsed().as_secs_f64().max(1e-3);
        last = Instant::now();
        errors += window.errors.total();
        let phase = match live.phase.load(Ordering::Relaxed) {
            0 => "warm-up".to_owned(),
            n => format!("step {n}/{steps}"),
        };
        let offered = match live.offered_milli.load(Ordering::Relaxed) {
            0 => String::new(),
            milli => format!("offered {:.0}/s ", milli as f64 / 1000.0),
        };
        bar.set_message(format!(
            "{phase}: {offered}achieved {:.0}/s, errors {errors}, p99 {:.1} ms, violations {}",
            window.count as f64 / seconds,
            Percentiles::of(&window.latency).p99_ms,
            invariants.violation_count()
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
