//! Checkout, the order page and the order history: login required, the form and its
//! idempotency key, orders confirmed and cancelled by the saga, refused forms, other users'
//! orders, and cross-site posts.

use crate::fleet::*;
use std::time::{Duration, Instant};

/// The test card that pays.
const GOOD_CARD: &str = "4242424242424242";
/// The test card the provider declines.
const DECLINED_CARD: &str = "4000000000000002";

/// Puts two of a product into `user`'s cart with the product page's form.
async fn fill_cart(shop: &Shop, user: &str) -> Product {
    let product = shop.some_product().await;
    let product_id = product.id.to_string();
    let form = [("product_id", product_id.as_str()), ("quantity", "2")];
    let res = shop
        .send(shop.as_user(Method::POST, "/cart/items", user).form(&form))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    product
}

/// The idempotency key of the checkout form in `body`.
fn idempotency_key(body: &str) -> String {
    let marker = r#"name="idempotency_key" value=""#;
    let start = body.find(marker).expect("an idempotency key") + marker.len();
    let len = body[start..].find('"').expect("end of the key");
    body[start..start + len].to_owned()
}

/// A filled-in checkout form with `key` and `card`.
fn checkout_form<'a>(key: &'a str, card: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("idempotency_key", key),
        ("name", "Ada Lovelace"),
        ("line1", "Unter den Linden 1"),
        ("city", "Berlin"),
        ("postal_code", "10117"),
        ("country", "DE"),
        ("card_number", card),
    ]
}

/// The checkout form's key for `user`, read from the page as a browser would.
async fn form_key(shop: &Shop, user: &str) -> String {
    let (status, body) = shop.page_as(user, "/checkout").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    idempotency_key(&body)
}

/// Posts the checkout form and returns where it redirects to.
async fn place(shop: &Shop, user: &str, form: &[(&str, &str)]) -> String {
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", user).form(form))
        .await;
    let status = res.status();
    let target = res
        .headers()
        .get(LOCATION)
        .map(|l| l.to_str().expect("ascii").to_owned());
    assert_eq!(status, StatusCode::SEE_OTHER, "{:?}", res.text().await);
    target.expect("a redirect")
}

