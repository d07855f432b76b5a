//! Placing an order: everything `POST /` does before the saga starts.
//!
//! In order: the idempotency key (a repeat answers with the first order, a reuse with another
//! body is refused), the address and card, the caller's cart, the catalog's current prices,
//! the shipping quote, the cart's claim, then one transaction that stores the order, its
//! history, its saga (held by the executor that will run it) and the key. Every peer is asked
//! before anything is written, so a peer that is down costs a 503 and leaves nothing behind.
//!
//! A cart is checked out once (RELIABILITY S10). The order's id is derived from the user and the
//! key, and just before storing the order, the cart is claimed for that id at the version whose
//! lines were priced: the cart grants one claim per content, so of many concurrent checkouts with
//! different keys one goes on and the others get 409 (`checkout-in-progress`, or `cart-changed`
//! when the winner's order has already taken the lines), while concurrent requests with one key
//! name the same order, share its claim and meet at the key's primary key, where one wins and the
//! other answers with its twin's order. The claim ends with the order: the cart hears
//! `order.confirmed` / `order.cancelled`, and, when the saga ends within the request, orders
//! tells it at once ([`Checkout::taken`], [`Checkout::release_claim`]). If the order is not
//! stored after all the claim is released here, and if this process dies in between, it lapses
//! after `claim_ttl`.

use flotilla_cart::client::CartClient;
use flotilla_cart::contract::{
    CheckoutClaim, PROBLEM_CART_CHANGED, PROBLEM_CART_CLAIMED, TakenLine, TakenOrder,
};
use flotilla_catalog::client::CatalogClient;
use flotilla_catalog::contract::{MAX_LOOKUP_IDS, Product};
use flotilla_chassis::Caller;
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::transport::{ClientError, TransportError};
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::{Quote, QuoteRequest};
use std::future::Future;
use std::time::Duration;

use crate::contract::{CheckoutRequest, Order, OrderStatus};
use crate::domain::{self, OrderId, PricedLine, WantedLine};
use crate::error::OrdersError;
use crate::store::sagas::SagaRecord;
use crate::store::{NewOrder, OrdersStore, Placed, StoredKey};

/// What a checkout came to.
#[derive(Debug, Clone)]
pub enum Checkedout {
    /// A new order, whose saga (as stored) the caller, holding the lease it passed in until
    /// `held_until`, must now run.
    New {
        /// The saga, at its first step.
        saga: Box<SagaRecord>,
        /// Until when the caller's lease runs.
        held_until: i64,
        /// The order as stored (PENDING).
        placed: Box<Order>,
    },
    /// The order this key created before (or concurrently): nothing new was stored.
    Existing(String),
}

/// The peers and settings checkout needs.
#[derive(Clone)]
pub struct Checkout {
    /// The orders tables.
    pub store: OrdersStore,
    /// Where the lines come from.
    pub cart: CartClient,
    /// Where prices come from.
    pub catalog: CatalogClient,
    /// Where the shipping cost comes from.
    pub shipping: ShippingClient,
    /// Stamps the order.
    pub clock: SharedClock,
    /// The deadline of each peer call.
    pub call_timeout: Duration,
    /// Most lines per order.
    pub max_lines: u32,
    /// How long the new saga's first lease lasts.
    pub lease: Duration,
    /// How long a claim on the cart lasts if the order never ends (it outlives any
    /// reservation the saga could commit, so a slow order cannot outlast its claim).
    pub claim_ttl: Duration,
}

/// The available lines of a cart, priced now, and the cart's version they were read at.
struct PricedCart {
    lines: Vec<PricedLine>,
    version: u64,
}

