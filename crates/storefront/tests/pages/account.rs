//! Signing up, logging in and out, and the refusal of cross-site form posts.

use crate::fleet::*;

#[tokio::test]
async fn signing_up_logs_in_and_bad_forms_come_back_with_their_message() {
    let shop = shop().await;
    let form = [
        ("name", "Ada Lovelace"),
        ("email", "ada@example.com"),
        ("password", "correct horse battery"),
    ];
    let res = shop.send(shop.post("/signup").form(&form)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let cookie = res.headers()[SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("flotilla_token=ey"), "{cookie}");
    assert!(cookie.contains("; HttpOnly; SameSite=Lax; Path=/; Max-Age="));

    let res = shop.send(shop.post("/signup").form(&form)).await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("already exists"));

    let short = [
        ("name", "Grace <Hopper>"),
        ("email", "grace@example.com"),
        ("password", "tiny"),
    ];
    let res = shop.send(shop.post("/signup").form(&short)).await;
    assert!(res.headers().get(SET_COOKIE).is_none());
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body.contains("Password must be at least 8 characters"),
        "{body}"
    );
    assert!(body.contains(r#"value="Grace &#60;Hopper&#62;""#));
    assert!(body.contains(r#"value="grace@example.com""#));
    assert!(!body.contains("tiny"));
}

/// "Add to cart" logged out leads to `/login?next=/product/...`; signing up from there landed
/// on `/`, because the sign-up link and form dropped `next`.
#[tokio::test]
async fn signing_up_from_the_login_page_comes_back_to_next_and_only_a_local_one() {
    let shop = shop().await;
    let (status, login) = shop.page("/login?next=/product/p0000983").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        login.contains(r#"href="/signup?next=/product/p0000983""#),
        "{login}"
    );

    let (status, signup) = shop.page("/signup?next=/product/p0000983").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        signup.contains(r#"name="next" value="/product/p0000983""#),
        "{signup}"
    );
    assert!(signup.contains(r#"href="/login?next=/product/p0000983""#));

    let form = [
        ("name", "Ada Lovelace"),
        ("email", "ada@example.com"),
        ("password", "correct horse battery"),
        ("next", "/product/p0000983"),
    ];
    let res = shop.send(shop.post("/signup").form(&form)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/product/p0000983");

    // A refused form keeps `next` for the next try.
    let res = shop.send(shop.post("/signup").form(&form)).await;
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains(r#"name="next" value="/product/p0000983""#));

    // Another site is never a destination, on the page or after the form.
    let (_, signup) = shop.page("/signup?next=//evil.example/").await;
    assert!(!signup.contains("evil.example"), "{signup}");
    let elsewhere = [
        ("name", "Mallory"),
        ("email", "mallory@example.com"),
        ("password", "correct horse battery"),
        ("next", "https://evil.example/"),
    ];
    let res = shop.send(shop.post("/signup").form(&elsewhere)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn logging_in_redirects_to_a_local_next_only() {
    let shop = shop().await;
    let signup = [
        ("name", "Linus"),
        ("email", "linus@example.com"),
        ("password", "penguins rule ok"),
    ];
    let res = shop.send(shop.post("/signup").form(&signup)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    let wrong = [
        ("email", "linus@example.com"),
        ("password", "not the password"),
        ("next", "/cart"),
    ];
    let (status, body) = read_html(shop.send(shop.post("/login").form(&wrong)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("Wrong email or password"));
    assert!(body.contains(r#"value="linus@example.com""#));
    assert!(!body.contains("not the password"));

    for (next, expected) in [
        ("/cart", "/cart"),
        ("//evil.example", "/"),
        ("https://evil.example", "/"),
    ] {
        let form = [
            ("email", "linus@example.com"),
            ("password", "penguins rule ok"),
            ("next", next),
        ];
        let res = shop.send(shop.post("/login").form(&form)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{next}");
        assert_eq!(location(&res), expected, "{next}");
        let cookie = res.headers()[SET_COOKIE].to_str().expect("ascii");
        assert!(cookie.starts_with("flotilla_token="));
    }

    let (_, body) = shop.page("/login?next=//evil.example").await;
    assert!(body.contains(r#"name="next" value="/""#));

    let res = shop.send(shop.post("/logout")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/");
    let cookie = res.headers()[SET_COOKIE].to_str().expect("ascii");
    assert!(cookie.starts_with("flotilla_token=;") && cookie.contains("Max-Age=0"));
}

#[tokio::test]
async fn cross_site_posts_are_refused() {
    let shop = shop().await;
    let res = shop
        .send(shop.post("/logout").header("sec-fetch-site", "cross-site"))
        .await;
    assert!(res.headers().get(SET_COOKIE).is_none());
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("Request refused"));

    let res = shop
        .send(
            shop.post("/logout")
                .header("origin", "https://evil.example")
                .header("host", "shop.example"),
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = shop
        .send(shop.post("/logout").header("sec-fetch-site", "same-origin"))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // A GET to a POST-only address is an HTML page too, not a bare 405.
    let (status, _) = shop.page("/logout").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
