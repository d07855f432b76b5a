//! The proxy between a real PostgreSQL client (an sqlx pool) and PostgreSQL
//! (`FLOTILLA_TEST_POSTGRES`, default postgres://postgres@127.0.0.1:5432): a black hole makes a
//! query fail within the client's timeout, and the pool recovers once the toxic is gone.

use sqlx::postgres::PgPoolOptions;
use std::time::{Duration, Instant};

use flotilla_faultproxy::{FaultProxy, Toxic, ToxicKind};

/// The server's URL, and its `host:port`.
fn server() -> (String, String) {
    let url = std::env::var("FLOTILLA_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest).to_owned();
    (url, host_port)
}

#[tokio::test]
async fn a_black_hole_fails_queries_in_time_and_the_pool_recovers() {
    let (url, upstream) = server();
    let proxy = FaultProxy::new()
        .proxy("postgres", &upstream)
        .await
        .expect("proxy");
    let through = url.replacen(&upstream, &proxy.addr().to_string(), 1);
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect(&through)
        .await
        .expect("PostgreSQL through the proxy");
    let one = |pool: sqlx::PgPool| async move {
        tokio::time::timeout(
            Duration::from_secs(1),
            sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&pool),
        )
        .await
    };
    assert_eq!(one(pool.clone()).await.expect("in time").expect("query"), 1);

    proxy
        .add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }))
        .await
        .expect("toxic");
    let start = Instant::now();
    let failed = one(pool.clone()).await;
    assert!(
        failed.is_err() || failed.as_ref().is_ok_and(Result::is_err),
        "a query answered through a black hole: {failed:?}"
    );
    assert!(start.elapsed() < Duration::from_millis(1500));

    proxy
        .remove_toxic("timeout_downstream")
        .await
        .expect("remove");
    let healed = Instant::now();
    loop {
        if let Ok(Ok(1)) = one(pool.clone()).await {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(5),
            "the pool did not recover within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("pool recovered in {:?}", healed.elapsed());
    pool.close().await;
}