/// The order page at `path` once the order is confirmed or cancelled. The page refreshes
/// itself while pending, and so does this loop, with a deadline.
async fn settled(shop: &Shop, user: &str, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = shop.page_as(user, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if !body.contains(r#"<meta http-equiv="refresh" content="2">"#) {
            assert!(!body.contains("We're processing your order"));
            return body;
        }
        assert!(body.contains("We're processing your order"), "{body}");
        assert!(body.contains(&format!(r#"<a href="{path}">Refresh</a>"#)));
        assert!(Instant::now() < deadline, "the order never settled: {body}");
        // A browser waits two seconds; the test polls faster, but not in a busy loop.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn checkout_needs_a_login_and_shows_the_form_with_a_fresh_key() {
    let shop = shop_with_orders().await;
    let res = shop.send(shop.fleet.get("storefront", "/checkout")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=/checkout");
    let res = shop.send(shop.fleet.get("storefront", "/orders")).await;
    assert_eq!(location(&res), "/login?next=/orders");

    let user = "shopper";
    let (status, body) = shop.page_as(user, "/checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Your cart is empty"), "{body}");
    assert!(!body.contains("idempotency_key"));
    assert!(body.contains(r#"<a href="/orders">Orders</a>"#));

    let product = fill_cart(&shop, user).await;
    let (_, cart) = shop.page_as(user, "/cart").await;
    assert!(cart.contains(r#"href="/checkout">Checkout</a>"#));

    let (status, body) = shop.page_as(user, "/checkout").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains(r#"<form class="stacked" method="post" action="/checkout">"#));
    let key = idempotency_key(&body);
    assert_eq!(key.len(), 36, "{key}");
    assert!(body.contains(r#"<option value="DE" selected>Germany</option>"#));
    assert!(body.contains("Shipping to Germany"), "{body}");
    for help in [
        "4242 4242 4242 4242",
        "4000 0000 0000 0002",
        "4000 0000 0000 9995",
        "4000 0000 0000 0341",
        "00000",
    ] {
        assert!(body.contains(help), "{help}");
    }
    assert_ne!(
        form_key(&shop, user).await,
        key,
        "each form gets its own key"
    );
}

#[tokio::test]
async fn a_good_card_confirms_one_order_however_often_the_form_is_posted() {
    let shop = shop_with_orders().await;
    let user = "buyer";
    let product = fill_cart(&shop, user).await;
    let key = form_key(&shop, user).await;
    let form = checkout_form(&key, GOOD_CARD);
    let path = place(&shop, user, &form).await;
    assert!(path.starts_with("/orders/ord_"), "{path}");
    assert_eq!(
        place(&shop, user, &form).await,
        path,
        "same key, same order"
    );

    let body = settled(&shop, user, &path).await;
    assert!(body.contains("Thank you for your order"), "{body}");
    assert!(body.contains(r#"<span class="status confirmed">Confirmed</span>"#));
    assert!(body.contains(r#"<strong class="tracking">FLT"#), "{body}");
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains("Ada Lovelace") && body.contains("Germany"));
    assert!(!body.contains(GOOD_CARD) && !body.contains("4242 4242"));

    let (status, history) = shop.page_as(user, "/orders").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        history.contains(&format!(r#"<a href="{path}">"#)),
        "{history}"
    );
    assert!(history.contains("1 order,"));
    assert!(history.contains(">Confirmed</span>"));

    let (status, body) = shop.page_as("someone-else", &path).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"));
    let (_, others) = shop.page_as("someone-else", "/orders").await;
    assert!(others.contains("You have not ordered anything yet"));
    let res = shop.send(shop.fleet.get("storefront", &path)).await;
    assert_eq!(location(&res), format!("/login?next={path}"));
    let (status, _) = shop
        .page_as(user, "/orders/ord_00000000000000000000000000000000")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_declined_card_cancels_the_order_with_its_reason() {
    let shop = shop_with_orders().await;
    let user = "unlucky";
    fill_cart(&shop, user).await;
    let key = form_key(&shop, user).await;
    let path = place(&shop, user, &checkout_form(&key, DECLINED_CARD)).await;
    let body = settled(&shop, user, &path).await;
    assert!(
        body.contains(r#"<span class="status cancelled">Cancelled</span>"#),
        "{body}"
    );
    assert!(body.contains("Your order was cancelled."));
    let id = path.trim_start_matches("/orders/");
    let order: flotilla_orders::contract::Order = shop
        .fleet
        .as_user(
            Method::GET,
            "orders",
            &format!("/{id}"),
            user,
            Role::Customer,
        )
        .send()
        .await
        .expect("orders")
        .json()
        .await
        .expect("an order");
    let reason = order.reason.expect("a cancelled order says why");
    assert!(reason.to_lowercase().contains("declined"), "{reason}");
    assert!(body.contains(&escaped(&reason)), "{reason}: {body}");
    let (_, cart) = shop.page_as(user, "/cart").await;
    assert!(
        !cart.contains("Your cart is empty"),
        "a cancelled order leaves the cart"
    );
}

#[tokio::test]
async fn refused_forms_come_back_with_their_messages_but_never_the_card() {
    let shop = shop_with_orders().await;
    let user = "typo";
    fill_cart(&shop, user).await;
    let key = form_key(&shop, user).await;
    let mut form = checkout_form(&key, GOOD_CARD);
    form[4] = ("postal_code", "10117!");
    form[1] = ("name", "Grace <Hopper>");
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", user).form(&form))
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Postal code must be"), "{body}");
    assert!(body.contains(r#"value="Grace &#60;Hopper&#62;""#));
    assert!(body.contains(r#"value="10117!""#));
    assert!(body.contains(r#"value="Unter den Linden 1""#));
    assert!(!body.contains(GOOD_CARD));
    assert_ne!(idempotency_key(&body), key, "a refused form gets a new key");

    // A card number orders refuses: its message stands next to the card field.
    let form = checkout_form(&key, "1234");
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", user).form(&form))
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("A card number has 12 to 19 digits"), "{body}");
    assert!(!body.contains(r#"value="1234""#));

    // A post without the form's key is not the form's.
    let form = checkout_form("", GOOD_CARD);
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", user).form(&form))
        .await;
    assert_eq!(read_html(res).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn checking_out_an_empty_cart_shows_the_cart() {
    let shop = shop_with_orders().await;
    let form = checkout_form("3f1c7a52-8a3e-4c1e-9a57-2b1f0d4c6e11", GOOD_CARD);
    let res = shop
        .send(shop.as_user(Method::POST, "/checkout", "empty").form(&form))
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("nothing to check out"), "{body}");
    assert!(body.contains("<h1>Your cart</h1>"));
}

#[tokio::test]
async fn cross_site_checkouts_are_refused() {
    let shop = shop_with_orders().await;
    let user = "victim";
    fill_cart(&shop, user).await;
    let key = form_key(&shop, user).await;
    let res = shop
        .send(
            shop.as_user(Method::POST, "/checkout", user)
                .header("sec-fetch-site", "cross-site")
                .form(&checkout_form(&key, GOOD_CARD)),
        )
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Request refused"));
    let (_, history) = shop.page_as(user, "/orders").await;
    assert!(history.contains("You have not ordered anything yet"));
}

#[tokio::test]
async fn two_checkout_tabs_submitted_together_place_one_order() {
    let shop = shop_with_orders().await;
    let user = "two-tabs";
    fill_cart(&shop, user).await;
    let (first, second) = (form_key(&shop, user).await, form_key(&shop, user).await);
    assert_ne!(first, second, "each tab has its own key");
    let post = |key: &str| {
        let form = checkout_form(key, GOOD_CARD);
        shop.send(shop.as_user(Method::POST, "/checkout", user).form(&form))
    };
    let (a, b) = tokio::join!(post(&first), post(&second));
    let mut placed = 0;
    for res in [a, b] {
        if res.status() == StatusCode::SEE_OTHER {
            assert!(location(&res).starts_with("/orders/ord_"));
            placed += 1;
            continue;
        }
        // The other tab lands on the cart with a word on what happened.
        let (status, body) = read_html(res).await;
        assert!(
            status == StatusCode::CONFLICT || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{status} {body}"
        );
        assert!(body.contains("<h1>Your cart</h1>"), "{body}");
        assert!(
            body.contains("already being checked out")
                || body.contains("changed while it was being checked out")
                || body.contains("nothing to check out"),
            "{body}"
        );
    }
    assert_eq!(placed, 1, "one cart, one order");
}
