//! The user journeys, over the shop's public API and its published contract types:
//!
//! - **browse**: a page of products, a search for a word of a product name, a product page;
//! - **cart**: a product page, a quantity of it into the cart, the cart;
//! - **checkout**: as cart, then the order (`POST /api/orders` with an idempotency key and the
//!   test card that is always approved), then the order history. Each acknowledged order goes
//!   to the invariant checker.
//!
//! A journey stops at its first failed request, as a person would. Latency, as wrk2 measures it:
//! the first request's runs from the journey's *intended* start (so time spent waiting for a
//! slot behind a stalled target counts), each later request's from the end of the one before
//! (when the person would have sent it), and the journey's from its intended start to its last
//! answer.

use axum::http::Method;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_cart::contract::SetQuantity;
use flotilla_catalog::contract::{Product, ProductId, SearchResults};
use flotilla_chassis::Page;
use flotilla_identity::contract::{LoginRequest, SignupRequest, TokenResponse};
use flotilla_orders::contract::{Address, CheckoutRequest, Order};

use super::invariants::Invariants;
use super::shop::{Answer, Call, Shop};
use super::stats::{ErrorKind, Recorder};
use super::users::{PASSWORD, Shopper, UserPool};

pub use super::plan::Journey;

/// The card the simulated provider always approves.
const APPROVED_CARD: &str = "4242424242424242";

/// Products a cart may hold: few enough that a cart filled by many journeys stays under
/// orders' line limit (50 by default).
const CART_PRODUCTS: usize = 20;

/// Page size of the browse journey's listing.
const PAGE_SIZE: u64 = 20;

/// What the generator learned of the catalog before the run.
#[derive(Debug, Clone)]
pub struct CatalogView {
    /// Products for product pages.
    pub products: Vec<ProductId>,
    /// Products put in carts (and whose stock the invariants watch).
    pub cart_products: Vec<ProductId>,
    /// Words of product names, to search for.
    pub words: Vec<String>,
    /// Pages of `PAGE_SIZE` products.
    pub pages: u64,
}

impl CatalogView {
    /// Reads the first page of up to 100 products from the target.
    pub async fn discover(shop: &Shop) -> anyhow::Result<Self> {
        let path = "/api/catalog/products?page_size=100";
        let answer = shop
            .send(Call::get(path.to_owned(), None))
            .await
            .map_err(|f| {
                anyhow::anyhow!("cannot read the catalog at {}: {}", shop.base(), f.detail)
            })?;
        let page: Page<Product> = answer.json().filter(|_| answer.status == 200).ok_or_else(|| {
            anyhow::anyhow!(
                "GET {}{path} answered {} without a page of products: is {} a Flotilla gateway?",
                shop.base(),
                answer.status,
                shop.base()
            )
        })?;
        if page.items.is_empty() {
            anyhow::bail!(
                "the catalog at {} lists no products: nothing to load",
                shop.base()
            );
        }
        let products: Vec<ProductId> = page.items.iter().map(|p| p.id).collect();
        let mut words: Vec<String> = page
            .items
            .iter()
            .flat_map(|p| p.name.split_whitespace())
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| w.chars().count() >= 3)
            .collect();
        words.sort();
        words.dedup();
        Ok(Self {
            cart_products: products.iter().copied().take(CART_PRODUCTS).collect(),
            products,
            words,
            pages: page.total.div_ceil(PAGE_SIZE).max(1),
        })
    }
}

/// Everything a journey needs, shared by all of them.
pub struct World {
    pub shop: Shop,
    pub recorder: Arc<Recorder>,
    pub catalog: CatalogView,
    pub users: UserPool,
    pub invariants: Arc<Invariants>,
}

/// One journey under way: its clock and its choices.
struct Walk<'a> {
    world: &'a World,
    step: Option<usize>,
    journey: Journey,
    /// When the next request is meant to start.
    next_start: Instant,
    rng: ChaCha8Rng,
}

type Outcome<T> = Result<T, ErrorKind>;

