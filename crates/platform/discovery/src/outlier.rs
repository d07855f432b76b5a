//! Outlier detection for the balanced transport, with Envoy's semantics: an instance that answers
//! 5xx several times in a row, or that cannot be reached at all, is *ejected* (kept in the set
//! discovery reports, but given no traffic) for a time that grows each time it is ejected again;
//! never more than a maximum share of the instances is ejected at once, and never the last one
//! in rotation. Active `/readyz` probes decide when an ejected instance comes back.
//!
//! A module of its own because the rules are pure bookkeeping over one instance's counters: the
//! balancer ([`crate::balanced`]) feeds every outcome in and asks before each pick whether an
//! instance is in rotation; the tests here drive the rules without any network.
//!
//! The counters also feed the peak-EWMA latency estimate the balancer compares (Finagle's and
//! linkerd's load metric): a failed request is recorded as if it had taken `failure_penalty_ms`,
//! so an instance that fails fast looks slow and loses the power-of-two-choices comparison even
//! while the ejection cap keeps it in rotation.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Outlier detection and active health settings of every balanced transport in a process
/// (`[outlier]` in `flotilla.toml`, `FLOTILLA_OUTLIER__*`). Defaults follow Envoy's outlier
/// detection, except that one refused connection is enough: a refused connection means nothing
/// listens there any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutlierSettings {
    /// Consecutive 5xx answers (500, 502, 503, 504) that eject an instance; 0 never ejects on
    /// answers. An attempt the caller's resilience stack cut for taking too long (its per-try
    /// timeout or its deadline) counts as a 504.
    pub consecutive_5xx: u32,
    /// Consecutive local-origin failures (connection refused or reset, no answer within the
    /// transport timeout, a failed health probe) that eject an instance; 0 never ejects on them.
    pub consecutive_local_failures: u32,
    /// First ejection time; the n-th ejection in a row lasts n times this (ms).
    pub base_ejection_ms: u64,
    /// Longest ejection time (ms).
    pub max_ejection_ms: u64,
    /// Most instances ejected at once, as a share of the set (0–100). At least one may be
    /// ejected from a set of two or more, and never the last instance in rotation.
    pub max_ejection_percent: u8,
    /// How often the health path is probed (ms): every instance when `probe_all`, otherwise
    /// only the ejected ones (once their ejection time is over).
    pub health_interval_ms: u64,
    /// Longest wait for a probe's answer (ms); a hung instance fails its probes by this.
    pub health_timeout_ms: u64,
    /// Path probed on each instance (relative to its base URL); any 2xx passes.
    pub health_path: String,
    /// Probe instances in rotation too, so that a hung instance is ejected before a request
    /// waits on it; a failed probe counts as a local-origin failure.
    pub probe_all: bool,
    /// Latency recorded for a failed request in the peak-EWMA estimate (ms); 0 compares on
    /// measured latency alone, so an instance that fails fast would win.
    pub failure_penalty_ms: u64,
    /// Decay time of the peak-EWMA latency estimate (ms).
    pub ewma_decay_ms: u64,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_local_failures: 1,
            base_ejection_ms: 30_000,
            max_ejection_ms: 300_000,
            max_ejection_percent: 50,
            health_interval_ms: 2_000,
            health_timeout_ms: 1_000,
            health_path: "/readyz".to_owned(),
            probe_all: true,
            failure_penalty_ms: 1_000,
            ewma_decay_ms: 10_000,
        }
    }
}

/// A setting out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid outlier setting {field}: {reason}")]
pub struct InvalidOutlierSettings {
    /// The key, as in `[outlier]`.
    pub field: &'static str,
    /// What is expected.
    pub reason: &'static str,
}

impl OutlierSettings {
    /// Checks the ranges the balancer relies on.
    pub fn validate(&self) -> Result<(), InvalidOutlierSettings> {
        let fail = |field, reason| Err(InvalidOutlierSettings { field, reason });
        if self.base_ejection_ms == 0 {
            return fail("base_ejection_ms", "must be at least 1");
        }
        if self.max_ejection_ms < self.base_ejection_ms {
            return fail("max_ejection_ms", "must be at least base_ejection_ms");
        }
        if self.max_ejection_percent > 100 {
            return fail("max_ejection_percent", "must be 0 to 100");
        }
        if self.health_interval_ms == 0 {
            return fail("health_interval_ms", "must be at least 1");
        }
        if self.health_timeout_ms == 0 {
            return fail("health_timeout_ms", "must be at least 1");
        }
        if !self.health_path.starts_with('/') {
            return fail("health_path", "must start with '/'");
        }
        if self.ewma_decay_ms == 0 {
            return fail("ewma_decay_ms", "must be at least 1");
        }
        Ok(())
    }

