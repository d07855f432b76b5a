//! The provider's rules, with no I/O: which cards it accepts and what each test card does, what
//! an acceptable authorization looks like, and which state a payment may move to from which.
//!
//! The simulated provider accepts only Stripe's test card numbers
//! (<https://docs.stripe.com/testing#declined-payments>), so a card is fully described by its
//! brand and last four digits: that is all the service keeps, and all it needs later (the
//! card whose capture is declined is recognised by its last four digits at capture time).

use flotilla_chassis::{Money, ids};
use time::OffsetDateTime;

use crate::contract::{DeclineCode, LedgerKind, Payment, PaymentStatus};

/// Longest `order_id` accepted (the orders service's ids are far shorter).
pub const MAX_ORDER_ID_CHARS: usize = 128;
/// Longest raw `card_number` looked at; anything longer cannot be 19 digits with spaces.
const MAX_CARD_INPUT_CHARS: usize = 64;

/// Why an authorization request is refused before anything is recorded (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// Empty, too long, or with control characters.
    #[error("order_id must be 1 to {MAX_ORDER_ID_CHARS} printable characters")]
    OrderId,
    /// Zero, negative or above the configured maximum.
    #[error("amount must be more than 0 and at most {max} minor units")]
    Amount {
        /// The configured maximum.
        max: i64,
    },
    /// Something other than digits and spaces.
    #[error("card_number must contain only digits and spaces")]
    CardNotDigits,
    /// Fewer than 12 or more than 19 digits.
    #[error("card_number must have 12 to 19 digits")]
    CardLength,
    /// A well-formed number that is not one of the test cards.
    #[error("this provider accepts only its test card numbers")]
    UnknownCard,
}

impl InvalidRequest {
    /// The request field at fault.
    pub fn field(&self) -> &'static str {
        match self {
            InvalidRequest::OrderId => "order_id",
            InvalidRequest::Amount { .. } => "amount",
            _ => "card_number",
        }
    }

    /// True for a problem with the card number (answered as `invalid-card`).
    pub fn is_card(&self) -> bool {
        self.field() == "card_number"
    }
}

/// A payment id: `pay_` and 32 lower-case hex digits (a UUIDv7, so ids sort by creation time).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentId(String);

impl PaymentId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(ids::new_id("pay"))
    }

    /// Accepts only text of the generated form, so an id that cannot exist is answered as
    /// unknown without a query.
    pub fn parse(s: &str) -> Option<Self> {
        ids::is_id("pay", s).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An order id as the orders service sent it: 1 to 128 characters, none of them control
/// characters (it ends up in logs and problem details).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    /// Validates `s`.
    pub fn parse(s: &str) -> Result<Self, InvalidRequest> {
        let count = s.chars().count();
        if count == 0 || count > MAX_ORDER_ID_CHARS || s.chars().any(char::is_control) {
            return Err(InvalidRequest::OrderId);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An amount the provider will authorize: positive and at most `max_minor`.
pub fn parse_amount(amount: Money, max_minor: i64) -> Result<Money, InvalidRequest> {
    if amount.amount_minor <= 0 || amount.amount_minor > max_minor {
        return Err(InvalidRequest::Amount { max: max_minor });
    }
    Ok(amount)
}

/// What a test card does when authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBehaviour {
    /// Authorizes and captures.
    Approves,
    /// Declined at authorization.
    Declines(DeclineCode),
    /// The provider fails (retryable); nothing happens.
    ProcessingError,
    /// Authorizes, but its capture is declined.
    DeclinesCapture,
}

/// The test cards: `(number, behaviour)`.
const TEST_CARDS: [(&str, CardBehaviour); 5] = [
    ("4242424242424242", CardBehaviour::Approves),
    (
        "4000000000000002",
        CardBehaviour::Declines(DeclineCode::CardDeclined),
    ),
    (
        "4000000000009995",
        CardBehaviour::Declines(DeclineCode::InsufficientFunds),
    ),
    ("4000000000000119", CardBehaviour::ProcessingError),
    ("4000000000000341", CardBehaviour::DeclinesCapture),
];

/// A card reduced to what may be kept: brand, last four digits and what it does. The number
/// itself is dropped as soon as it has been parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// The last four digits.
    pub last4: String,
    /// `visa`, `mastercard`, `amex` or `unknown`.
    pub brand: &'static str,
    /// What the provider does with it.
    pub behaviour: CardBehaviour,
}

impl Card {
    /// Parses a card number (spaces ignored) and recognises the test card.
    pub fn parse(number: &str) -> Result<Self, InvalidRequest> {
        if number.chars().count() > MAX_CARD_INPUT_CHARS {
            return Err(InvalidRequest::CardLength);
        }
        let digits: String = number.chars().filter(|c| *c != ' ').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidRequest::CardNotDigits);
        }
        if !(12..=19).contains(&digits.len()) {
            return Err(InvalidRequest::CardLength);
        }
        let behaviour = TEST_CARDS
            .iter()
            .find(|(test, _)| *test == digits)
            .map(|(_, behaviour)| *behaviour)
            .ok_or(InvalidRequest::UnknownCard)?;
        Ok(Self {
            last4: digits[digits.len() - 4..].to_owned(),
            brand: brand_of(&digits),
            behaviour,
        })
    }
}

