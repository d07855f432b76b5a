//! The cart's claim: a cart is checked out once (RELIABILITY S10).
//!
//! The order's id is derived from the user and the key, and just before storing the order, the
//! cart is claimed for that id at the version whose lines were priced: the cart grants one claim
//! per content, so of many concurrent checkouts with different keys one goes on and the others
//! get 409 (`checkout-in-progress`, or `cart-changed` when the winner's order has already taken
//! the lines), while concurrent requests with one key name the same order, share its claim and
//! meet at the key's primary key, where one wins and the other answers with its twin's order.
//! The claim ends with the order: the cart hears `order.confirmed` / `order.cancelled`, and,
//! when the saga ends within the request, orders tells it at once ([`Checkout::taken`],
//! [`Checkout::release_claim`]). If the order is not stored after all the claim is released
//! here, and if this process dies in between, it lapses after `claim_ttl`.

use flotilla_cart::contract::{
    CheckoutClaim, PROBLEM_CART_CHANGED, PROBLEM_CART_CLAIMED, TakenLine, TakenOrder,
};
use flotilla_chassis::Caller;
use flotilla_chassis::idempotency_key::IdempotencyKey;
use flotilla_chassis::transport::ClientError;

use super::Checkout;
use crate::contract::{Order, OrderStatus};
use crate::domain::OrderId;
use crate::error::OrdersError;

impl Checkout {
    /// Claims the caller's cart for order `id` at `version`; the cart's 409s become ours.
    pub(super) async fn claim(
        &self,
        caller: &Caller,
        id: &OrderId,
        version: u64,
    ) -> Result<(), OrdersError> {
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
    pub(super) async fn release_unplaced(
        &self,
        caller: &Caller,
        id: &OrderId,
        key: &IdempotencyKey,
    ) {
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
    pub(super) async fn settle_twin_claim(&self, caller: &Caller, order_id: &str) {
        if let Ok(Some(order)) = self.store.order(order_id).await
            && order.status == OrderStatus::Cancelled
        {
            self.release_claim(caller, order_id).await;
        }
    }

    /// Ends order `order_id`'s claim on the caller's cart now, rather than when the cart
    /// hears of the order's end: the customer whose card was declined may try again at once.
    /// Best effort: the event does it anyway.
    pub(super) async fn release_claim(&self, caller: &Caller, order_id: &str) {
        let released = self
            .deadline("cart", self.cart.release(caller, order_id))
            .await;
        if let Err(e) = released {
            tracing::warn!(order_id, error = %e, "the cart's claim is left to end by itself");
        }
    }

    /// Tells the cart that `order` (the caller's) was confirmed: its lines leave the cart and
    /// its claim ends now. Best effort: `order.confirmed` does it anyway.
    pub(super) async fn taken(&self, caller: &Caller, order: &Order) {
        let taken = TakenOrder {
            lines: order
                .lines
                .iter()
                .map(|line| TakenLine {
                    product_id: line.product_id,
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
}