    pub(crate) fn base_ejection(&self) -> Duration {
        Duration::from_millis(self.base_ejection_ms)
    }

    pub(crate) fn health_interval(&self) -> Duration {
        Duration::from_millis(self.health_interval_ms)
    }

    pub(crate) fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms)
    }

    /// How many of `total` instances may be ejected at once.
    pub(crate) fn ejection_cap(&self, total: usize) -> usize {
        if total < 2 {
            return 0;
        }
        let share = total * usize::from(self.max_ejection_percent) / 100;
        share.max(1).min(total - 1)
    }
}

/// What one request (or probe) to an instance came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// An answer that is not a 5xx the instance is blamed for.
    Success,
    /// 500, 502, 503 or 504.
    ServerError,
    /// Refused, reset, or no answer in time: the instance could not serve at all.
    LocalFailure,
}

/// One instance's outlier and load state. The balancer keeps it under a mutex; every method
/// takes `now` so the rules can be tested without a clock.
#[derive(Debug)]
pub(crate) struct OutlierState {
    consecutive_5xx: u32,
    consecutive_local: u32,
    /// Ejection-time multiplier: ejections in a row, decaying while the instance stays healthy.
    multiplier: u32,
    /// Ejections so far.
    pub(crate) ejections: u64,
    /// Set while ejected: when the instance may return (once a probe passes).
    pub(crate) ejected_until: Option<Instant>,
    /// The same moment on the wall clock, for the snapshot.
    pub(crate) ejected_until_wall: Option<SystemTime>,
    /// When the instance last came back (or appeared), for the multiplier's decay.
    in_rotation_since: Instant,
    /// Peak-EWMA latency estimate in nanoseconds, as of `ewma_at`; 0 until the first answer
    /// (the balancer then tries the instance with one request at a time, as Finagle does).
    ewma_ns: f64,
    ewma_at: Instant,
    /// When the health task should next look at this instance.
    pub(crate) next_probe: Instant,
}

