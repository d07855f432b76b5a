//! Which traces are recorded: parent-based, with a ratio for the traces that start here.
//!
//! A trace that arrives with a `traceparent` keeps its caller's decision (the sampled flag), so
//! a trace is recorded whole or not at all; one that starts here is recorded when its trace id
//! falls under the ratio — decided from the id alone, so every process that sees the id
//! decides alike (OpenTelemetry's `ParentBased(TraceIdRatioBased)`).

/// A sampling ratio, from 0 (record no new trace) to 1 (record every one).
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Traces whose low 64 id bits are below this are sampled; `None`: all.
    threshold: Option<u64>,
}

impl Sampler {
    /// Records every trace.
    pub const ALWAYS: Self = Self { threshold: None };

    /// Records about `ratio` of the traces that start here; `Err` outside 0..=1.
    pub fn ratio(ratio: f64) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!(
                "the sampling ratio must be between 0 and 1, not {ratio}"
            ));
        }
        if ratio >= 1.0 {
            return Ok(Self::ALWAYS);
        }
        // `as` saturates; ratio * 2^64 is below 2^64 here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (ratio * 18_446_744_073_709_551_616.0) as u64;
        Ok(Self {
            threshold: Some(threshold),
        })
    }

    /// Whether a trace starting here with `trace_id` is recorded.
    pub fn samples(&self, trace_id: u128) -> bool {
        #[allow(clippy::cast_possible_truncation)]
        let low = trace_id as u64;
        self.threshold.is_none_or(|threshold| low < threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::Sampler;

    #[test]
    fn ratios_sample_their_share_of_random_ids() {
        for ratio in [0.0, 0.1, 0.5, 1.0] {
            let sampler = Sampler::ratio(ratio).expect("valid");
            let n = 100_000;
            let sampled = (0..n)
                .filter(|_| sampler.samples(rand::random::<u128>()))
                .count();
            #[allow(clippy::cast_precision_loss)]
            let share = sampled as f64 / f64::from(n);
            assert!((share - ratio).abs() < 0.01, "{ratio}: {share}");
        }
    }

    #[test]
    fn ratios_outside_zero_to_one_are_refused() {
        for bad in [-0.1, 1.5, f64::NAN] {
            assert!(Sampler::ratio(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_decision_is_the_ids_so_every_process_agrees() {
        let sampler = Sampler::ratio(0.3).expect("valid");
        let id = rand::random::<u128>();
        assert_eq!(sampler.samples(id), sampler.samples(id));
    }
}
