//! What the run measured: per measured step, an HDR histogram of latency and a count of errors
//! by kind for each journey and for each of its routes, plus a rolling series for the progress
//! line. Latency is recorded in microseconds from when a request was *meant* to start (see
//! `journeys.rs`), so a stalled target shows up as latency, not as fewer samples.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use super::plan::Journey;

/// Highest latency a histogram holds exactly: one hour, in microseconds (longer ones are
/// recorded as one hour).
const MAX_MICROS: u64 = 3_600_000_000;

/// Why a request or a journey failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A 4xx answer.
    Status4xx,
    /// A 5xx answer.
    Status5xx,
    /// No whole answer within `--timeout`.
    Timeout,
    /// No connection to the target.
    Connect,
    /// Any other transport failure (reset, malformed answer).
    Other,
    /// Due before the run ended but never started: the generator was at `--max-in-flight`.
    NotStarted,
}

impl ErrorKind {
    /// The kind of an answer's status; `None` for a success (1xx–3xx).
    pub fn of_status(status: u16) -> Option<Self> {
        match status {
            400..=499 => Some(ErrorKind::Status4xx),
            500..=599 => Some(ErrorKind::Status5xx),
            _ => None,
        }
    }
}

/// Errors by kind (report field names are stable: README, "flotilla load").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub status_4xx: u64,
    pub status_5xx: u64,
    pub timeout: u64,
    pub connect: u64,
    pub other: u64,
    pub not_started: u64,
}

impl ErrorCounts {
    pub fn add(&mut self, kind: ErrorKind) {
        *match kind {
            ErrorKind::Status4xx => &mut self.status_4xx,
            ErrorKind::Status5xx => &mut self.status_5xx,
            ErrorKind::Timeout => &mut self.timeout,
            ErrorKind::Connect => &mut self.connect,
            ErrorKind::Other => &mut self.other,
            ErrorKind::NotStarted => &mut self.not_started,
        } += 1;
    }

    pub fn total(&self) -> u64 {
        self.status_4xx
            + self.status_5xx
            + self.timeout
            + self.connect
            + self.other
            + self.not_started
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        self.status_4xx += other.status_4xx;
        self.status_5xx += other.status_5xx;
        self.timeout += other.timeout;
        self.connect += other.connect;
        self.other += other.other;
        self.not_started += other.not_started;
    }
}

/// A latency histogram in microseconds, 3 significant digits, 1 µs to 1 h.
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1, high ≥ 2 × low, 3 digits).
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant histogram bounds are valid")
}

/// Counts, errors and latencies of one thing measured (a route, a journey, a step).
#[derive(Debug, Clone)]
pub struct Series {
    pub count: u64,
    pub errors: ErrorCounts,
    pub latency: Histogram<u64>,
}

impl Default for Series {
    fn default() -> Self {
        Self {
            count: 0,
            errors: ErrorCounts::default(),
            latency: histogram(),
        }
    }
}

