//! Offering the load: the open loop (arrivals on the schedule's times, whatever the target
//! does) and the closed loop (N users, each waiting for its last journey).
//!
//! The open loop never lets a slow target slow the schedule down unseen: a journey that finds
//! `--max-in-flight` journeys already running waits for a slot, and its latency still runs from
//! its intended start (wrk2's correction of coordinated omission). One that cannot get a slot
//! within `--timeout` of its intended start is not sent at all and counted as `not_started`
//! with the time it waited, so an overloaded target costs the generator neither unbounded
//! memory nor an unbounded run.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::args::Mix;
use super::journeys::{self, World};
use super::plan::{Schedule, pick};
use super::progress::Live;
use super::stats::ErrorKind;

/// Runs the schedule's arrivals as an open loop; returns when every journey has ended.
pub async fn open(
    world: Arc<World>,
    schedule: &mut Schedule,
    rates: &[f64],
    max_in_flight: u32,
    timeout: Duration,
    live: &Live,
) {
    let slots = Arc::new(Semaphore::new(max_in_flight as usize));
    let tracker = TaskTracker::new();
    let start = Instant::now();
    for arrival in schedule.by_ref() {
        let intended = start + arrival.at;
        let rate = rates.get(arrival.step.unwrap_or(0)).copied();
        live.set(arrival.step, rate);
        tokio::time::sleep_until(intended.into()).await;
        let slot =
            tokio::time::timeout_at((intended + timeout).into(), slots.clone().acquire_owned())
                .await;
        match slot {
            Ok(Ok(slot)) => {
                let world = world.clone();
                tracker.spawn(async move {
                    journeys::run(world, arrival.step, arrival.journey, arrival.seed, intended)
                        .await;
                    drop(slot);
                });
            }
            // No slot in time (or, never, a closed semaphore): due, never sent.
            _ => world.recorder.journey(
                arrival.step,
                arrival.journey,
                intended.elapsed(),
                Some(ErrorKind::NotStarted),
            ),
        }
    }
    tracker.close();
    tracker.wait().await;
}

/// What a closed loop runs: its users and phases.
pub struct Closed {
    pub users: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub requests: Option<u64>,
    pub mix: Mix,
    pub seed: u64,
}

/// Runs `users` virtual users back to back until the duration (or the journey count) is
/// reached; returns the measured span's length.
pub async fn closed(world: Arc<World>, plan: Closed, live: Arc<Live>) -> Duration {
    let start = Instant::now();
    let measured_from = start + plan.warmup;
    let end = measured_from + plan.duration;
    let started = Arc::new(AtomicU64::new(0));
    let tracker = TaskTracker::new();
    live.set(None, None);
    for user in 0..plan.users {
        let (world, started, live) = (world.clone(), started.clone(), live.clone());
        let mix = plan.mix;
        let requests = plan.requests;
        let mut rng = ChaCha8Rng::seed_from_u64(plan.seed.wrapping_add(u64::from(user)));
        tracker.spawn(async move {
            loop {
                let now = Instant::now();
                if now >= end {
                    break;
                }
                let step = (now >= measured_from).then_some(0);
                if step.is_some() {
                    live.set(Some(0), None);
                    let n = started.fetch_add(1, Ordering::Relaxed);
                    if requests.is_some_and(|cap| n >= cap) {
                        break;
                    }
                }
                let journey = pick(&mut rng, &mix);
                let seed = rng.next_u64();
                journeys::run(world.clone(), step, journey, seed, now).await;
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Instant::now()
        .min(end)
        .saturating_duration_since(measured_from)
}