/// The brand from the number's prefix (the common IIN ranges; enough for display).
fn brand_of(digits: &str) -> &'static str {
    let prefix2: u32 = digits.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
    let prefix4: u32 = digits.get(..4).and_then(|p| p.parse().ok()).unwrap_or(0);
    match (prefix2, prefix4) {
        (40..=49, _) => "visa",
        (51..=55, _) | (_, 2221..=2720) => "mastercard",
        (34 | 37, _) => "amex",
        _ => "unknown",
    }
}

/// The last four digits of the test card whose capture the provider declines. Only test cards
/// are accepted, and their last four digits tell them apart.
const CAPTURE_DECLINED_LAST4: &str = "0341";

/// True for the stored card whose capture the provider declines.
pub fn declines_capture(card_last4: &str) -> bool {
    card_last4 == CAPTURE_DECLINED_LAST4
}

/// A change of state after authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Take the authorized amount.
    Capture,
    /// Release the hold.
    Void,
    /// Give back the captured amount.
    Refund,
}

/// What to do with a transition requested of a payment in some state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Move from [`Transition::from`] to [`Transition::to`] and append a ledger entry.
    Apply,
    /// The payment is already where the transition leads: answer it as it is (void and refund
    /// are idempotent whatever the key).
    AlreadyDone,
    /// Refuse, with a recorded answer.
    Refuse(Refusal),
}

/// Why a transition is refused (402 or 409, recorded under the key like any answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The provider declines this card's capture; the payment stays authorized.
    CaptureDeclined,
    /// A payment is captured at most once, ever.
    AlreadyCaptured,
    /// The payment's state does not allow the transition.
    InvalidState(PaymentStatus),
}

impl Transition {
    /// The idempotency operation and ledger kind of this transition.
    pub fn kind(self) -> LedgerKind {
        match self {
            Transition::Capture => LedgerKind::Capture,
            Transition::Void => LedgerKind::Void,
            Transition::Refund => LedgerKind::Refund,
        }
    }

    /// The only state it may start from.
    pub fn from(self) -> PaymentStatus {
        match self {
            Transition::Capture | Transition::Void => PaymentStatus::Authorized,
            Transition::Refund => PaymentStatus::Captured,
        }
    }

    /// The state it leads to.
    pub fn to(self) -> PaymentStatus {
        match self {
            Transition::Capture => PaymentStatus::Captured,
            Transition::Void => PaymentStatus::Voided,
            Transition::Refund => PaymentStatus::Refunded,
        }
    }

    /// The last four digits of the card on which this transition is refused even from
    /// [`Transition::from`]: the store's conditional UPDATE leaves such a payment alone, so that
    /// the UPDATE applies exactly when [`Transition::decide`] says [`Decision::Apply`].
    pub fn refused_last4(self) -> Option<&'static str> {
        match self {
            Transition::Capture => Some(CAPTURE_DECLINED_LAST4),
            Transition::Void | Transition::Refund => None,
        }
    }

    /// What to do when the payment is `current` and its card ends in `card_last4`.
    pub fn decide(self, current: PaymentStatus, card_last4: &str) -> Decision {
        match self {
            Transition::Capture if current == PaymentStatus::Authorized => {
                if declines_capture(card_last4) {
                    Decision::Refuse(Refusal::CaptureDeclined)
                } else {
                    Decision::Apply
                }
            }
            // One capture per payment, ever: a second one (with another key, since the same
            // key replays) is refused even though the payment is where it would lead.
            Transition::Capture if current == PaymentStatus::Captured => {
                Decision::Refuse(Refusal::AlreadyCaptured)
            }
            _ if current == self.from() => Decision::Apply,
            _ if current == self.to() => Decision::AlreadyDone,
            _ => Decision::Refuse(Refusal::InvalidState(current)),
        }
    }
}

/// A payment as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub id: PaymentId,
    pub order_id: OrderId,
    /// The amount authorized.
    pub amount: Money,
    pub status: PaymentStatus,
    pub card_last4: String,
    pub card_brand: String,
    /// Why it was declined, for a declined payment.
    pub decline_code: Option<DeclineCode>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl PaymentRecord {
    pub fn to_contract(&self) -> Payment {
        Payment {
            id: self.id.as_str().to_owned(),
            order_id: self.order_id.as_str().to_owned(),
            amount: self.amount,
            status: self.status,
            card_last4: self.card_last4.clone(),
            card_brand: self.card_brand.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[cfg(test)]
mod tests;
