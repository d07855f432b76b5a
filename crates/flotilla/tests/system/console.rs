//! The ops console at `/ops` (issue 14) in one process, through the gateway like a browser:
//! anonymous visitors are sent to the login page and customers refused, however the path is
//! spelled; an administrator sees a checkout's trace as a waterfall across the services and its
//! saga with its steps and keys; a form post without the session's token, or from another
//! site, changes nothing; a saga stuck at AUTHORIZE while payments is down, set aside for
//! review and retried from the console once payments is back, ends CONFIRMED; and dead-letter
//! actions reach the service, which audits them, with its refusals shown as they came.

use crate::chaos::post_fault;
use crate::checkout::{
    ADMIN_EMAIL, ADMIN_PASSWORD, add_to_cart, customer, login, terminal, traced_checkout,
    try_checkout,
};
use crate::support::{TestApp, spawn_app_with};
use serde_json::json;
use std::time::{Duration, Instant};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// A shop with an administrator whose saga steps retry long enough to be stuck, and whose
/// breakers let a probe through soon after a peer is back.
async fn ops_shop() -> TestApp {
    spawn_app_with(json!({
        "identity": {"admin_email": ADMIN_EMAIL, "admin_password": ADMIN_PASSWORD},
        "catalog": {"seed_products": 30},
        "inventory": {"seed_products": 30, "initial_stock": 5},
        "orders": {"respond_within_ms": 200, "step_attempts": 100},
        "resilience": {"breaker": {"open_wait_ms": 50}},
    }))
    .await
}

/// The session cookie of a bearer header value (`Bearer <token>`).
fn cookie(bearer: &str) -> String {
    format!(
        "flotilla_token={}",
        bearer.strip_prefix("Bearer ").unwrap_or(bearer)
    )
}

/// `GET path` with `cookie` (none when empty): status, `location`, body.
async fn page(app: &TestApp, path: &str, cookie: &str) -> (u16, String, String) {
    let mut req = app.http.get(format!("{}{path}", app.base));
    if !cookie.is_empty() {
        req = req.header("cookie", cookie);
    }
    let res = req.send().await.expect("page");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, location, res.text().await.unwrap_or_default())
}

/// The form token on a console page.
fn form_token(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    html[at..].split('"').next().expect("token").to_owned()
}

/// `POST path` with `form` as a browser on this origin would send it: the answer's status and
/// the flash it leaves (`ok=…` or `refused=…`, decoded), if any.
async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    origin: &str,
) -> (u16, String) {
    let res = app
        .http
        .post(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .header("origin", origin)
        .header(
            "sec-fetch-site",
            if origin == app.base {
                "same-origin"
            } else {
                "cross-site"
            },
        )
        .form(form)
        .send()
        .await
        .expect("post");
    let status = res.status().as_u16();
    let flash = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("flotilla_ops_flash="))
        .and_then(|v| v.split(';').next())
        .map(url_decode)
        .unwrap_or_default();
    (status, flash)
}

