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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::args::ArrivalKind;
    use crate::load::invariants::Invariants;
    use crate::load::journeys::{CatalogView, Journey};
    use crate::load::plan::{Plan, Step};
    use crate::load::shop::Shop;
    use crate::load::stats::{Percentiles, Recorder};
    use crate::load::users::UserPool;
    use axum::routing::get;
    use flotilla_catalog::contract::ProductId;
    use std::sync::atomic::AtomicBool;

    /// A catalog that answers at once, except that its first answer takes `stall` (a pause
    /// such as a GC or a lock convoy).
    async fn stalling_catalog(stall: Duration) -> String {
        let stalled = Arc::new(AtomicBool::new(false));
        let pause = move || {
            let stalled = stalled.clone();
            async move {
                if !stalled.swap(true, Ordering::SeqCst) {
                    tokio::time::sleep(stall).await;
                }
            }
        };
        let (list, search, product) = (pause.clone(), pause.clone(), pause);
        let app = axum::Router::new()
            .route(
                "/api/catalog/products",
                get(move || async move {
                    list().await;
                    "{}"
                }),
            )
            .route(
                "/api/catalog/search",
                get(move || async move {
                    search().await;
                    r#"{"items":[],"total":0,"total_is_lower_bound":false,"page":1,"page_size":20}"#
                }),
            )
            .route(
                "/api/catalog/products/{id}",
                get(move || async move {
                    product().await;
                    "{}"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_stalled_server_shows_as_latency_from_intended_start_times() {
        let base = stalling_catalog(Duration::from_secs(1)).await;
        let shop = Shop::new(&base, Duration::from_secs(10)).expect("shop");
        let product = ProductId::from_number(1).expect("id");
        let recorder = Arc::new(Recorder::new(1));
        let world = Arc::new(World {
            shop: shop.clone(),
            recorder: recorder.clone(),
            catalog: CatalogView {
                products: vec![product],
                cart_products: vec![product],
                words: vec!["lamp".to_owned()],
                pages: 1,
            },
            users: UserPool::new(),
            invariants: Arc::new(Invariants::new(shop, Duration::from_secs(30), Vec::new())),
        });
        let plan = Plan {
            warmup: Duration::ZERO,
            steps: vec![Step {
                rate: 100.0,
                duration: Duration::from_secs(2),
                requests: None,
            }],
        };
        let mix = Mix {
            browse: 1,
            cart: 0,
            checkout: 0,
        };
        let mut schedule = Schedule::new(plan, ArrivalKind::Uniform, mix, 1);
        // One journey at a time, like one connection of a closed-loop tool: while the first
        // answer stalls for 1 s, the ~100 journeys due meanwhile queue behind it.
        let live = Live::default();
        open(
            world,
            &mut schedule,
            &[100.0],
            1,
            Duration::from_secs(10),
            &live,
        )
        .await;

        let steps = recorder.steps();
        let browse = &steps[0].journeys[&Journey::Browse];
        let p = Percentiles::of(&browse.latency);
        // No arrival was lost to the stall: all ~200 due are measured.
        assert!(
            (170..=230).contains(&browse.count),
            "{} journeys",
            browse.count
        );
        assert_eq!(browse.errors.total(), 0);
        // Measured from when each request was sent, one journey in 200 would be slow (p99
        // ~1 ms); from intended start times, the stall covers about half the run's arrivals
        // with latencies falling from 1 s to 0.
        assert!(p.max_ms >= 1000.0, "{p:?}");
        assert!(p.p90_ms >= 600.0, "{p:?}");
        // The ~100 arrivals due during the stall waited its rest: ~90 of them 100 ms or more
        // (the arrival at t waited 1 s − t), however fast the backlog drains afterwards.
        let waited = browse.latency.count_between(100_000, u64::MAX);
        assert!(
            waited >= 80,
            "{waited} journeys waited 100 ms or more: {p:?}"
        );
        // The first request of the journey that met the stall took the whole second.
        let list = &steps[0].routes[&(Journey::Browse, "GET /api/catalog/products")];
        assert!(Percentiles::of(&list.latency).max_ms >= 1000.0);
    }
}
