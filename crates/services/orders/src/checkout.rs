//! Placing an order: everything `POST /` does before the saga starts.
//!
//! In order: the idempotency key (a repeat answers with the first order, a reuse with another
//! body is refused), the address and card, the caller's cart, the catalog's current prices,
//! the shipping quote, then one transaction that stores the order, its history, its saga (held
//! by the executor that will run it) and the key. Every peer is asked before anything is
//! written, so a peer that is down costs a 503 and leaves nothing behind; and two concurrent
//! requests with one key meet at the key's primary key, where one wins and the other answers
//! with its twin's order.

use flotilla_cart::client::CartClient;
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

use crate::contract::{CheckoutRequest, Order};
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
        let lines = self.priced_cart(caller).await?;
        let address = req.address.trimmed();
        let quote = self.quote(&address, &lines).await?;
        let totals = domain::totals(&lines, quote.amount)?;
        let id = OrderId::generate();
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
        match self.store.place(&order).await? {
            Placed::Created => {
                tracing::info!(order_id = id.as_str(), total = %totals.total, "order placed");
                Ok(Checkedout::New {
                    saga: Box::new(SagaRecord::placed(&order)),
                    held_until: order.lease_until,
                    placed: Box::new(order.view()),
                })
            }
            Placed::Twin(stored) => repeat(stored, fingerprint),
        }
    }

    /// The available lines of the caller's cart, priced from the catalog now.
    async fn priced_cart(&self, caller: &Caller) -> Result<Vec<PricedLine>, OrdersError> {
        let cart = self.deadline("cart", self.cart.get(caller)).await?;
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
        Ok(domain::price_lines(&wanted, &products)?)
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
