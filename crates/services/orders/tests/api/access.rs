//! Who sees what (RELIABILITY S1, S2): a user sees only their own orders, another user's order
//! is a 404 like an id that does not exist; the admin views need the admin role. And the typed
//! client, over real HTTP, as the storefront uses it.

use axum::http::{Method, StatusCode};
use flotilla_chassis::pagination::{Page, PageParams};
use flotilla_chassis::{Caller, Role};
use flotilla_orders::client::OrdersClient;
use flotilla_orders::contract::{CheckoutRequest, Order, OrderStatus, OrdersSummary, SagaView};

use crate::harness::{App, DECLINED_CARD, GOOD_CARD, body, expect_json, expect_problem, send};

#[tokio::test]
async fn users_see_only_their_own_orders() {
    let app = App::start().await;
    app.fill_cart("alice", &[(1, 1)]).await;
    let order = app.checkout("alice", "a", &body(GOOD_CARD, "10117")).await;
    app.settled("alice", &order.id).await;

    expect_problem(app.get_order("bob", &order.id).await, StatusCode::NOT_FOUND).await;
    let unknown = "ord_00000000000000000000000000000000";
    let not_found =
        expect_problem(app.get_order("bob", unknown).await, StatusCode::NOT_FOUND).await;
    let forbidden =
        expect_problem(app.get_order("bob", &order.id).await, StatusCode::NOT_FOUND).await;
    assert_eq!(
        not_found.detail, forbidden.detail,
        "indistinguishable from an unknown id"
    );
    expect_problem(app.get_order("bob", "admin").await, StatusCode::NOT_FOUND).await;

    let bobs: Page<Order> = expect_json(
        send(app.as_user(Method::GET, "orders", "/", "bob")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(bobs.total, 0);
    assert!(bobs.items.is_empty());
    let alices: Page<Order> = expect_json(
        send(app.as_user(Method::GET, "orders", "/", "alice")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        alices
            .items
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        [order.id.as_str()]
    );
    let too_big = send(app.as_user(Method::GET, "orders", "/?page_size=101", "alice")).await;
    expect_problem(too_big, StatusCode::BAD_REQUEST).await;

    // Admins may read any order.
    assert_eq!(app.order("admin-1", &order.id).await.id, order.id);
    let anonymous = send(app.fleet.get("orders", &format!("/{}", order.id))).await;
    expect_problem(anonymous, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn lists_are_newest_first_and_paged() {
    let app = App::start().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        app.fill_cart("carol", &[(11 + i, 1)]).await;
        let order = app
            .checkout("carol", &format!("k{i}"), &body(GOOD_CARD, "10117"))
            .await;
        app.settled("carol", &order.id).await;
        // The next checkout is of the next cart: the cart has taken this order's lines out.
        app.wait_for_empty_cart("carol").await;
        ids.push(order.id);
        app.clock.advance(1_000);
    }
    let page: Page<Order> = expect_json(
        send(app.as_user(Method::GET, "orders", "/?page=1&page_size=2", "carol")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page.total, 3);
    assert_eq!(
        page.items.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        [ids[2].clone(), ids[1].clone()]
    );
    let page: Page<Order> = expect_json(
        send(app.as_user(Method::GET, "orders", "/?page=2&page_size=2", "carol")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page.items[0].id, ids[0]);
}

#[tokio::test]
async fn admin_views_need_the_admin_role() {
    let app = App::start().await;
    app.fill_cart("dave", &[(2, 1)]).await;
    let good = app.checkout("dave", "a", &body(GOOD_CARD, "10117")).await;
    app.fill_cart("erin", &[(3, 1)]).await;
    let bad = app
        .checkout("erin", "b", &body(DECLINED_CARD, "10117"))
        .await;
    app.settled("dave", &good.id).await;
    app.settled("erin", &bad.id).await;

    for path in [
        "/admin/sagas",
        "/admin/sagas/x",
        "/admin/orders",
        "/admin/summary",
    ] {
        expect_problem(
            send(app.as_user(Method::GET, "orders", path, "dave")).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let admin = |path: &str| app.as_user(Method::GET, "orders", path, "admin-1");

    let done: Page<SagaView> = expect_json(
        send(admin("/admin/sagas?status=done")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(done.total, 2);
    let running: Page<SagaView> = expect_json(
        send(admin("/admin/sagas?status=running")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(running.total, 0);
    expect_problem(
        send(admin("/admin/sagas?status=weird")).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let saga: SagaView = expect_json(
        send(admin(&format!("/admin/sagas/{}", bad.id))).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(saga.step, "CANCEL");
    assert!(saga.failure.unwrap_or_default().contains("card declined"));
    expect_problem(
        send(admin("/admin/sagas/ord_nope")).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let cancelled: Page<Order> = expect_json(
        send(admin("/admin/orders?status=CANCELLED")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        cancelled
            .items
            .iter()
            .map(|o| o.id.as_str())
            .collect::<Vec<_>>(),
        [bad.id.as_str()]
    );
    let summary: OrdersSummary =
        expect_json(send(admin("/admin/summary")).await, StatusCode::OK).await;
    let confirmed_total = app.order("dave", &good.id).await.total.amount_minor;
    assert_eq!(
        summary,
        OrdersSummary {
            pending: 0,
            confirmed: 1,
            cancelled: 1,
            confirmed_total_minor: confirmed_total
        }
    );
}

#[tokio::test]
async fn the_typed_client_checks_out_and_reads_back() {
    let app = App::start().await;
    let client = OrdersClient::new(app.fleet.transport("orders"));
    let frank = Caller {
        user_id: "frank".into(),
        role: Role::Customer,
    };
    app.fill_cart("frank", &[(9, 3)]).await;
    let req: CheckoutRequest = serde_json::from_value(body(GOOD_CARD, "10117")).expect("request");
    assert!(
        !format!("{req:?}").contains("4242"),
        "Debug redacts the card"
    );

    let placed = client
        .checkout(&frank, "client-key", &req)
        .await
        .expect("checkout");
    let again = client
        .checkout(&frank, "client-key", &req)
        .await
        .expect("repeat");
    assert_eq!(placed.id, again.id);
    let order = app.settled("frank", &placed.id).await;
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(client.order(&frank, &order.id).await.expect("order"), order);
    let page = client
        .list(&frank, PageParams::default())
        .await
        .expect("list");
    assert_eq!(page.items, [order]);
    let stranger = Caller {
        user_id: "grace".into(),
        role: Role::Customer,
    };
    let err = client
        .order(&stranger, &placed.id)
        .await
        .expect_err("not hers");
    assert!(err.is_not_found());
    assert_eq!(
        client
            .summary(&frank)
            .await
            .expect_err("customers")
            .status(),
        Some(StatusCode::FORBIDDEN)
    );
    let admin = Caller {
        user_id: "admin-1".into(),
        role: Role::Admin,
    };
    assert_eq!(client.summary(&admin).await.expect("summary").confirmed, 1);
}
