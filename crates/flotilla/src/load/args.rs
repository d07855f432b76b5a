//! `flotilla load`'s command line: the flags, and the parsers that turn `--rate 100..1000/step
//! 100` and `--mix browse=80,cart=15,checkout=5` into values, each refusing bad input with a
//! message that says what to write instead.

use clap::{Args, ValueEnum};
use std::time::Duration;

use crate::chaos::parse_duration;

/// `flotilla load`'s options.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// The gateway of the shop to load.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Offered load in journeys a second: a constant `500`, or steps `100..1000/step 100`
    /// (each lasting --step-duration; quoting is optional). Open loop: arrivals do not wait
    /// for answers.
    #[arg(long, value_name = "RATE", num_args = 1..=2, default_value = "50",
          conflicts_with = "users")]
    pub rate: Vec<String>,
    /// Closed loop instead of --rate: N virtual users, each starting its next journey when the
    /// last one ends (no think time). Latency then hides queueing: prefer --rate.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: Option<u32>,
    /// How long each step of a stepped --rate lasts.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub step_duration: Duration,
    /// Inter-arrival times: exponential (Poisson arrivals) or uniform on [0, 2/rate].
    #[arg(long, value_enum, default_value_t = ArrivalKind::Exp)]
    pub arrivals: ArrivalKind,
    /// The share of each journey, as weights: browse (list, search, product page), cart
    /// (product page, add to cart, view cart), checkout (cart, order, order history).
    #[arg(long, value_name = "NAME=WEIGHT,...", value_parser = parse_mix,
          default_value = "browse=80,cart=15,checkout=5")]
    pub mix: Mix,
    /// Seed of the arrival times and of every choice a journey makes: the same seed offers the
    /// same load.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Most journeys in flight at once. Beyond it, new arrivals wait, so an overloaded target
    /// cannot exhaust the generator's memory; their latency still runs from their intended
    /// start.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_in_flight: u32,
    /// Load offered, and not measured, before the first step (at the first step's rate).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// How long a constant --rate (or --users) runs.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Report a constant --rate in slices of this length, each a step of the report at the
    /// same rate: a time series (e.g. how p99 recovers after an instance is killed).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "users")]
    pub report_every: Option<Duration>,
    /// Stop each step after this many journeys instead (or at its duration, if sooner).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Longest wait for one answer; a later one counts as a timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Every acknowledged order must be CONFIRMED or CANCELLED within this time.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub order_deadline: Duration,
    /// Print the report as JSON (field names documented in the README) instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl LoadArgs {
    /// The offered rate `--rate` describes, or the usage error (exit status 2) saying what to
    /// write. Read here rather than by a clap value parser because `--rate 100..1000/step 100`
    /// unquoted is two arguments.
    pub fn rate_spec(&self) -> Result<RateSpec, clap::Error> {
        parse_rate_spec(&self.rate.join(" ")).map_err(|message| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for --rate: {message}\n"),
            )
        })
    }
}

/// How the time between two arrivals is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArrivalKind {
    /// Exponential gaps: a Poisson process, as independent users arrive.
    Exp,
    /// Uniform gaps on [0, 2/rate]: the same mean, a bounded gap.
    Uniform,
}

/// The offered rate: one level, or levels from `from` to `to` by `step`.
#[derive(Debug, Clone, PartialEq)]
pub enum RateSpec {
    /// One rate, journeys a second.
    Constant(f64),
    /// `from`, `from + step`, ... up to and including `to`.
    Stepped { from: f64, to: f64, step: f64 },
}

impl RateSpec {
    /// The rates in order.
    pub fn levels(&self) -> Vec<f64> {
        match *self {
            RateSpec::Constant(rate) => vec![rate],
            RateSpec::Stepped { from, to, step } => {
                let count = ((to - from) / step + 1e-9).floor() as usize + 1;
                (0..count).map(|i| from + step * i as f64).collect()
            }
        }
    }
}

