//! The offered load, decided before any answer is seen: when each journey is meant to start,
//! which journey it is, and the seed of its choices. Open loop (the schedule never waits for the
//! target), from a seeded ChaCha8 generator, so one seed offers one load, answer after answer.
//!
//! Arrival times and journey choices come from two generators, so that changing `--mix` does not
//! move a single arrival.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::time::Duration;

use super::args::{ArrivalKind, Mix};
use serde::Serialize;

/// The three journeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Journey {
    Browse,
    Cart,
    Checkout,
}

impl Journey {
    pub fn as_str(self) -> &'static str {
        match self {
            Journey::Browse => "browse",
            Journey::Cart => "cart",
            Journey::Checkout => "checkout",
        }
    }
}

/// One level of offered load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// Journeys a second.
    pub rate: f64,
    /// How long the step offers load.
    pub duration: Duration,
    /// Or after how many journeys it ends, if sooner.
    pub requests: Option<u64>,
}

/// A warm-up (not measured) and the measured steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub warmup: Duration,
    pub steps: Vec<Step>,
}

/// One journey to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// When it is meant to start, from the start of the run.
    pub at: Duration,
    /// The measured step it belongs to; `None` during the warm-up.
    pub step: Option<usize>,
    pub journey: Journey,
    /// Seed of the journey's own choices (products, quantities, search words).
    pub seed: u64,
}

/// When a measured step began and ended, in intended time from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepSpan {
    pub start: Duration,
    pub end: Duration,
}

/// A uniform draw in (0, 1] from the top 53 bits of one output: the generator's stream, not a
/// crate's sampler, decides every number, so a seed means the same load across rand versions.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// The time to the next arrival at `rate` a second.
pub fn gap(rng: &mut ChaCha8Rng, kind: ArrivalKind, rate: f64) -> Duration {
    let seconds = match kind {
        // Inverse transform: -ln U / λ is exponential with mean 1/λ.
        ArrivalKind::Exp => -unit(rng).ln() / rate,
        ArrivalKind::Uniform => 2.0 * unit(rng) / rate,
    };
    Duration::from_secs_f64(seconds)
}

/// A journey drawn with the mix's weights.
pub fn pick(rng: &mut ChaCha8Rng, mix: &Mix) -> Journey {
    let total = u64::from(mix.browse) + u64::from(mix.cart) + u64::from(mix.checkout);
    let draw = rng.next_u64() % total.max(1);
    if draw < u64::from(mix.browse) {
        Journey::Browse
    } else if draw < u64::from(mix.browse) + u64::from(mix.cart) {
        Journey::Cart
    } else {
        Journey::Checkout
    }
}

/// The arrivals of a plan, in order of intended time.
pub struct Schedule {
    plan: Plan,
    kind: ArrivalKind,
    mix: Mix,
    gaps: ChaCha8Rng,
    choices: ChaCha8Rng,
    /// The phase now drawn: 0 is the warm-up, `i + 1` the step `i`.
    phase: usize,
    phase_start: Duration,
    in_phase: u64,
    next_at: Duration,
    spans: Vec<StepSpan>,
}

impl Schedule {
    pub fn new(plan: Plan, kind: ArrivalKind, mix: Mix, seed: u64) -> Self {
        let mut gaps = ChaCha8Rng::seed_from_u64(seed);
        let first_rate = plan.steps.first().map_or(1.0, |s| s.rate);
        let next_at = gap(&mut gaps, kind, first_rate);
        Self {
            plan,
            kind,
            mix,
            gaps,
            // A second stream, so the mix does not move arrival times.
            choices: ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15),
            phase: 0,
            phase_start: Duration::ZERO,
            in_phase: 0,
            next_at,
            spans: Vec::new(),
        }
    }

    /// The steps finished so far (all of them once the schedule is exhausted).
    pub fn spans(&self) -> &[StepSpan] {
        &self.spans
    }

    /// The end of the current phase by time, and its rate and journey cap.
    fn phase(&self) -> Option<(Duration, f64, Option<u64>)> {
        if self.phase == 0 {
            let rate = self.plan.steps.first()?.rate;
            return Some((self.phase_start + self.plan.warmup, rate, None));
        }
        let step = self.plan.steps.get(self.phase - 1)?;
        Some((self.phase_start + step.duration, step.rate, step.requests))
    }

    fn close_phase(&mut self, end: Duration) {
        if self.phase > 0 {
            self.spans.push(StepSpan {
                start: self.phase_start,
                end,
            });
        }
        self.phase += 1;
        self.phase_start = end;
        self.in_phase = 0;
        // A new rate from the boundary on (exact for exponential gaps, which are memoryless).
        if let Some((_, rate, _)) = self.phase() {
            self.next_at = end + gap(&mut self.gaps, self.kind, rate);
        }
    }
}

