//! The test shop: a fleet started in-process with fresh SQLite files, and a client that shows
//! redirects instead of following them, with the few helpers every page test uses.

pub use axum::http::Method;
pub use flotilla_catalog::contract::{Category, Product};
pub use flotilla_chassis::{Money, Page, Role};
pub use flotilla_testkit::TestFleet;
pub use reqwest::StatusCode;
pub use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};

/// A running fleet and a client that shows redirects instead of following them.
pub struct Shop {
    /// The services.
    pub fleet: TestFleet,
    client: reqwest::Client,
}

/// Products the catalog is seeded with.
pub const SEED_PRODUCTS: u64 = 40;
/// The storefront's page size: small, so that categories have several pages.
pub const PAGE_SIZE: u32 = 3;

/// A shop made of `services` only (to test what happens when the others are down).
pub async fn shop_of(services: &[flotilla_chassis::ServiceSpec]) -> Shop {
    shop_with(services, None).await
}

/// A shop made of `services`, every service under `limits` (defaults when `None`).
pub async fn shop_with(
    services: &[flotilla_chassis::ServiceSpec],
    limits: Option<flotilla_chassis::Limits>,
) -> Shop {
    shop_configured(services, limits, &[]).await
}

/// A shop made of `services`, with `config` sections set over the harness's (e.g.
/// `("resilience", json!({...}))`).
pub async fn shop_configured(
    services: &[flotilla_chassis::ServiceSpec],
    limits: Option<flotilla_chassis::Limits>,
    config: &[(&str, serde_json::Value)],
) -> Shop {
    let mut builder = TestFleet::of(services)
        .config(
            "catalog",
            serde_json::json!({ "seed_products": SEED_PRODUCTS }),
        )
        .config(
            "inventory",
            serde_json::json!({ "seed_products": SEED_PRODUCTS }),
        )
        .config("storefront", serde_json::json!({ "page_size": PAGE_SIZE }))
        .limits(limits.unwrap_or_default());
    for (section, values) in config {
        builder = builder.config(section, values.clone());
    }
    let fleet = builder.start().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    Shop { fleet, client }
}

/// The shop without orders: catalog, identity, cart, inventory (stock badges), shipping
/// (estimates) and storefront.
pub async fn shop() -> Shop {
    shop_of(SHOP).await
}

/// The services of [`shop`].
pub const SHOP: &[flotilla_chassis::ServiceSpec] = &[
    flotilla_catalog::SPEC,
    flotilla_identity::SPEC,
    flotilla_cart::SPEC,
    flotilla_inventory::SPEC,
    flotilla_shipping::SPEC,
    flotilla_storefront::SPEC,
];

/// The whole shop with checkout: the services above plus orders and the services its checkout
/// saga calls (inventory, payments, shipping).
pub async fn shop_with_orders() -> Shop {
    shop_of(&[
        flotilla_catalog::SPEC,
        flotilla_identity::SPEC,
        flotilla_cart::SPEC,
        flotilla_inventory::SPEC,
        flotilla_payments::SPEC,
        flotilla_shipping::SPEC,
        flotilla_orders::SPEC,
        flotilla_storefront::SPEC,
    ])
    .await
}

impl Shop {
    /// Sends `request` (built with the fleet's credential) without following redirects.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = request.build().expect("request");
        self.client.execute(request).await.expect("response")
    }

    /// `GET path` as an anonymous visitor: status and HTML.
    pub async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self.send(self.storefront().get(path)).await;
        read_html(res).await
    }

    /// `GET path` as `user`: status and HTML.
    pub async fn page_as(&self, user: &str, path: &str) -> (StatusCode, String) {
        let res = self.send(self.as_user(Method::GET, path, user)).await;
        read_html(res).await
    }

    /// `POST path` as an anonymous visitor.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.storefront().post(path)
    }

    /// A request to the storefront as `user`.
    pub fn as_user(&self, method: Method, path: &str, user: &str) -> reqwest::RequestBuilder {
        self.storefront().as_customer(method, path, user)
    }

    /// The storefront, as the gateway calls it.
    pub fn storefront(&self) -> flotilla_testkit::FleetClient<'_> {
        self.fleet.client(flotilla_storefront::NAME)
    }

    /// `GET path` from the catalog's API, decoded.
    pub async fn catalog<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        self.fleet
            .client(flotilla_catalog::NAME)
            .get(path)
            .send()
            .await
            .expect("catalog")
            .json()
            .await
            .expect("catalog json")
    }

    /// The first product of the catalog.
    pub async fn some_product(&self) -> Product {
        let page: Page<Product> = self.catalog("/products?page_size=1").await;
        page.items.into_iter().next().expect("a seeded product")
    }
}

/// The status and body of an HTML answer (failing the test if it is not HTML).
pub async fn read_html(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let content_type = res.headers()[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("text/html"),
        "{status}: {content_type}"
    );
    (status, res.text().await.expect("body"))
}

/// `text` as askama escapes it.
pub fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The `Location` of a redirect.
pub fn location(res: &reqwest::Response) -> &str {
    res.headers()[LOCATION].to_str().expect("ascii")
}

/// What a page says when an optional part of it is missing.
pub const NOTICE: &str = "Some parts of the shop are unavailable right now.";
