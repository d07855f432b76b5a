//! Checking out, as one straight line: [`Checkout::submit`] places the order (everything
//! `POST /` does before the saga starts), runs its saga in a task of its own and waits for it a
//! little (`respond_within_ms`), and returns the order the answer shows.
//!
//! Placing, in order: the idempotency key (a repeat answers with the first order, a reuse with
//! another body is refused), the address and card, the caller's cart, the catalog's current
//! prices, the shipping quote, the cart's claim, then one transaction that stores the order, its
//! history, its saga (held by the executor that will run it) and the key. Every peer is asked
//! before anything is written, so a peer that is down costs a 503 and leaves nothing behind.
//!
//! The saga outlives the request (a client that hangs up does not stop it) and keeps the
//! request's trace. A quick saga's order comes back CONFIRMED or CANCELLED, built from what the
//! request stored and the saga committed, not read back; a slow one's comes back PENDING, and
//! the client polls it.
//!
//! A cart is checked out once (RELIABILITY S10): see [`cart_claim`].

mod cart_claim;

use flotilla_cart::client::CartClient;
use flotilla_catalog::client::CatalogClient;
use flotilla_catalog::contract::{MAX_LOOKUP_IDS, Product};
use flotilla_chassis::clock::SharedClock;
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::transport::{ClientError, Peers, TransportError};
use flotilla_chassis::{Caller, request_context};
use flotilla_shipping::client::ShippingClient;
use flotilla_shipping::contract::{Quote, QuoteRequest};
use std::future::Future;
use std::time::Duration;
use time::OffsetDateTime;

use crate::contract::{Address, CheckoutRequest, Order, OrderStatus};
use crate::domain::{self, OrderId, PricedLine, PricedOrder, WantedLine};
use crate::error::OrdersError;
use crate::executor::{DEADLINE_BACKSTOP, Executor, RunEnd};
use crate::metrics::OrderMetrics;
use crate::saga::OrderEnding;
use crate::store::sagas::SagaRecord;
use crate::store::{NewOrder, OrdersStore, Placed, StoredKey};

/// What placing an order came to.
#[derive(Debug, Clone)]
pub enum Placement {
    /// A new order, whose saga (as stored) the caller, holding the lease it passed in until
    /// `held_until`, must now run.
    New {
        /// The saga, at its first step.
        saga: Box<SagaRecord>,
        /// Until when the caller's lease runs.
        held_until: OffsetDateTime,
        /// The order as stored (PENDING).
        placed: Box<Order>,
    },
    /// The order this key created before (or concurrently): nothing new was stored.
    Repeat(String),
}

/// The peers, the saga executor and the settings a checkout needs.
#[derive(Clone)]
pub struct Checkout {
    pub store: OrdersStore,
    /// Where the lines come from, and whose claim keeps a cart to one order.
    pub cart: CartClient,
    pub catalog: CatalogClient,
    pub shipping: ShippingClient,
    /// The peers, for the state of their circuit breakers.
    pub peers: Peers,
    /// Runs the sagas of the orders placed here.
    pub executor: Executor,
    pub clock: SharedClock,
    /// The deadline of each peer call.
    pub call_timeout: Duration,
    pub max_lines: u32,
    /// How long a claim on the cart lasts if the order never ends (it outlives any
    /// reservation the saga could commit, so a slow order cannot outlast its claim).
    pub claim_ttl: Duration,
    /// How long [`Checkout::submit`] waits for the saga before answering with a PENDING order.
    pub respond_within: Duration,
    /// Orders placed (and the sagas' series, which the executor records).
    pub metrics: OrderMetrics,
}

/// What waiting for a new order's saga within the request came to.
enum Waited {
    /// This request's run finished the saga, with this ending.
    Ended(Box<OrderEnding>),
    /// The saga is still running after `respond_within`.
    StillRunning,
    /// The run stopped without finishing the saga here: a twin's executor holds the lease, or
    /// the saga paused (storage, shutdown) and the recovery loop resumes it. The order is read.
    Elsewhere,
}

/// The available lines of a cart, priced now, and the cart's version they were read at.
struct PricedCart {
    lines: Vec<PricedLine>,
    version: u64,
}

impl Checkout {
    /// Checks out the caller's cart (or finds the order `key` placed) and returns the order:
    /// CONFIRMED or CANCELLED when its saga ended within `respond_within`, PENDING otherwise.
    #[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
    pub async fn submit(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        req: &CheckoutRequest,
    ) -> Result<Order, OrdersError> {
        let owner = Executor::new_owner();
        let order_id = match self.place(caller, key, req, &owner).await? {
            Placement::New {
                saga,
                held_until,
                placed,
            } => match self.run_saga(*saga, owner, held_until).await {
                // Ended here: the answer is what this request stored and the saga committed,
                // with no read back.
                Waited::Ended(ending) => {
                    // The customer reads this answer and may shop or try again right away:
                    // the cart hears how the order ended now, not only through the event.
                    if ending.status == OrderStatus::Cancelled {
                        self.release_claim(caller, &placed.id).await;
                    } else {
                        self.taken(caller, &placed).await;
                    }
                    return Ok(domain::ended(*placed, &ending));
                }
                // Still running after `respond_within`: answer with the order as this request
                // stored it. Reading it back instead would race the saga and turn a slow
                // checkout's answer into a finished order at random.
                Waited::StillRunning => return Ok(*placed),
                Waited::Elsewhere => placed.id,
            },
            Placement::Repeat(order_id) => order_id,
        };
        self.store
            .order(&order_id)
            .await?
            .ok_or(OrdersError::NotFound)
    }

