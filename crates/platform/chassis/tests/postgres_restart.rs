//! The chassis's connection pool across a PostgreSQL restart (RELIABILITY.md F6, issue 9 defect
//! 3), on a server of the test's own: while it is down every way a store uses the pool fails at
//! once with an error the services answer 503, and within 5 s of its return every way works
//! again, although the pool's connections were kept busy the whole time (before the fix a busy
//! connection was never checked, so a dead one was handed out for good).

use flotilla_chassis::Problem;
use flotilla_chassis::db::{Db, PoolSettings, is_unavailable};
use flotilla_testkit::PrivatePostgres;
use std::time::{Duration, Instant};

/// One statement through each of the pool's doors: its executor, a transaction and a
/// connection taken for several statements.
async fn every_kind_of_use(db: &Db) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO t (x) VALUES (1)")
        .execute(db.pool())
        .await?;
    let mut tx = db.pool().begin().await?;
    sqlx::query("UPDATE t SET x = x + 1")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let mut conn = db.pool().acquire().await?;
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM t")
        .fetch_one(&mut *conn)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_answers_unavailable_while_postgres_is_down_and_recovers_within_5_s() {
    let pg = PrivatePostgres::start().await;
    let settings = PoolSettings {
        max_connections: 4,
        ..PoolSettings::default()
    };
    let db = Db::open_postgres(&pg.url(), "restart", &settings)
        .await
        .expect("database");
    sqlx::query("CREATE TABLE t (x BIGINT NOT NULL)")
        .execute(db.pool())
        .await
        .expect("table");
    // Every connection of the pool in use, so that none sits idle long enough to be checked.
    futures::future::try_join_all((0..4).map(|_| every_kind_of_use(&db)))
        .await
        .expect("all is well before the restart");

    pg.stop().await;
    for attempt in 0..20 {
        let started = Instant::now();
        let failed = every_kind_of_use(&db)
            .await
            .expect_err("the database is down");
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "attempt {attempt} failed only after {:?}",
            started.elapsed()
        );
        assert!(is_unavailable(&failed), "attempt {attempt}: {failed:?}");
        let problem = Problem::from(failed);
        assert_eq!((problem.status, problem.retry_after), (503, Some(1)));
    }

    pg.resume().await;
    let back = Instant::now();
    loop {
        // Several at once, so every connection the pool kept is used again.
        let uses = futures::future::join_all((0..4).map(|_| every_kind_of_use(&db))).await;
        if uses.iter().all(Result::is_ok) {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "still failing {:?} after the database returned: {uses:?}",
            back.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And it stays well: no dead connection is left to be handed out later.
    for _ in 0..20 {
        every_kind_of_use(&db).await.expect("recovered for good");
    }
    db.close().await;
}

/// A silent link to the database (a fault proxy holding every byte): `/readyz` answers 503
/// within its limit instead of waiting for the pool (an outside tester measured 10 s), and
/// answers 200 again once the link carries bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_503_within_its_limit_when_the_database_link_goes_silent() {
    use flotilla_testkit::fault_proxy::{Stream, Toxic, ToxicKind, fault_proxy};
    use tower::ServiceExt;
    let pg = PrivatePostgres::start().await;
    let link = fault_proxy(&format!("127.0.0.1:{}", pg.port())).await;
    let url = format!("postgres://postgres@{}", link.addr());
    let db = Db::open_postgres(&url, "ready", &PoolSettings::default())
        .await
        .expect("database");
    let probes = flotilla_chassis::health::routes("inventory", Some(db));
    let ready = || async {
        let request = axum::http::Request::get("/readyz")
            .body(axum::body::Body::empty())
            .expect("request");
        let started = Instant::now();
        let status = probes
            .clone()
            .oneshot(request)
            .await
            .expect("answer")
            .status();
        (status.as_u16(), started.elapsed())
    };
    assert_eq!(ready().await.0, 200);
    link.add_toxic(Toxic::new(ToxicKind::Timeout { timeout: 0 }).on(Stream::Downstream))
        .await
        .expect("toxic");
    let (status, took) = ready().await;
    assert_eq!(status, 503);
    assert!(
        took >= flotilla_chassis::health::READY_WITHIN
            && took < flotilla_chassis::health::READY_WITHIN + Duration::from_millis(400),
        "answered after {took:?}"
    );
    link.remove_toxic("timeout_downstream")
        .await
        .expect("removed");
    let back = Instant::now();
    while ready().await.0 != 200 {
        assert!(back.elapsed() < Duration::from_secs(10), "not ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