impl Series {
    pub fn record(&mut self, latency: Duration, error: Option<ErrorKind>) {
        self.count += 1;
        if let Some(kind) = error {
            self.errors.add(kind);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(MAX_MICROS);
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn merge(&mut self, other: &Series) {
        self.count += other.count;
        self.errors.merge(&other.errors);
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }
}

/// The latency summary the report shows, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// One measured step's series.
#[derive(Debug, Clone, Default)]
pub struct StepStats {
    /// Whole journeys, from intended start to last answer.
    pub journeys: BTreeMap<Journey, Series>,
    /// Each route of each journey.
    pub routes: BTreeMap<(Journey, &'static str), Series>,
}

/// Shared by every journey task. A std mutex: held for a few hundred nanoseconds, never across
/// an await.
#[derive(Debug)]
pub struct Recorder {
    inner: Mutex<Tables>,
}

#[derive(Debug)]
struct Tables {
    steps: Vec<StepStats>,
    /// Everything (warm-up included) since the progress line last read it.
    live: Series,
}

impl Recorder {
    pub fn new(steps: usize) -> Self {
        Self {
            inner: Mutex::new(Tables {
                steps: vec![StepStats::default(); steps],
                live: Series::default(),
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Tables) -> T) -> T {
        // A panic while holding the lock leaves counters that are still counters.
        let mut tables = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut tables)
    }

    /// One request of a journey.
    pub fn route(
        &self,
        step: Option<usize>,
        journey: Journey,
        route: &'static str,
        latency: Duration,
        error: Option<ErrorKind>,
    ) {
        self.with(|t| {
            if let Some(stats) = step.and_then(|i| t.steps.get_mut(i)) {
                stats
                    .routes
                    .entry((journey, route))
                    .or_default()
                    .record(latency, error);
            }
        });
    }

    /// One whole journey (or one that never started: `NotStarted`).
    pub fn journey(
        &self,
        step: Option<usize>,
        journey: Journey,
        latency: Duration,
        error: Option<ErrorKind>,
    ) {
        self.with(|t| {
            t.live.record(latency, error);
            if let Some(stats) = step.and_then(|i| t.steps.get_mut(i)) {
                stats
                    .journeys
                    .entry(journey)
                    .or_default()
                    .record(latency, error);
            }
        });
    }

    /// The journeys ended since the last call, and the series restarted.
    pub fn take_live(&self) -> Series {
        self.with(|t| std::mem::take(&mut t.live))
    }

    /// Every step's series, at the end.
    pub fn steps(&self) -> Vec<StepStats> {
        self.with(|t| t.steps.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_chacha::rand_core::{Rng, SeedableRng};

    fn close(got: f64, want: f64, tolerance: f64) -> bool {
        (got / want - 1.0).abs() <= tolerance
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut series = Series::default();
        for micros in 1..=100_000u64 {
            series.record(Duration::from_micros(micros), None);
        }
        let p = Percentiles::of(&series.latency);
        // 3 significant digits: each value within 0.1 % of the exact quantile.
        assert!(close(p.p50_ms, 50.0, 0.001), "{p:?}");
        assert!(close(p.p90_ms, 90.0, 0.001), "{p:?}");
        assert!(close(p.p99_ms, 99.0, 0.001), "{p:?}");
        assert!(close(p.p999_ms, 99.9, 0.001), "{p:?}");
        assert!(close(p.max_ms, 100.0, 0.001), "{p:?}");
        assert!(close(p.mean_ms, 50.0, 0.001), "{p:?}");
    }

    #[test]
    fn percentiles_of_an_exponential_distribution() {
        // Exponential with mean 10 ms: the q-quantile is -10 ln(1 - q) ms.
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut series = Series::default();
        for _ in 0..1_000_000 {
            let u = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
            series.record(Duration::from_secs_f64(-0.010 * u.ln()), None);
        }
        let p = Percentiles::of(&series.latency);
        for (got, q) in [
            (p.p50_ms, 0.5),
            (p.p90_ms, 0.9),
            (p.p99_ms, 0.99),
            (p.p999_ms, 0.999),
        ] {
            let want = -10.0 * (1.0f64 - q).ln();
            assert!(close(got, want, 0.02), "p{q}: {got} ms, want {want} ms");
        }
    }

    #[test]
    fn a_rare_slow_answer_sets_the_tail_only() {
        let mut series = Series::default();
        for i in 0..10_000 {
            let latency = if i % 100 == 0 { 1000 } else { 1 };
            series.record(Duration::from_millis(latency), None);
        }
        let p = Percentiles::of(&series.latency);
        assert!(
            close(p.p50_ms, 1.0, 0.001) && close(p.p99_ms, 1.0, 0.001),
            "{p:?}"
        );
        assert!(close(p.p999_ms, 1000.0, 0.001), "{p:?}");
    }

    #[test]
    fn errors_are_counted_by_kind() {
        let recorder = Recorder::new(1);
        let ms = Duration::from_millis(1);
        recorder.route(Some(0), Journey::Browse, "GET /x", ms, None);
        recorder.route(
            Some(0),
            Journey::Browse,
            "GET /x",
            ms,
            ErrorKind::of_status(503),
        );
        recorder.route(
            Some(0),
            Journey::Browse,
            "GET /x",
            ms,
            ErrorKind::of_status(404),
        );
        recorder.route(
            Some(0),
            Journey::Browse,
            "GET /x",
            ms,
            Some(ErrorKind::Timeout),
        );
        recorder.route(
            None,
            Journey::Browse,
            "GET /x",
            ms,
            Some(ErrorKind::Connect),
        );
        let steps = recorder.steps();
        let series = &steps[0].routes[&(Journey::Browse, "GET /x")];
        assert_eq!(series.count, 4);
        assert_eq!(
            (
                series.errors.status_5xx,
                series.errors.status_4xx,
                series.errors.timeout
            ),
            (1, 1, 1)
        );
        assert_eq!(series.errors.total(), 3);
        assert_eq!(ErrorKind::of_status(302), None);
    }
}