impl Walk<'_> {
    /// Sends one request and records it under `route`; a failure ends the journey.
    async fn call(&mut self, route: &'static str, call: Call<'_>) -> Outcome<Answer> {
        let result = self.world.shop.send(call).await;
        let now = Instant::now();
        let latency = now.saturating_duration_since(self.next_start);
        self.next_start = now;
        let error = match &result {
            Ok(answer) => answer.error(),
            Err(failed) => Some(failed.kind),
        };
        self.world
            .recorder
            .route(self.step, self.journey, route, latency, error);
        match (result, error) {
            (Ok(answer), None) => Ok(answer),
            (_, Some(kind)) => Err(kind),
            (Err(failed), None) => Err(failed.kind),
        }
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u64() % n.max(1) as u64) as usize
    }

    fn product(&mut self, list: &[ProductId]) -> Option<ProductId> {
        let i = self.below(list.len());
        list.get(i).copied()
    }

    async fn list_page(&mut self) -> Outcome<()> {
        let page = self.rng.next_u64() % self.world.catalog.pages + 1;
        let path = format!("/api/catalog/products?page={page}&page_size={PAGE_SIZE}");
        self.call("GET /api/catalog/products", Call::get(path, None))
            .await
            .map(drop)
    }

    async fn search(&mut self) -> Outcome<()> {
        let i = self.below(self.world.catalog.words.len());
        let word = self
            .world
            .catalog
            .words
            .get(i)
            .cloned()
            .unwrap_or_else(|| "a".to_owned());
        let path = format!("/api/catalog/search?q={}", query_escape(&word));
        let answer = self
            .call("GET /api/catalog/search", Call::get(path, None))
            .await?;
        // A search answer that is not a result list is a broken contract, counted as such.
        answer
            .json::<SearchResults>()
            .map(drop)
            .ok_or(ErrorKind::Other)
    }

    async fn product_page(&mut self, id: ProductId) -> Outcome<()> {
        let path = format!("/api/catalog/products/{id}");
        self.call("GET /api/catalog/products/{id}", Call::get(path, None))
            .await
            .map(drop)
    }

    /// A shopper from the pool, or a new one; their token fresh.
    async fn shopper(&mut self) -> Outcome<Shopper> {
        let now = Instant::now();
        let (email, known) = match self.world.users.take() {
            Some(shopper) if !shopper.stale(now) => return Ok(shopper),
            Some(shopper) => (shopper.email, true),
            None => (self.world.users.new_email(), false),
        };
        if !known {
            let signup = SignupRequest {
                email: email.clone(),
                password: PASSWORD.to_owned(),
                name: "Load".to_owned(),
            };
            let call = Call::send_json(
                Method::POST,
                "/api/identity/signup".to_owned(),
                None,
                &signup,
            );
            self.call("POST /api/identity/signup", call).await?;
        }
        let login = LoginRequest {
            email: email.clone(),
            password: PASSWORD.to_owned(),
        };
        let call = Call::send_json(Method::POST, "/api/identity/login".to_owned(), None, &login);
        let answer = self.call("POST /api/identity/login", call).await?;
        let token: TokenResponse = answer.json().ok_or(ErrorKind::Other)?;
        Ok(Shopper {
            email,
            token: token.access_token,
            expires: Instant::now() + Duration::from_secs(token.expires_in),
        })
    }

    async fn add_to_cart(&mut self, token: &str) -> Outcome<()> {
        let id = self
            .product(&self.world.catalog.cart_products.clone())
            .ok_or(ErrorKind::Other)?;
        self.product_page(id).await?;
        let quantity = SetQuantity {
            quantity: 1 + (self.rng.next_u64() % 2) as u32,
        };
        let call = Call::send_json(
            Method::PUT,
            format!("/api/cart/items/{id}"),
            Some(token),
            &quantity,
        );
        self.call("PUT /api/cart/items/{id}", call).await?;
        self.call(
            "GET /api/cart",
            Call::get("/api/cart".to_owned(), Some(token)),
        )
        .await
        .map(drop)
    }

    async fn checkout(&mut self, token: &str) -> Outcome<()> {
        let order = CheckoutRequest {
            address: Address {
                name: "Load Generator".to_owned(),
                line1: "1 Main St".to_owned(),
                city: "Berlin".to_owned(),
                postal_code: "10115".to_owned(),
                country: "DE".to_owned(),
            },
            card_number: APPROVED_CARD.to_owned(),
        };
        let mut call = Call::send_json(Method::POST, "/api/orders".to_owned(), Some(token), &order);
        call.idempotency_key = Some(format!("load-{:016x}", self.rng.next_u64()));
        let answer = self.call("POST /api/orders", call).await?;
        // 201 (finished) or 202 (still running): either way the shop has acknowledged an order.
        let order: Order = answer.json().ok_or(ErrorKind::Other)?;
        self.world.invariants.acknowledged(order, token.to_owned());
        self.call(
            "GET /api/orders",
            Call::get("/api/orders?page_size=10".to_owned(), Some(token)),
        )
        .await
        .map(drop)
    }

    async fn browse(&mut self) -> Outcome<()> {
        self.list_page().await?;
        self.search().await?;
        let id = self
            .product(&self.world.catalog.products.clone())
            .ok_or(ErrorKind::Other)?;
        self.product_page(id).await
    }

    async fn with_shopper(&mut self, checkout: bool) -> Outcome<()> {
        let shopper = self.shopper().await?;
        let mut outcome = self.add_to_cart(&shopper.token).await;
        if checkout && outcome.is_ok() {
            outcome = self.checkout(&shopper.token).await;
        }
        self.world.users.give_back(shopper);
        outcome
    }
}

/// Runs one journey meant to start at `intended`, recording it and each of its requests.
pub async fn run(
    world: Arc<World>,
    step: Option<usize>,
    journey: Journey,
    seed: u64,
    intended: Instant,
) {
    let mut walk = Walk {
        world: &world,
        step,
        journey,
        next_start: intended,
        rng: ChaCha8Rng::seed_from_u64(seed),
    };
    let outcome = match journey {
        Journey::Browse => walk.browse().await,
        Journey::Cart => walk.with_shopper(false).await,
        Journey::Checkout => walk.with_shopper(true).await,
    };
    let latency = Instant::now().saturating_duration_since(intended);
    world
        .recorder
        .journey(step, journey, latency, outcome.err());
}

/// Percent-encodes a search word for a query string (words are letters and digits, but a
/// catalog may hold any letters).
fn query_escape(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for byte in word.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