impl Checkout {
    /// Places the caller's order (or finds the one `key` placed); a new saga is held by
    /// `lease_owner`.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
    pub async fn place(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        req: &CheckoutRequest,
        lease_owner: &str,
    ) -> Result<Checkedout, OrdersError> {
        let fingerprint = domain::fingerprint(req);
        if let Some(stored) = self.store.checkout_key(&caller.user_id, key).await? {
            return repeat(stored, &fingerprint);
        }
        match self
            .place_new(caller, key, req, &fingerprint, lease_owner)
            .await
        {
            Ok(placed) => Ok(placed),
            // A twin request with the same key may have placed its order, and even finished
            // its saga and emptied the cart, while this one read the cart: its order is the
            // answer, not this request's "empty cart" or "out of stock".
            Err(e) => match self.store.checkout_key(&caller.user_id, key).await {
                Ok(Some(stored)) => repeat(stored, &fingerprint),
                _ => Err(e),
            },
        }
    }

    /// Prices the cart and stores the order with its saga, unless a twin did first.
    async fn place_new(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        req: &CheckoutRequest,
        fingerprint: &str,
        lease_owner: &str,
    ) -> Result<Checkedout, OrdersError> {
        let card = domain::validate_request(req).map_err(OrdersError::Invalid)?;
        let PricedCart { lines, version } = self.priced_cart(caller).await?;
        let address = req.address.trimmed();
        let quote = self.quote(&address, &lines).await?;
        let totals = domain::totals(&lines, quote.amount)?;
        let id = OrderId::for_checkout(&caller.user_id, key.as_str());
        // Last of the peer calls: a claim is taken only for an order that is ready to store.
        self.claim(caller, &id, version).await?;
        let now = self.clock.now_millis();
        let order = NewOrder {
            id: &id,
            user_id: &caller.user_id,
            lines: &lines,
            totals,
            address: &address,
            quote_id: Some(&quote.id),
            card: &card,
            key,
            fingerprint,
            lease_owner,
            lease_until: now.saturating_add(crate::saga::executor::millis(self.lease)),
            now,
        };
        let placed = match self.store.place(&order).await {
            Ok(placed) => placed,
            Err(e) => {
                self.release_unplaced(caller, &id, key).await;
                return Err(e.into());
            }
        };
        match placed {
            Placed::Created => {
                tracing::info!(order_id = id.as_str(), total = %totals.total, "order placed");
                Ok(Checkedout::New {
                    saga: Box::new(SagaRecord::placed(&order)),
                    held_until: order.lease_until,
                    placed: Box::new(order.view()),
                })
            }
            Placed::Twin(stored) => {
                self.settle_twin_claim(caller, &stored.order_id).await;
                repeat(stored, fingerprint)
            }
        }
    }