/// Most steps a stepped rate may have: a typo such as `1..100000/step 1` is refused.
pub const MAX_STEPS: f64 = 1000.0;

/// Highest rate accepted, journeys a second.
const MAX_RATE: f64 = 1_000_000.0;

fn parse_level(text: &str, what: &str) -> Result<f64, String> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{what} {text:?} is not a number of journeys a second"))?;
    if !(rate > 0.0 && rate <= MAX_RATE) {
        return Err(format!("{what} must be above 0 and at most {MAX_RATE}"));
    }
    Ok(rate)
}

/// Parses `500`, `100..1000/step 100` or `100..1000/100`.
pub fn parse_rate_spec(text: &str) -> Result<RateSpec, String> {
    let Some((from, rest)) = text.split_once("..") else {
        return parse_level(text, "the rate").map(RateSpec::Constant);
    };
    let usage = "write a stepped rate as FROM..TO/step STEP, e.g. 100..1000/step 100";
    let (to, step) = rest.split_once('/').ok_or(usage)?;
    let step = step.trim();
    let step = step.strip_prefix("step").unwrap_or(step);
    let from = parse_level(from, "the first rate")?;
    let to = parse_level(to, "the last rate")?;
    let step = parse_level(step, "the step")?;
    if to < from {
        return Err(format!(
            "the last rate ({to}) is below the first ({from}); {usage}"
        ));
    }
    if (to - from) / step + 1.0 > MAX_STEPS {
        return Err(format!("more than {MAX_STEPS} steps: use a larger step"));
    }
    Ok(RateSpec::Stepped { from, to, step })
}

/// The weights of the three journeys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    pub browse: u32,
    pub cart: u32,
    pub checkout: u32,
}

/// Parses `browse=80,cart=15,checkout=5`; a journey not named has weight 0.
pub fn parse_mix(text: &str) -> Result<Mix, String> {
    let mut mix = Mix {
        browse: 0,
        cart: 0,
        checkout: 0,
    };
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not NAME=WEIGHT, e.g. browse=80"))?;
        let weight: u32 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| *w <= 1_000_000)
            .ok_or_else(|| {
                format!("the weight of {name} ({weight:?}) is not a whole number up to 1000000")
            })?;
        let slot = match name.trim() {
            "browse" => &mut mix.browse,
            "cart" => &mut mix.cart,
            "checkout" => &mut mix.checkout,
            other => {
                return Err(format!(
                    "{other:?} is not a journey: use browse, cart and checkout"
                ));
            }
        };
        *slot = weight;
    }
    if mix.browse + mix.cart + mix.checkout == 0 {
        return Err("the weights add up to 0: give at least one journey a weight".to_owned());
    }
    Ok(mix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_people_write_them() {
        assert_eq!(parse_rate_spec("500"), Ok(RateSpec::Constant(500.0)));
        let stepped = parse_rate_spec("100..1000/step 100").expect("stepped");
        assert_eq!(stepped.levels().len(), 10);
        assert_eq!(stepped.levels()[9], 1000.0);
        assert_eq!(
            parse_rate_spec("10..25/5").expect("short form").levels(),
            vec![10.0, 15.0, 20.0, 25.0]
        );
        assert!(parse_rate_spec("0").is_err());
        assert!(parse_rate_spec("fast").is_err());
        assert!(parse_rate_spec("1000..100/step 100").is_err());
        assert!(parse_rate_spec("100..1000").is_err());
        assert!(parse_rate_spec("1..100000/step 1").is_err());
    }

    #[test]
    fn mixes_name_journeys_and_weights() {
        let mix = parse_mix("browse=80,cart=15,checkout=5").expect("mix");
        assert_eq!((mix.browse, mix.cart, mix.checkout), (80, 15, 5));
        assert_eq!(parse_mix("checkout=1").expect("one").browse, 0);
        assert!(parse_mix("browse=80,pay=5").is_err());
        assert!(parse_mix("browse=0").is_err());
        assert!(parse_mix("browse").is_err());
    }
}
