//! The chassis's request limits, met on a page: an oversized form post and a page that takes
//! too long answer HTML error pages, not the problem+json the services' API callers get.

use std::time::Duration;

use flotilla_chassis::Limits;

use crate::fleet::*;

/// The storefront alone (no page here needs another service to answer).
async fn storefront_with(limits: Limits) -> Shop {
    shop_with(&[flotilla_storefront::SPEC], Some(limits)).await
}

#[tokio::test]
async fn an_oversized_form_post_gets_an_html_413_page() {
    let limits = Limits {
        body_bytes: 1024,
        ..Limits::default()
    };
    let shop = storefront_with(limits).await;
    let password = "x".repeat(4096);
    let res = shop
        .send(
            shop.post("/login")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(format!("email=ada%40example.com&password={password}")),
        )
        .await;
    let security = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let (status, html) = read_html(res).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(html.contains("larger than this shop accepts"), "{html}");
    assert!(security.is_some_and(|csp| csp.contains("default-src 'none'")));

    // A small post still reaches the page (the limit is the only thing in the way above).
    let res = shop
        .send(
            shop.post("/login")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("email=ada%40example.com&password=short"),
        )
        .await;
    assert_ne!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_page_that_times_out_gets_an_html_page() {
    use flotilla_chassis::clock::SystemClock;
    use flotilla_chassis::transport::Peers;
    use flotilla_chassis::transport::in_process::InProcessRegistry;
    use flotilla_chassis::trust::TrustPolicy;
    use std::sync::Arc;

    // A catalog that never answers: the home page waits on it (for far longer than its own
    // 2 s deadline for optional calls) until the storefront's request timeout ends the wait.
    let registry = InProcessRegistry::default();
    registry.register(
        flotilla_catalog::NAME,
        axum::Router::new().fallback(std::future::pending::<()>),
    );
    let ctx = flotilla_chassis::ServiceContext::new(
        flotilla_storefront::NAME,
        figment::Figment::new(),
        None,
        Peers::new(registry.clone(), std::collections::HashMap::new()),
        Arc::new(SystemClock),
        tokio_util::sync::CancellationToken::new(),
    );
    let service = flotilla_storefront::service(ctx).await.expect("start");
    let limits = Limits {
        request_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let trust = TrustPolicy {
        credentials: None,
        require_credential: false,
    };
    let (router, _openapi, _tasks) = service.into_parts(limits, trust);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let res = reqwest::get(format!("http://{addr}/")).await.expect("page");
    let (status, html) = read_html(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(html.contains("right back"), "{html}");
}

#[tokio::test]
async fn api_callers_of_other_services_still_get_problems() {
    let limits = Limits {
        body_bytes: 16,
        ..Limits::default()
    };
    let shop = shop_with(&[flotilla_catalog::SPEC], Some(limits)).await;
    let res = shop
        .send(
            shop.fleet
                .request(Method::POST, "catalog", "/products/lookup")
                .header(CONTENT_TYPE, "application/json")
                .body(format!("{{\"ids\":[\"{}\"]}}", "p0000001".repeat(10))),
        )
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(res.headers()[CONTENT_TYPE], "application/problem+json");
}

/// A page whose deadline ran out before it could be answered: the chassis refuses it before the
/// handler runs, and the visitor gets the shop's error page (before: 504 problem+json).
#[tokio::test]
async fn a_page_whose_deadline_ran_out_gets_an_html_504_page() {
    let shop = storefront_with(Limits::default()).await;
    let res = shop
        .send(
            shop.storefront()
                .get("/")
                .header("x-flotilla-deadline-ms", "0"),
        )
        .await;
    let security = res
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let (status, html) = read_html(res).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(html.contains("right back"), "{html}");
    assert!(security.is_some_and(|csp| csp.contains("default-src 'none'")));
}
