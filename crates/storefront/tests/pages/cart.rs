//! The cart: login required, adding, changing and removing lines, and refusals as notices.

use crate::fleet::*;

#[tokio::test]
async fn the_cart_needs_a_login() {
    let shop = shop().await;
    let res = shop.send(shop.fleet.get("storefront", "/cart")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/login?next=/cart");

    let product = shop.some_product().await;
    let product_id = product.id.to_string();
    let form = [("product_id", product_id.as_str()), ("quantity", "1")];
    let res = shop.send(shop.post("/cart/items").form(&form)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        format!("/login?next=/product/{}", product.id)
    );
}

#[tokio::test]
async fn adding_to_the_cart_accumulates_and_shows_the_total() {
    let shop = shop().await;
    let product = shop.some_product().await;
    let product_id = product.id.to_string();
    let user = "user-1";
    for quantity in ["2", "1"] {
        let form = [("product_id", product_id.as_str()), ("quantity", quantity)];
        let res = shop
            .send(shop.as_user(Method::POST, "/cart/items", user).form(&form))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(location(&res), "/cart");
    }
    let (status, body) = shop.page_as(user, "/cart").await;
    assert_eq!(status, StatusCode::OK);
    let total = Money {
        amount_minor: product.price.amount_minor * 3,
        currency: product.price.currency,
    };
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains(r#"name="quantity" value="3""#));
    assert!(
        body.contains(&format!("Total <span class=\"price\">{total}</span>")),
        "{body}"
    );
    assert!(body.contains("Cart (3)"));
    assert!(body.contains(&format!(r#"action="/cart/items/{}/remove""#, product.id)));

    // A quantity that is not a number: the product page again, with the reason.
    let form = [("product_id", product_id.as_str()), ("quantity", "lots")];
    let res = shop
        .send(shop.as_user(Method::POST, "/cart/items", user).form(&form))
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Please enter a whole number."));
    assert!(body.contains(&escaped(&product.name)));

    // An unknown product: the cart again, with the reason.
    let form = [("product_id", "p9999999"), ("quantity", "1")];
    let res = shop
        .send(shop.as_user(Method::POST, "/cart/items", user).form(&form))
        .await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("not in our catalog"));

    // Too many, via the line's own form.
    let path = format!("/cart/items/{}", product.id);
    let res = shop
        .send(
            shop.as_user(Method::POST, &path, user)
                .form(&[("quantity", "100")]),
        )
        .await;
    assert_eq!(read_html(res).await.0, StatusCode::UNPROCESSABLE_ENTITY);

    let res = shop
        .send(
            shop.as_user(Method::POST, &path, user)
                .form(&[("quantity", "5")]),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, body) = shop.page_as(user, "/cart").await;
    assert!(body.contains(r#"name="quantity" value="5""#));

    let res = shop
        .send(shop.as_user(Method::POST, &format!("{path}/remove"), user))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let (_, body) = shop.page_as(user, "/cart").await;
    assert!(body.contains("Your cart is empty"));
    assert!(body.contains("Cart (0)"));
}