    /// Runs `saga`, held by `owner` until `held_until`, in a task of its own, and waits for it
    /// `respond_within` at most.
    async fn run_saga(
        &self,
        saga: SagaRecord,
        owner: String,
        held_until: OffsetDateTime,
    ) -> Waited {
        let executor = self.executor.clone();
        let run = async move {
            let order_id = saga.order_id.clone();
            let end = executor
                .run_from(saga, &owner, Some(held_until), None)
                .await;
            end.log(&order_id);
            end
        };
        // The saga outlives the request (a client that hangs up does not stop it), and keeps
        // the request's trace so its events continue the same trace.
        let task = match request_context::current() {
            Some(ctx) => tokio::spawn(request_context::scope(ctx, run)),
            None => tokio::spawn(run),
        };
        if self.respond_within.is_zero() {
            // Answer at once. (A zero timeout still polls the task and waits for the timer's
            // next tick, in which a fast saga on a busy machine could finish.)
            return Waited::StillRunning;
        }
        match tokio::time::timeout(self.respond_within, task).await {
            Ok(Ok(RunEnd::Finished {
                ending: Some(ending),
                ..
            })) => Waited::Ended(ending),
            Err(_elapsed) => Waited::StillRunning,
            _ => Waited::Elsewhere,
        }
    }

    /// Places the caller's order (or finds the one `key` placed); a new saga is held by
    /// `lease_owner`.
    pub async fn place(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        req: &CheckoutRequest,
        lease_owner: &str,
    ) -> Result<Placement, OrdersError> {
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

    /// An order placed while a peer its checkout or saga needs is failing (its circuit breaker
    /// refuses calls) would only be cancelled later, after the saga's retries: the customer is
    /// told at once instead (503 with `Retry-After`), and nothing is stored.
    fn refuse_if_a_peer_is_failing(&self) -> Result<(), OrdersError> {
        const NEEDED: [&str; 5] = [
            flotilla_cart::NAME,
            flotilla_catalog::NAME,
            flotilla_shipping::NAME,
            flotilla_inventory::NAME,
            flotilla_payments::NAME,
        ];
        match NEEDED.into_iter().find(|peer| self.peers.is_refusing(peer)) {
            Some(peer) => Err(OrdersError::Dependency(ClientError::Transport(
                TransportError::CircuitOpen(peer.to_owned()),
            ))),
            None => Ok(()),
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
    ) -> Result<Placement, OrdersError> {
        let card = domain::validate_request(req).map_err(OrdersError::Invalid)?;
        self.refuse_if_a_peer_is_failing()?;
        let PricedCart { lines, version } = self.priced_cart(caller).await?;
        let address = req.address.trimmed();
        let quote = self.quote(&address, &lines).await?;
        let totals = domain::totals(&lines, quote.amount)?;
        let id = OrderId::for_checkout(&caller.user_id, key.as_str());
        // Last of the peer calls: a claim is taken only for an order that is ready to store.
        self.claim(caller, &id, version).await?;
        let priced = PricedOrder {
            id,
            user_id: caller.user_id.clone(),
            lines,
            totals,
            address,
            quote_id: Some(quote.id),
        };
        let now = self.clock.now();
        let order = NewOrder {
            priced: &priced,
            card: &card,
            key,
            fingerprint,
            lease_owner,
            lease_until: self.executor.lease_until(now),
            now,
        };
        let placed = match self.store.place(&order).await {
            Ok(placed) => placed,
            Err(e) => {
                self.release_unplaced(caller, &priced.id, key).await;
                return Err(e.into());
            }
        };
        match placed {
            Placed::Created => {
                tracing::info!(order_id = priced.id.as_str(), total = %totals.total, "order placed");
                self.metrics.placed();
                Ok(Placement::New {
                    saga: Box::new(SagaRecord::placed(&order)),
                    held_until: order.lease_until,
                    placed: Box::new(priced.placed(now)),
                })
            }
            Placed::Twin(stored) => {
                self.settle_twin_claim(caller, &stored.order_id).await;
                repeat(stored, fingerprint)
            }
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
            let ids: Vec<String> = chunk.iter().map(|l| l.product_id.to_string()).collect();
            products.extend(self.deadline("catalog", self.catalog.lookup(&ids)).await?);
        }
        Ok(PricedCart {
            lines: domain::price_lines(&wanted, &products)?,
            version,
        })
    }

    /// Shipping's price for `lines` to `address`; its 422 is the customer's to fix.
    async fn quote(&self, address: &Address, lines: &[PricedLine]) -> Result<Quote, OrdersError> {
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

    /// `call` under the call deadline (or the request's, when sooner); running out of time is
    /// the peer being unavailable. The deadline is the call's own, so that the resilience stack
    /// cuts it and its breaker counts the cut (see [`Executor::perform`]).
    async fn deadline<T>(
        &self,
        service: &str,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        let own = tokio::time::Instant::now() + self.call_timeout;
        let until = request_context::current_deadline().map_or(own, |d| d.min(own));
        let call = request_context::with_deadline(Some(until), call);
        tokio::time::timeout(self.call_timeout + DEADLINE_BACKSTOP, call)
            .await
            .unwrap_or_else(|_| Err(TransportError::Timeout(service.to_owned()).into()))
    }
}

/// The answer to a repeated key: the same order for the same request, a conflict otherwise.
fn repeat(stored: StoredKey, fingerprint: &str) -> Result<Placement, OrdersError> {
    if stored.fingerprint == fingerprint {
        Ok(Placement::Repeat(stored.order_id))
    } else {
        Err(OrdersError::IdempotencyConflict)
    }
}