    /// Claims the caller's cart for order `id` at `version`; the cart's 409s become ours.
    async fn claim(&self, caller: &Caller, id: &OrderId, version: u64) -> Result<(), OrdersError> {
        let claim = CheckoutClaim {
            version,
            ttl_secs: self.claim_ttl.as_secs().max(1),
        };
        match self
            .deadline("cart", self.cart.claim(caller, id.as_str(), &claim))
            .await
        {
            Ok(_) => Ok(()),
            Err(ClientError::Status { problem, .. }) if problem.kind == PROBLEM_CART_CLAIMED => {
                Err(OrdersError::CheckoutInProgress)
            }
            Err(ClientError::Status { problem, .. }) if problem.kind == PROBLEM_CART_CHANGED => {
                Err(OrdersError::CartChanged)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Gives back the claim of order `id`, which could not be stored, unless it was stored
    /// after all (a commit whose answer was lost) — then the claim is the order's. Best effort:
    /// a claim not given back lapses by itself, and a retry with the same key reuses it.
    async fn release_unplaced(&self, caller: &Caller, id: &OrderId, key: &IdempotencyKey) {
        if !matches!(
            self.store.checkout_key(&caller.user_id, key).await,
            Ok(None)
        ) {
            return;
        }
        self.release_claim(caller, id.as_str()).await;
    }

    /// A twin with this request's key stored order `order_id` first, and this request has just
    /// claimed the cart for that same order. If the order was already cancelled, its claim was
    /// released before this request renewed it, and nothing else would end it: end it here. (A
    /// confirmed order's lines left the cart with a new version, so no late claim of it is
    /// granted; a running order ends its claim itself.)
    async fn settle_twin_claim(&self, caller: &Caller, order_id: &str) {
        if let Ok(Some(order)) = self.store.order(order_id).await
            && order.status == OrderStatus::Cancelled
        {
            self.release_claim(caller, order_id).await;
        }
    }

    /// Ends order `order_id`'s claim on the caller's cart now, rather than when the cart
    /// hears of the order's end: the customer whose card was declined may try again at once.
    /// Best effort: the event does it anyway.
    pub async fn release_claim(&self, caller: &Caller, order_id: &str) {
        let released = self
            .deadline("cart", self.cart.release(caller, order_id))
            .await;
        if let Err(e) = released {
            tracing::warn!(order_id, error = %e, "the cart's claim is left to end by itself");
        }
    }

    /// Tells the cart that `order` (the caller's) was confirmed: its lines leave the cart and
    /// its claim ends now. Best effort: `order.confirmed` does it anyway.
    pub async fn taken(&self, caller: &Caller, order: &Order) {
        let taken = TakenOrder {
            lines: order
                .lines
                .iter()
                .map(|line| TakenLine {
                    product_id: line.product_id.clone(),
                    quantity: line.quantity,
                })
                .collect(),
        };
        let told = self
            .deadline("cart", self.cart.taken(caller, &order.id, &taken))
            .await;
        if let Err(e) = told {
            tracing::warn!(order_id = %order.id, error = %e, "the cart hears of the order by its event");
        }
    }

    /// The available lines of the caller's cart, priced from the catalog now, and the version
    /// of the cart they were read at.
    async fn priced_cart(&self, caller: &Caller) -> Result<PricedCart, OrdersError> {
        let cart = self.deadline("cart", self.cart.get(caller)).await?;
        let version = cart.version;
        // Lines whose product vanished are shown as unavailable in the cart and left out of
        // its total; checkout buys what the total covers.
        let wanted: Vec<WantedLine> = cart
            .items
            .into_iter()
            .filter(|line| line.available && line.quantity > 0)
            .map(|line| WantedLine {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect();
        if wanted.is_empty() {
            return Err(OrdersError::EmptyCart);
        }
        if wanted.len() > self.max_lines as usize {
            return Err(OrdersError::TooManyLines {
                lines: wanted.len(),
                max: self.max_lines,
            });
        }
        let mut products: Vec<Product> = Vec::with_capacity(wanted.len());
        for chunk in wanted.chunks(MAX_LOOKUP_IDS) {
            let ids: Vec<String> = chunk.iter().map(|l| l.product_id.clone()).collect();
            products.extend(self.deadline("catalog", self.catalog.lookup(&ids)).await?);
        }
        Ok(PricedCart {
            lines: domain::price_lines(&wanted, &products)?,
            version,
        })
    }

    /// Shipping's price for `lines` to `address`; its 422 is the customer's to fix.
    async fn quote(
        &self,
        address: &crate::contract::Address,
        lines: &[PricedLine],
    ) -> Result<Quote, OrdersError> {
        let items = domain::item_count(lines).unwrap_or(u32::MAX);
        let request = QuoteRequest {
            country: address.country.clone(),
            postal_code: address.postal_code.clone(),
            items,
            weight_grams: None,
        };
        match self
            .deadline("shipping", self.shipping.quote(&request))
            .await
        {
            Ok(quote) => Ok(quote),
            Err(ClientError::Status { problem, .. }) if problem.status == 422 => {
                Err(OrdersError::Undeliverable(problem))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `call` under the call deadline; running out of time is the peer being unavailable.
    async fn deadline<T>(
        &self,
        service: &str,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.call_timeout, call)
            .await
            .unwrap_or_else(|_| Err(TransportError::Timeout(service.to_owned()).into()))
    }
}

/// The answer to a repeated key: the same order for the same request, a conflict otherwise.
fn repeat(stored: StoredKey, fingerprint: &str) -> Result<Checkedout, OrdersError> {
    if stored.fingerprint == fingerprint {
        Ok(Checkedout::Existing(stored.order_id))
    } else {
        Err(OrdersError::IdempotencyConflict)
    }
}
