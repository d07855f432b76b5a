//! Races: many reservations at once on scarce stock (the L2 rule: sold = min(demand, stock),
//! stock never read below 0), the same reservation sent many times at once, and commit racing
//! release. Every answer must be a 2xx or the documented 409: never a 5xx.

use axum::http::StatusCode;
use flotilla_inventory::contract::{Reservation, ReservationStatus, problem_types};
use futures::future::join_all;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::harness::{App, INITIAL, expect_json, expect_problem, product, reserve_body};

#[tokio::test]
async fn fifty_buyers_for_ten_units_buy_exactly_ten() {
    let app = Arc::new(App::start().await);
    let a = product(1);
    app.set_stock(&a, 10).await;

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (app, done, a) = (app.clone(), done.clone(), a.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) || reads == 0 {
                let available = app.available(&a).await;
                assert!((0..=10).contains(&available), "read {available}");
                reads += 1;
            }
            reads
        })
    };
    let buyers = (0..50).map(|n| {
        let (app, a) = (app.clone(), a.clone());
        tokio::spawn(async move {
            app.post_reserve(reserve_body(&format!("buyer-{n}"), &[(&a, 1)]))
                .await
        })
    });
    let answers = join_all(buyers).await;
    done.store(true, Ordering::SeqCst);
    let (mut sold, mut refused) = (0, 0);
    for answer in answers {
        let res = answer.expect("buyer task");
        if res.status() == StatusCode::CREATED {
            sold += 1;
        } else {
            let problem = expect_problem(res, StatusCode::CONFLICT).await;
            assert_eq!(problem.kind, problem_types::OUT_OF_STOCK);
            refused += 1;
        }
    }
    assert!(reader.await.expect("reader task") > 0);
    assert_eq!((sold, refused), (10, 40));
    assert_eq!(app.available(&a).await, 0);
    let summary = app.summary().await;
    assert_eq!((summary.held, summary.units_held), (10, 10));
}

#[tokio::test]
async fn the_same_reservation_sent_ten_times_at_once_reserves_once() {
    let app = Arc::new(App::start().await);
    let (a, b) = (product(2), product(3));
    let attempts = (0..10).map(|n| {
        let (app, a, b) = (app.clone(), a.clone(), b.clone());
        // Half list the lines in the other order: still the same reservation.
        let lines = if n % 2 == 0 {
            vec![(a.clone(), 2), (b.clone(), 1)]
        } else {
            vec![(b.clone(), 1), (a.clone(), 2)]
        };
        tokio::spawn(async move {
            let lines: Vec<(&str, i64)> = lines.iter().map(|(p, q)| (p.as_str(), *q)).collect();
            app.post_reserve(reserve_body("checkout-1", &lines)).await
        })
    });
    let mut created = 0;
    let mut seen = Vec::new();
    for answer in join_all(attempts).await {
        let res = answer.expect("task");
        let status = res.status();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
        seen.push(expect_json::<Reservation>(res, status).await);
    }
    assert_eq!(created, 1, "exactly one request created it");
    assert!(
        seen.windows(2).all(|w| w[0] == w[1]),
        "all saw the same reservation"
    );
    assert_eq!(app.available(&a).await, INITIAL - 2, "reduced once");
    assert_eq!(app.available(&b).await, INITIAL - 1);
    assert_eq!(app.summary().await.held, 1);
}

#[tokio::test]
async fn commit_racing_release_has_exactly_one_winner() {
    let app = Arc::new(App::start().await);
    let a = product(4);
    let ids: Vec<String> = (0..15).map(|n| format!("duel-{n}")).collect();
    for id in &ids {
        app.reserve(id, &[(&a, 3)]).await;
    }
    let duels = ids.iter().map(|id| {
        let (app, id) = (app.clone(), id.clone());
        tokio::spawn(async move {
            let (commit, release) = tokio::join!(app.act(&id, "commit"), app.act(&id, "release"));
            (commit.status(), release.status())
        })
    });
    let mut committed = 0;
    for duel in join_all(duels).await {
        match duel.expect("task") {
            (StatusCode::OK, StatusCode::CONFLICT) => committed += 1,
            (StatusCode::CONFLICT, StatusCode::OK) => {}
            other => panic!("both or neither won: {other:?}"),
        }
    }
    let summary = app.summary().await;
    assert_eq!(summary.committed, committed);
    assert_eq!(summary.released, 15 - committed);
    assert_eq!(summary.units_committed, 3 * committed as i64);
    assert_eq!(app.available(&a).await, INITIAL - 3 * committed as i64);
    for id in &ids {
        assert_ne!(app.reservation(id).await.status, ReservationStatus::Held);
    }
}

#[tokio::test]
async fn overlapping_multi_line_reservations_are_all_or_nothing() {
    let app = Arc::new(App::start().await);
    let products: Vec<String> = (5..=7).map(product).collect();
    for p in &products {
        app.set_stock(p, 10).await;
    }
    // Forty buyers each want two of the three products, named in varying orders.
    let buyers = (0..40).map(|n| {
        let app = app.clone();
        let first = products[n % 3].clone();
        let second = products[(n + 1 + n / 3 % 2) % 3].clone();
        tokio::spawn(async move {
            let res = app
                .post_reserve(reserve_body(
                    &format!("pair-{n}"),
                    &[(&first, 1), (&second, 1)],
                ))
                .await;
            (res.status(), first, second)
        })
    });
    let mut taken = std::collections::HashMap::<String, i64>::new();
    for buyer in join_all(buyers).await {
        let (status, first, second) = buyer.expect("task");
        match status {
            StatusCode::CREATED => {
                *taken.entry(first).or_default() += 1;
                *taken.entry(second).or_default() += 1;
            }
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    let mut held = 0;
    for p in &products {
        let took = taken.get(p).copied().unwrap_or(0);
        assert_eq!(app.available(p).await, 10 - took, "{p}");
        held += took;
    }
    assert_eq!(app.summary().await.units_held, held);
}
