//! Browsing: the home page, categories, search, product pages and the stylesheet.

use crate::fleet::*;

#[tokio::test]
async fn home_shows_featured_products_and_the_stylesheet() {
    let shop = shop().await;
    let featured: Vec<Product> = shop.catalog("/featured?limit=8").await;
    assert!(!featured.is_empty());
    let res = shop.send(shop.fleet.get("storefront", "/")).await;
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let (status, body) = read_html(res).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(r#"<link rel="stylesheet" href="/static/style.css">"#));
    for product in &featured {
        assert!(body.contains(&escaped(&product.name)), "{}", product.name);
        assert!(body.contains(&format!("/product/{}", product.id)));
    }
    assert!(body.contains("Log in") && body.contains("Sign up"));
    assert!(!body.contains(NOTICE));
    let categories: Vec<Category> = shop.catalog("/categories").await;
    assert!(body.contains(&format!(r#"href="/category/{}""#, categories[0].slug)));
}

#[tokio::test]
async fn category_pages_list_products_with_paging() {
    let shop = shop().await;
    let categories: Vec<Category> = shop.catalog("/categories").await;
    let category = categories
        .iter()
        .find(|c| c.product_count > u64::from(PAGE_SIZE))
        .expect("a category with more than one page");
    let first: Page<Product> = shop
        .catalog(&format!(
            "/products?category={}&page_size={PAGE_SIZE}",
            category.slug
        ))
        .await;
    let (status, body) = shop.page(&format!("/category/{}", category.slug)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&category.name)));
    for product in &first.items {
        assert!(body.contains(&escaped(&product.name)), "{}", product.name);
    }
    assert!(body.contains(&format!("Page 1 of {}", first.pages())));
    assert!(body.contains(r#"href="?page=2""#));

    let (status, body) = shop
        .page(&format!("/category/{}?page=2", category.slug))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("Page 2 of {}", first.pages())));
    assert!(body.contains(r#"href="?page=1""#));

    let (status, body) = shop.page("/category/no-such-category").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"));
}

#[tokio::test]
async fn search_finds_products_by_a_word_of_their_name() {
    let shop = shop().await;
    let product = shop.some_product().await;
    let word = product
        .name
        .split_whitespace()
        .max_by_key(|w| w.len())
        .expect("a word");
    let (status, body) = shop.page(&format!("/search?q={word}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)), "{word}: {body}");
    assert!(body.contains(&format!(r#"value="{}""#, escaped(word))));

    let (status, body) = shop.page("/search?q=").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Type a word or two"));
}

#[tokio::test]
async fn search_terms_are_escaped() {
    let shop = shop().await;
    let (_, body) = shop
        .page("/search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(!body.contains("<script>alert(1)</script>"));
    assert!(body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"));
}

#[tokio::test]
async fn product_pages_show_price_and_the_add_to_cart_form() {
    let shop = shop().await;
    let product = shop.some_product().await;
    let (status, body) = shop.page(&format!("/product/{}", product.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)));
    assert!(body.contains(&product.price.to_string()));
    assert!(body.contains(r#"<form class="add" method="post" action="/cart/items">"#));
    assert!(body.contains(&format!(r#"name="product_id" value="{}""#, product.id)));
    assert!(body.contains(r#"name="quantity""#));
    assert!(body.contains(&format!(r#"src="{}""#, product.image_url)));

    let (status, body) = shop.page("/product/p9999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("Page not found"));
    let (status, _) = shop.page("/no/such/page").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_stylesheet_is_served_as_css() {
    let shop = shop().await;
    let res = shop
        .send(shop.fleet.get("storefront", "/static/style.css"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/css")
    );
    assert_eq!(res.headers()[CACHE_CONTROL], "public, max-age=3600");
    assert!(
        res.text()
            .await
            .expect("body")
            .contains("font-family: system-ui")
    );
}

/// A browser asks for /favicon.ico on every first visit; it was a 404 in every console.
#[tokio::test]
async fn the_icon_is_served_where_browsers_look_for_it() {
    let shop = shop().await;
    for path in ["/favicon.ico", "/static/icon.svg"] {
        let res = shop.send(shop.fleet.get("storefront", path)).await;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()[CONTENT_TYPE], "image/svg+xml", "{path}");
        assert!(
            res.text().await.expect("body").starts_with("<svg"),
            "{path}"
        );
    }
    let (_, home) = shop.page("/").await;
    assert!(home.contains(r#"<link rel="icon" href="/static/icon.svg""#));
}

/// "Page 9999 of 4" with a link to page 9998 was what a page past the end showed.
#[tokio::test]
async fn a_page_past_the_end_redirects_to_the_last_and_a_malformed_one_is_the_first() {
    let shop = shop().await;
    let categories: Vec<Category> = shop.catalog("/categories").await;
    let category = categories
        .iter()
        .find(|c| c.product_count > u64::from(PAGE_SIZE))
        .expect("a category with more than one page");
    let pages = category.product_count.div_ceil(u64::from(PAGE_SIZE));
    for past in ["9999", "99999999999"] {
        let res = shop
            .send(
                shop.storefront()
                    .get(&format!("/category/{}?page={past}", category.slug)),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{past}");
        assert_eq!(location(&res), format!("?page={pages}"), "{past}");
    }
    let (status, body) = shop
        .page(&format!("/category/{}?page={pages}", category.slug))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("Page {pages} of {pages}")), "{body}");
    for malformed in ["0", "abc", "-3", "2x"] {
        let (status, body) = shop
            .page(&format!("/category/{}?page={malformed}", category.slug))
            .await;
        assert_eq!(status, StatusCode::OK, "{malformed}");
        assert!(body.contains(&format!("Page 1 of {pages}")), "{malformed}");
    }

    // Search pages behave the same, keeping the words searched for.
    let product = shop.some_product().await;
    let word = product
        .name
        .split_whitespace()
        .max_by_key(|w| w.len())
        .expect("a word");
    let res = shop
        .send(
            shop.storefront()
                .get(&format!("/search?q={word}&page=9999")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let target = location(&res).to_owned();
    assert!(target.starts_with(&format!("?q={word}&page=")), "{target}");
    let (status, body) = shop.page(&format!("/search{target}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)), "{body}");
    let (status, body) = shop.page(&format!("/search?q={word}&page=abc")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&escaped(&product.name)), "{body}");
}