impl Iterator for Schedule {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            let (end, rate, cap) = self.phase()?;
            if cap.is_some_and(|cap| self.in_phase >= cap) {
                // Ended by its journey count: the next step starts where this one stopped.
                let end = self.next_at.min(end);
                self.close_phase(end);
                continue;
            }
            if self.next_at >= end {
                self.close_phase(end);
                continue;
            }
            let at = self.next_at;
            self.in_phase += 1;
            self.next_at = at + gap(&mut self.gaps, self.kind, rate);
            let step = self.phase.checked_sub(1);
            let journey = pick(&mut self.choices, &self.mix);
            let seed = self.choices.next_u64();
            return Some(Arrival {
                at,
                step,
                journey,
                seed,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_rate(kind: ArrivalKind, rate: f64, draws: u32) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let total: f64 = (0..draws)
            .map(|_| gap(&mut rng, kind, rate).as_secs_f64())
            .sum();
        f64::from(draws) / total
    }

    #[test]
    fn exponential_and_uniform_gaps_offer_the_asked_rate() {
        for kind in [ArrivalKind::Exp, ArrivalKind::Uniform] {
            for rate in [10.0, 500.0, 20_000.0] {
                let got = mean_rate(kind, rate, 200_000);
                assert!(
                    (got / rate - 1.0).abs() < 0.01,
                    "{kind:?} at {rate}/s offered {got}/s"
                );
            }
        }
    }

    #[test]
    fn exponential_gaps_have_the_exponential_spread() {
        // For an exponential distribution the standard deviation equals the mean, and
        // P(gap > mean) = 1/e; uniform gaps on [0, 2/λ] have sd = mean/√3.
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let gaps: Vec<f64> = (0..200_000)
            .map(|_| gap(&mut rng, ArrivalKind::Exp, 100.0).as_secs_f64())
            .collect();
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / gaps.len() as f64;
        assert!(
            (var.sqrt() / mean - 1.0).abs() < 0.02,
            "sd/mean {}",
            var.sqrt() / mean
        );
        let above = gaps.iter().filter(|g| **g > mean).count() as f64 / gaps.len() as f64;
        assert!(
            (above - (-1.0f64).exp()).abs() < 0.01,
            "P(gap > mean) {above}"
        );
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let uniform: Vec<f64> = (0..200_000)
            .map(|_| gap(&mut rng, ArrivalKind::Uniform, 100.0).as_secs_f64())
            .collect();
        assert!(uniform.iter().all(|g| *g <= 0.02 + 1e-12));
    }

    fn plan(rates: &[f64], secs: u64, warmup: u64) -> Plan {
        Plan {
            warmup: Duration::from_secs(warmup),
            steps: rates
                .iter()
                .map(|&rate| Step {
                    rate,
                    duration: Duration::from_secs(secs),
                    requests: None,
                })
                .collect(),
        }
    }

    fn mix() -> Mix {
        Mix {
            browse: 80,
            cart: 15,
            checkout: 5,
        }
    }

    #[test]
    fn a_stepped_schedule_offers_each_rate_for_its_step() {
        let mut schedule = Schedule::new(plan(&[100.0, 400.0], 50, 5), ArrivalKind::Exp, mix(), 3);
        let arrivals: Vec<Arrival> = schedule.by_ref().collect();
        let warmup = arrivals.iter().filter(|a| a.step.is_none()).count() as f64;
        let first = arrivals.iter().filter(|a| a.step == Some(0)).count() as f64;
        let second = arrivals.iter().filter(|a| a.step == Some(1)).count() as f64;
        assert!((warmup / 500.0 - 1.0).abs() < 0.1, "warm-up {warmup}");
        assert!((first / 5000.0 - 1.0).abs() < 0.05, "first step {first}");
        assert!(
            (second / 20_000.0 - 1.0).abs() < 0.05,
            "second step {second}"
        );
        assert!(arrivals.windows(2).all(|w| w[0].at <= w[1].at));
        let spans = schedule.spans();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].start, Duration::from_secs(5));
        assert_eq!(spans[1].end, Duration::from_secs(105));
        let checkouts = arrivals
            .iter()
            .filter(|a| a.journey == Journey::Checkout)
            .count() as f64;
        assert!((checkouts / arrivals.len() as f64 - 0.05).abs() < 0.005);
    }

    #[test]
    fn one_seed_offers_one_load() {
        let run = |seed| -> Vec<Arrival> {
            Schedule::new(plan(&[200.0], 2, 0), ArrivalKind::Exp, mix(), seed).collect()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }

    #[test]
    fn a_journey_count_ends_a_step_early() {
        let mut plan = plan(&[1000.0, 1000.0], 60, 0);
        for step in &mut plan.steps {
            step.requests = Some(100);
        }
        let mut schedule = Schedule::new(plan, ArrivalKind::Uniform, mix(), 1);
        assert_eq!(schedule.by_ref().count(), 200);
        assert!(schedule.spans()[1].end < Duration::from_secs(1));
    }
}