/// `text` with `+` and `%XX` decoded (a form-encoded value).
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_console_is_for_administrators_however_its_path_is_spelled() {
    let app = ops_shop().await;
    let shopper = cookie(&customer(&app.http, &app.base).await);
    let admin = cookie(&login(&app.http, &app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    for path in [
        "/ops",
        "/ops/traces",
        "/OPS/sagas",
        "/%6fps/traces",
        "/x/../ops",
    ] {
        let (status, location, _) = page(&app, path, "").await;
        assert_eq!(status, 303, "anonymous {path}");
        assert!(
            location.starts_with("/login?next=/ops"),
            "{path}: {location}"
        );
        let (status, _, body) = page(&app, path, &shopper).await;
        assert_eq!(status, 403, "customer {path}");
        assert!(
            !body.contains("Flotilla ops"),
            "{path}: no console for a customer"
        );
    }
    let (status, location, _) = page(&app, "/ops/sagas?status=running", "").await;
    assert_eq!(
        (status, location.as_str()),
        (303, "/login?next=/ops/sagas%3Fstatus%3Drunning")
    );
    // A customer's form post is refused before the console sees it.
    let res = app
        .http
        .post(format!("{}/ops/sagas/ord_x/retry", app.base))
        .header("cookie", &shopper)
        .form(&[("csrf", "x")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 403);
    let (status, _, body) = page(&app, "/ops/traces", &admin).await;
    assert_eq!(status, 200);
    assert!(body.contains("Flotilla ops") && body.contains("<h1>Traces</h1>"));
}

#[tokio::test]
async fn an_admin_sees_a_checkouts_waterfall_and_its_saga() {
    let app = ops_shop().await;
    let (http, base) = (&app.http, app.base.as_str());
    let ada = customer(http, base).await;
    let admin = cookie(&login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    add_to_cart(http, base, &ada, "p0000003", 1).await;
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let order = traced_checkout(http, base, &ada, "console-1", &traceparent).await;
    let id = order["id"].as_str().expect("order id").to_owned();
    terminal(http, base, &ada, &id, Duration::from_secs(10)).await;

    // The waterfall, once the event's consumers have recorded their spans.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (status, _, body) = page(&app, &format!("/ops/traces/{TRACE}"), &admin).await;
        if status == 200 && body.contains(">notifications</span>") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "trace incomplete: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for service in [
        "gateway",
        "orders",
        "inventory",
        "payments",
        "shipping",
        "notifications",
    ] {
        assert!(
            body.contains(&format!("c-{service}\">{service}</span>")),
            "{service} in the waterfall"
        );
    }
    assert!(body.contains("<svg class=\"wf-bar\""), "bars drawn");
    assert!(body.contains("<details class=\"wf-row"), "spans expandable");
    assert!(body.contains("saga forward AUTHORIZE") || body.contains("AUTHORIZE"));
    assert!(
        body.contains(&format!("/ops/sagas/{id}")),
        "linked to its saga"
    );
    // Listed, and found by its path.
    let (_, _, list) = page(
        &app,
        "/ops/traces?route=%2Fapi%2Forders&service=orders",
        &admin,
    )
    .await;
    assert!(list.contains(&format!("/ops/traces/{TRACE}")), "{list}");

    // Its saga: finished, every forward step with its time and key.
    let (status, _, saga) = page(&app, &format!("/ops/sagas/{id}"), &admin).await;
    assert_eq!(status, 200, "{saga}");
    assert!(saga.contains("confirmed"));
    for step in ["RESERVE", "AUTHORIZE", "SHIP", "CAPTURE", "COMMIT"] {
        assert!(saga.contains(&format!("<td>{step}</td>")), "{step}");
    }
    assert!(
        saga.contains(&format!("{id}:authorize")),
        "the payment's key"
    );
    let (_, _, sagas) = page(&app, "/ops/sagas", &admin).await;
    assert!(sagas.contains(&id));

    // The services: every one ready, and the checkout's calls on the map and in the table.
    let (status, _, services) = page(&app, "/ops/services", &admin).await;
    assert_eq!(status, 200);
    assert_eq!(
        services
            .matches("<span class=\"good\">ready</span>")
            .count(),
        8,
        "{services}"
    );
    assert!(
        services.contains("<tr><td>orders</td><td>payments</td>"),
        "{services}"
    );
    assert!(services.contains("<svg class=\"map\""), "the call map");
    assert!(services.contains("<polyline points="), "a RED chart");
    // And the mailbox: the confirmation notifications sent.
    let (_, _, mailbox) = page(&app, "/ops/mailbox", &admin).await;
    assert!(
        mailbox.contains(&format!("Your order {id} is confirmed")),
        "{mailbox}"
    );
}

#[tokio::test]
async fn a_stuck_saga_is_set_aside_then_retried_from_the_console_and_forms_need_the_token() {
    let app = ops_shop().await;
    let (http, base) = (&app.http, app.base.as_str());
    let bearer = login(http, base, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = cookie(&bearer);
    let ada = customer(http, base).await;
    add_to_cart(http, base, &ada, "p0000004", 1).await;
    post_fault(
        http,
        base,
        "payments",
        &bearer,
        json!({"status": 503, "for_secs": 600}),
    )
    .await;
    let (status, order) = try_checkout(http, base, &ada, "stuck-1", "4242424242424242")
        .await
        .expect("checkout");
    assert_eq!(status, 202, "{order}");
    let id = order["id"].as_str().expect("order id").to_owned();
    let saga_page = format!("/ops/sagas/{id}");
    let (_, _, html) = page(&app, &saga_page, &admin).await;
    let token = form_token(&html);

    // Without the session's token, or from another site, nothing happens.
    let review = format!("{saga_page}/review");
    let (status, flash) = post_form(&app, &review, &admin, &[("note", "no token")], base).await;
    assert_eq!(status, 303);
    assert!(flash.starts_with("refused="), "{flash}");
    let (status, _) = post_form(
        &app,
        &review,
        &admin,
        &[("csrf", &token), ("note", "cross-site")],
        "http://evil.example",
    )
    .await;
    assert_eq!(status, 403, "a cross-site post");
    let (_, _, html) = page(&app, &saga_page, &admin).await;
    assert!(
        !html.contains("no token") && !html.contains("cross-site"),
        "nothing audited"
    );

    // Set aside (refused while the executor holds the saga between attempts; asked again).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, flash) = post_form(
            &app,
            &review,
            &admin,
            &[("csrf", &token), ("note", "payments is down")],
            base,
        )
        .await;
        assert_eq!(status, 303);
        if flash.starts_with("ok=") {
            break;
        }
        assert!(Instant::now() < deadline, "never set aside: {flash}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, _, html) = page(&app, &saga_page, &admin).await;
    assert!(
        html.contains("set aside") && html.contains("payments is down"),
        "{html}"
    );
    assert!(html.contains("saga.review"), "audited");

    // Payments back; the console's retry finishes it.
    let res = http
        .delete(format!("{base}/api/payments/admin/faults"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("clear faults");
    assert!(res.status().is_success());
    let (status, flash) = post_form(
        &app,
        &format!("{saga_page}/retry"),
        &admin,
        &[("csrf", &token)],
        base,
    )
    .await;
    assert_eq!(status, 303);
    assert!(flash.starts_with("ok=Retry accepted"), "{flash}");
    let done = terminal(http, base, &ada, &id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "CONFIRMED", "{done}");
    let (_, _, html) = page(&app, &saga_page, &admin).await;
    assert!(html.contains("saga.retry"), "the retry audited");
    // Shown once: the flash cookie is cleared by the page that shows it.
    let res = http
        .get(format!("{base}{saga_page}"))
        .header(
            "cookie",
            format!("{admin}; flotilla_ops_flash=ok=Retry+accepted"),
        )
        .send()
        .await
        .expect("page");
    let cleared = res.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str()
            .unwrap_or_default()
            .starts_with("flotilla_ops_flash=;")
    });
    assert!(cleared);
    assert!(
        res.text()
            .await
            .unwrap_or_default()
            .contains("Retry accepted")
    );
}

#[tokio::test]
async fn dead_letter_actions_reach_the_service_and_say_how_they_came_out() {
    let app = ops_shop().await;
    let admin = cookie(&login(&app.http, &app.base, ADMIN_EMAIL, ADMIN_PASSWORD).await);
    let base = app.base.clone();
    let list = "/ops/dead-letters?service=notifications";
    let (status, _, html) = page(&app, list, &admin).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("notifications <span class=\"muted\">· 0 parked"),
        "{html}"
    );
    assert!(
        html.contains("audit trail"),
        "one service: its audit trail too"
    );
    // One service shown: its replay-all form is there even with nothing parked.
    let token = form_token(&html);

    // Replaying an event that is not parked: the service's 404, in the flash.
    let (status, flash) = post_form(
        &app,
        "/ops/dead-letters/notifications/evt_nope/replay",
        &admin,
        &[("csrf", &token)],
        &base,
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        flash.starts_with("refused=") && flash.contains("404"),
        "{flash}"
    );
    // Discarding without a reason: the service's 422.
    let (_, flash) = post_form(
        &app,
        "/ops/dead-letters/notifications/evt_nope/discard",
        &admin,
        &[("csrf", &token), ("reason", "  ")],
        &base,
    )
    .await;
    assert!(
        flash.starts_with("refused=") && flash.contains("422"),
        "{flash}"
    );
    // Replaying a batch of none: done, with its counts; audited by the service.
    let (_, flash) = post_form(
        &app,
        "/ops/dead-letters/notifications/replay-all",
        &admin,
        &[("csrf", &token), ("limit", "5")],
        &base,
    )
    .await;
    assert!(
        flash.starts_with("ok=Replayed on notifications: 0 handled"),
        "{flash}"
    );
    let (_, _, html) = page(&app, list, &admin).await;
    assert!(html.contains("dead_letter.replay_all"), "audited: {html}");
    // A service that keeps no dead letters is refused before any call.
    let (_, flash) = post_form(
        &app,
        "/ops/dead-letters/gateway/replay-all",
        &admin,
        &[("csrf", &token), ("limit", "5")],
        &base,
    )
    .await;
    assert!(
        flash.starts_with("refused=Refused: no such service"),
        "{flash}"
    );
}