impl OutlierState {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            consecutive_5xx: 0,
            consecutive_local: 0,
            multiplier: 0,
            ejections: 0,
            ejected_until: None,
            ejected_until_wall: None,
            in_rotation_since: now,
            ewma_ns: 0.0,
            ewma_at: now,
            next_probe: now,
        }
    }

    pub(crate) fn is_ejected(&self) -> bool {
        self.ejected_until.is_some()
    }

    pub(crate) fn consecutive(&self) -> (u32, u32) {
        (self.consecutive_5xx, self.consecutive_local)
    }

    /// The latency estimate as of `now`, decayed since the last measurement; 0 when unmeasured.
    pub(crate) fn latency(&self, now: Instant, settings: &OutlierSettings) -> f64 {
        let elapsed = now.saturating_duration_since(self.ewma_at).as_secs_f64() * 1e9;
        let tau = settings.ewma_decay_ms as f64 * 1e6;
        self.ewma_ns * (-elapsed / tau).exp()
    }

    /// Records an outcome that took `rtt`; returns whether the instance has crossed an
    /// ejection threshold (the balancer then checks the cap and calls [`Self::eject`]).
    pub(crate) fn record(
        &mut self,
        outcome: Outcome,
        rtt: Duration,
        now: Instant,
        settings: &OutlierSettings,
    ) -> bool {
        let penalty = Duration::from_millis(settings.failure_penalty_ms);
        let sample = match outcome {
            Outcome::Success => {
                self.consecutive_5xx = 0;
                self.consecutive_local = 0;
                rtt
            }
            Outcome::ServerError => {
                self.consecutive_5xx = self.consecutive_5xx.saturating_add(1);
                rtt.max(penalty)
            }
            Outcome::LocalFailure => {
                self.consecutive_local = self.consecutive_local.saturating_add(1);
                rtt.max(penalty)
            }
        };
        self.observe(sample, now, settings);
        self.crossed(settings)
    }

    /// Peak-EWMA: a slower sample replaces the estimate at once, a faster one is blended in
    /// with a weight that grows with the time since the last sample.
    fn observe(&mut self, sample: Duration, now: Instant, settings: &OutlierSettings) {
        let sample = sample.as_secs_f64() * 1e9;
        let elapsed = now.saturating_duration_since(self.ewma_at).as_secs_f64() * 1e9;
        let tau = settings.ewma_decay_ms as f64 * 1e6;
        let decay = (-elapsed / tau).exp();
        // What `latency` would say now, with the one `exp` computed here.
        let current = self.ewma_ns * decay;
        self.ewma_ns = if sample > current {
            sample
        } else {
            current * decay + sample * (1.0 - decay)
        };
        self.ewma_at = now;
    }

    fn crossed(&self, settings: &OutlierSettings) -> bool {
        let over = |count: u32, limit: u32| limit > 0 && count >= limit;
        !self.is_ejected()
            && (over(self.consecutive_5xx, settings.consecutive_5xx)
                || over(self.consecutive_local, settings.consecutive_local_failures))
    }

    /// Ejects the instance: for `base × n` (at most the maximum), n counting the ejections in a
    /// row. The count decays by one for every base ejection time spent in rotation since the
    /// last return, so an instance that fails once a day is not punished as a flapping one.
    pub(crate) fn eject(&mut self, now: Instant, settings: &OutlierSettings) -> Duration {
        let base = settings.base_ejection();
        let healthy = now.saturating_duration_since(self.in_rotation_since);
        let decay = u32::try_from(healthy.as_nanos() / base.as_nanos().max(1)).unwrap_or(u32::MAX);
        self.multiplier = self.multiplier.saturating_sub(decay).saturating_add(1);
        self.ejections += 1;
        let time = base
            .saturating_mul(self.multiplier)
            .min(Duration::from_millis(settings.max_ejection_ms));
        self.ejected_until = Some(now + time);
        self.ejected_until_wall = Some(SystemTime::now() + time);
        // Probed during the ejection too: see `probed_while_ejected`.
        self.next_probe = now + settings.health_interval().min(time);
        self.consecutive_5xx = 0;
        self.consecutive_local = 0;
        time
    }

    /// A probe's verdict on an ejected instance whose time is over: back into rotation (with a
    /// fresh latency estimate, so it is tried at once) or ejected until the next probe.
    ///
    /// A passing probe brings the instance back once its ejection time is over, or at once
    /// when `rotation_failing` (an instance kept in rotation is failing too): an instance that
    /// was ejected for a short fault and is healthy again is then a better bet than sitting
    /// out its ejection while the cap keeps a failing one in rotation (the outage an outside
    /// tester measured: one replica answering 500, the other frozen for 3 s, and 30 s of
    /// failures until the ejection ran out). A failing probe keeps it out for at least another
    /// health interval.
    pub(crate) fn probed_while_ejected(
        &mut self,
        passed: bool,
        rotation_failing: bool,
        now: Instant,
        settings: &OutlierSettings,
    ) {
        let over = self.ejected_until.is_none_or(|until| until <= now);
        let next = now + settings.health_interval();
        if passed && (over || rotation_failing) {
            self.ejected_until = None;
            self.ejected_until_wall = None;
            self.in_rotation_since = now;
            self.ewma_ns = 0.0;
            self.ewma_at = now;
        } else if !passed && self.ejected_until.is_none_or(|until| until < next) {
            self.ejected_until = Some(next);
            self.ejected_until_wall = Some(SystemTime::now() + settings.health_interval());
        }
        self.next_probe = next;
    }

    /// The wall-clock end of the ejection in ms since the Unix epoch.
    pub(crate) fn ejected_until_unix_ms(&self) -> Option<u64> {
        self.ejected_until_wall
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> OutlierSettings {
        OutlierSettings {
            base_ejection_ms: 1_000,
            max_ejection_ms: 3_500,
            ..OutlierSettings::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_bad_values_are_named() {
        assert!(OutlierSettings::default().validate().is_ok());
        let bad = [
            OutlierSettings {
                base_ejection_ms: 0,
                ..OutlierSettings::default()
            },
            OutlierSettings {
                max_ejection_ms: 1,
                ..OutlierSettings::default()
            },
            OutlierSettings {
                max_ejection_percent: 101,
                ..OutlierSettings::default()
            },
            OutlierSettings {
                health_path: "readyz".into(),
                ..OutlierSettings::default()
            },
            OutlierSettings {
                health_timeout_ms: 0,
                ..OutlierSettings::default()
            },
        ];
        for settings in bad {
            assert!(settings.validate().is_err(), "{settings:?} accepted");
        }
    }

    #[test]
    fn the_cap_never_ejects_the_last_instance() {
        let s = OutlierSettings::default();
        assert_eq!(
            [1, 2, 3, 4, 5, 10].map(|n| s.ejection_cap(n)),
            [0, 1, 1, 2, 2, 5]
        );
        let all = OutlierSettings {
            max_ejection_percent: 100,
            ..s.clone()
        };
        assert_eq!(all.ejection_cap(3), 2);
        let none = OutlierSettings {
            max_ejection_percent: 0,
            ..s
        };
        assert_eq!(none.ejection_cap(3), 1, "at least one of two or more");
    }

    #[test]
    fn five_consecutive_5xx_or_one_refusal_cross_the_threshold() {
        let s = settings();
        let now = Instant::now();
        let rtt = Duration::from_millis(1);
        let mut state = OutlierState::new(now);
        for _ in 0..4 {
            assert!(!state.record(Outcome::ServerError, rtt, now, &s));
        }
        assert!(
            !state.record(Outcome::Success, rtt, now, &s),
            "a success resets"
        );
        for _ in 0..4 {
            assert!(!state.record(Outcome::ServerError, rtt, now, &s));
        }
        assert!(state.record(Outcome::ServerError, rtt, now, &s));

        let mut state = OutlierState::new(now);
        assert!(state.record(Outcome::LocalFailure, rtt, now, &s));
    }

    #[test]
    fn ejection_time_grows_with_repeats_up_to_the_maximum_and_decays_when_healthy() {
        let s = settings();
        let mut now = Instant::now();
        let mut state = OutlierState::new(now);
        let mut times = Vec::new();
        for _ in 0..5 {
            let time = state.eject(now, &s);
            times.push(time.as_millis());
            now += time;
            state.probed_while_ejected(true, false, now, &s);
        }
        assert_eq!(times, [1_000, 2_000, 3_000, 3_500, 3_500]);
        // Ten base times healthy: back to the first step.
        now += Duration::from_secs(10);
        assert_eq!(state.eject(now, &s), Duration::from_secs(1));
        assert_eq!(state.ejections, 6);
    }

    #[test]
    fn a_failing_probe_keeps_the_instance_out_and_a_passing_one_brings_it_back() {
        let s = settings();
        let now = Instant::now();
        let mut state = OutlierState::new(now);
        state.eject(now, &s);
        let later = now + Duration::from_secs(1);
        state.probed_while_ejected(false, false, later, &s);
        assert!(state.is_ejected());
        assert_eq!(state.ejected_until, Some(later + s.health_interval()));
        state.probed_while_ejected(true, false, later + s.health_interval(), &s);
        assert!(!state.is_ejected());
    }

    #[test]
    fn a_passing_probe_ends_an_ejection_early_only_when_the_rotation_is_failing() {
        let s = OutlierSettings {
            base_ejection_ms: 30_000,
            max_ejection_ms: 30_000,
            ..settings()
        };
        let now = Instant::now();
        let mut state = OutlierState::new(now);
        state.eject(now, &s);
        assert_eq!(
            state.next_probe,
            now + s.health_interval(),
            "probed during it"
        );
        let soon = now + Duration::from_secs(2);
        // Healthy again, the others fine: it sits out its time, a failing probe shortens
        // nothing.
        state.probed_while_ejected(true, false, soon, &s);
        assert!(state.is_ejected());
        state.probed_while_ejected(false, false, soon, &s);
        assert_eq!(state.ejected_until, Some(now + Duration::from_secs(30)));
        // Healthy again while the rotation fails: back at once.
        state.probed_while_ejected(true, true, soon, &s);
        assert!(!state.is_ejected());
    }

    #[test]
    fn a_failure_is_penalised_and_the_penalty_decays() {
        let s = settings();
        let now = Instant::now();
        let mut fast_failing = OutlierState::new(now);
        let mut healthy = OutlierState::new(now);
        fast_failing.record(Outcome::ServerError, Duration::from_micros(100), now, &s);
        healthy.record(Outcome::Success, Duration::from_millis(5), now, &s);
        assert!(fast_failing.latency(now, &s) > 100.0 * healthy.latency(now, &s));
        // Six decay times later it competes again with the healthy one's estimate of then.
        let later = now + Duration::from_secs(60);
        assert!(fast_failing.latency(later, &s) < healthy.latency(now, &s));
    }
}
