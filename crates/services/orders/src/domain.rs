//! The rules of placing an order, free of I/O: what an order id and a card number may be and
//! how a checkout request is fingerprinted here; how an order is priced from the cart's lines,
//! the catalog's current prices and the shipping quote in [`pricing`]; how an order reads before
//! and after its saga in [`order_view`].
//!
//! Input is parsed into these types at the edge (the `Idempotency-Key` by the chassis's
//! [`IdempotencyKey`](flotilla_chassis::idempotency_key::IdempotencyKey) extractor), so the
//! store and the saga never see a key, card or id that could not be one. The state machine of
//! the saga lives in [`crate::saga`].

mod order_view;
mod pricing;

use flotilla_chassis::ids;
use flotilla_chassis::problem::FieldError;
use sha2::{Digest, Sha256};

use crate::contract::CheckoutRequest;

pub use order_view::{PLACED_NOTE, PricedOrder, ended};
pub use pricing::{
    PricedLine, PricingError, Totals, WantedLine, item_count, listed, price_lines, totals,
};

/// An order id: `ord_` and 32 lower-case hex digits. It is also the inventory reservation id,
/// the cart claim's holder and the stem of every payment idempotency key, so it stays within
/// the characters those accept.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    /// The id of the order `user_id` places with idempotency key `key`: a digest of the two,
    /// not a random id, so that every request carrying one key names the same order *before*
    /// any of them has stored it. That is what lets concurrent repeats of one request share the
    /// cart's claim (a claim is granted again to the same order) and still end as one order,
    /// while a request with another key is another order and finds the cart claimed. Keys are
    /// never reused for another order (see `checkout_keys`), so neither are these ids. They do
    /// not sort by creation time; lists sort by `created_at`.
    pub fn for_checkout(user_id: &str, key: &str) -> Self {
        let mut digest = Sha256::new();
        // The lengths keep ("ab", "c") and ("a", "bc") apart.
        for part in [user_id, key] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part.as_bytes());
        }
        let hex: String = digest.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Self(format!("ord_{hex}"))
    }

    /// Accepts only text of the generated form, so an id that cannot exist is answered as
    /// unknown without a query.
    pub fn parse(s: &str) -> Option<Self> {
        ids::is_id("ord", s).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A card number: 12 to 19 digits passing the Luhn check, spaces removed. Which numbers the provider accepts is the
/// payments service's judgement, not this type's. `Debug` shows only the last four digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl CardNumber {
    /// Parses `raw` (spaces allowed and ignored).
    pub fn parse(raw: &str) -> Option<Self> {
        // Longer input cannot be 19 digits with sensible spacing; refuse before copying it.
        if raw.len() > 64 {
            return None;
        }
        let digits: String = raw.chars().filter(|c| *c != ' ').collect();
        let valid = (12..=19).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && luhn(&digits);
        valid.then_some(Self(digits))
    }

    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }
}

/// The Luhn check every payment card number passes: a typo in one digit, or two neighbours
/// swapped, is refused at once instead of being sent to the payment provider.
fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match (i % 2 == 1, d * 2) {
                (true, doubled) if doubled > 9 => doubled - 9,
                (true, doubled) => doubled,
                (false, _) => d,
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(…{})", self.last4())
    }
}

/// Checks the request's address and card, reporting every invalid field.
pub fn validate_request(req: &CheckoutRequest) -> Result<CardNumber, Vec<FieldError>> {
    let mut errors: Vec<FieldError> = match req.address.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .into_iter()
            .map(|e| FieldError {
                field: format!("address.{}", e.field),
                message: e.message,
            })
            .collect(),
    };
    let card = CardNumber::parse(&req.card_number);
    if card.is_none() {
        errors.push(FieldError {
            field: "card_number".to_owned(),
            message: "a card number has 12 to 19 digits (spaces are ignored) and a valid check \
                      digit"
                .to_owned(),
        });
    }
    match card {
        Some(card) if errors.is_empty() => Ok(card),
        _ => Err(errors),
    }
}

/// The fingerprint of a checkout request, stored with its idempotency key: equal for a repeat,
/// different for another body.
///
/// The card enters only as its length and last four digits: an unkeyed hash of a whole card
/// number can be reversed by trying the few billion numbers of a known issuer, and the key
/// table is kept long after the card is forgotten. Two requests that differ only in the middle
/// digits of the card therefore count as one.
pub fn fingerprint(req: &CheckoutRequest) -> String {
    let digits: String = req.card_number.chars().filter(|c| *c != ' ').collect();
    // Not yet validated: count characters, never slice bytes.
    let length = digits.chars().count();
    let last4: String = digits.chars().skip(length.saturating_sub(4)).collect();
    let canonical = serde_json::json!({
        "address": req.address,
        "card_length": length,
        "card_last4": last4,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
