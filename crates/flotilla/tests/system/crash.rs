//! RELIABILITY.md F1/F5 in one process: `flotilla run` is killed with SIGKILL at random moments
//! while 200 checkouts are in flight, then restarted on the same data. Every order the shop
//! acknowledged (answered 201/202 with an id) must end CONFIRMED or CANCELLED within 30 s of
//! the restart, no order is captured twice, and captured − refunded equals the confirmed totals.

use crate::checkout::{
    ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, login, terminal, try_checkout,
};
use crate::support::Process;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

fn start(data: &str) -> Process {
    Process::start(
        &["run", "--port", "0", "--data-dir", data],
        &[
            ("FLOTILLA_ADMIN_EMAIL", ADMIN_EMAIL),
            ("FLOTILLA_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("FLOTILLA_CATALOG__SEED_PRODUCTS", "20"),
            ("FLOTILLA_INVENTORY__SEED_PRODUCTS", "20"),
            ("FLOTILLA_INVENTORY__INITIAL_STOCK", "30"),
            ("FLOTILLA_ORDERS__RESPOND_WITHIN_MS", "0"),
            ("FLOTILLA_ORDERS__RECOVERY_INTERVAL_MS", "200"),
            ("FLOTILLA_ORDERS__LEASE_MS", "4500"),
        ],
    )
}

#[tokio::test]
async fn killing_the_process_mid_checkout_loses_no_order_and_charges_no_one_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("path").to_owned();
    let http = reqwest::Client::new();
    let mut shop = start(&data);
    let base = shop.url("gateway");

    let mut users = Vec::new();
    for u in 0..40u64 {
        let bearer = customer(&http, &base).await;
        add_to_cart(&http, &base, &bearer, &format!("p{:07}", u % 20 + 1), 1).await;
        users.push(bearer);
    }

    // Rounds: launch ~120 checkouts, kill -9 at a random moment, restart; at least two rounds
    // and until a kill has interrupted sagas mid-way (found PENDING right after the restart).
    let admin = login(&http, &base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut interrupted = 0;
    let mut base = base;
    let mut round = 0;
    while round < 2 || (interrupted == 0 && round < 6) {
        round += 1;
        // Each round checks out carts holding something (a cart is checked out once, S10).
        for (u, bearer) in users.iter().enumerate() {
            add_to_cart(&http, &base, bearer, &format!("p{:07}", u % 20 + 1), 1).await;
        }
        let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for (u, bearer) in users.iter().enumerate() {
            for k in 0..(100 / users.len() + 1) {
                let (http, base, bearer, acks) =
                    (http.clone(), base.clone(), bearer.clone(), acks.clone());
                let key = format!("r{round}-u{u}-k{k}");
                tasks.push(tokio::spawn(async move {
                    let id =
                        match try_checkout(&http, &base, &bearer, &key, "4242424242424242").await {
                            Ok((201 | 202, order)) => order["id"].as_str().map(str::to_owned),
                            _ => None,
                        };
                    if id.is_some() {
                        acks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    (id, bearer)
                }));
            }
        }
        // Kill once the shop has acknowledged some orders (however loaded the machine is), at a
        // random moment while the rest are in flight.
        let waiting = std::time::Instant::now();
        while acks.load(std::sync::atomic::Ordering::SeqCst) < 10
            && waiting.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(
            rand::random::<u16>() % 150,
        )))
        .await;
        shop.kill();
        for task in tasks {
            if let Ok((Some(id), bearer)) = task.await {
                acknowledged.push((id, bearer));
            }
        }
        shop = start(&data);
        base = shop.url("gateway");
        let summary: Value = http
            .get(format!("{base}/api/orders/admin/summary"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("json");
        interrupted += summary["pending"].as_u64().unwrap_or(0);
    }
    eprintln!("rounds: {round}; sagas found unfinished after a kill: {interrupted}");
    assert!(interrupted > 0, "the kills interrupted some sagas");
    assert!(
        !acknowledged.is_empty(),
        "some checkouts were acknowledged before the kills"
    );

    let mut confirmed_total = 0;
    for (id, bearer) in &acknowledged {
        let order = terminal(&http, &base, bearer, id, Duration::from_secs(30)).await;
        if order["status"] == "CONFIRMED" {
            confirmed_total += order["total"]["amount_minor"].as_i64().expect("total");
        }
    }
    // Orders created but never acknowledged (killed before the answer) must be terminal too;
    // the admin summary counts them all.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let summary = loop {
        let summary: Value = http
            .get(format!("{base}/api/orders/admin/summary"))
            .header("authorization", &admin)
            .send()
            .await
            .expect("summary")
            .json()
            .await
            .expect("json");
        if summary["pending"] == 0 {
            break summary;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "every order terminal: {summary}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all_confirmed_total = summary["confirmed_total_minor"].as_i64().expect("total");
    eprintln!(
        "acknowledged before the kills: {}; after recovery: {summary}",
        acknowledged.len()
    );
    assert!(all_confirmed_total >= confirmed_total);

    // Money: at most one capture per order, and captured − refunded = confirmed totals.
    let mut captures_per_order: HashMap<String, u32> = HashMap::new();
    let mut page = 1;
    loop {
        let payments: Value = http
            .get(format!(
                "{base}/api/payments/admin/payments?page={page}&page_size=100"
            ))
            .header("authorization", &admin)
            .send()
            .await
            .expect("payments")
            .json()
            .await
            .expect("json");
        let items = payments["items"].as_array().cloned().unwrap_or_default();
        for p in &items {
            if p["status"] == "captured" || p["status"] == "refunded" {
                *captures_per_order
                    .entry(p["order_id"].as_str().unwrap_or_default().to_owned())
                    .or_default() += 1;
            }
        }
        if items.len() < 100 {
            break;
        }
        page += 1;
    }
    assert!(
        captures_per_order.values().all(|n| *n <= 1),
        "one capture per order: {captures_per_order:?}"
    );
    let money: Value = http
        .get(format!("{base}/api/payments/admin/summary"))
        .header("authorization", &admin)
        .send()
        .await
        .expect("summary")
        .json()
        .await
        .expect("json");
    let captured = money["captured_total"].as_i64().expect("captured");
    let refunded = money["refunded_total"].as_i64().expect("refunded");
    assert_eq!(
        captured - refunded,
        all_confirmed_total,
        "payments {money} vs orders {summary}"
    );
}
