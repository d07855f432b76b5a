//! The templates of checkout, the order page and the order history, and how an order reads to
//! a shopper: a status badge instead of `PENDING`, dates without seconds, reasons in words.

use askama::Template;
use flotilla_cart::contract::Cart;
use flotilla_chassis::Money;
use flotilla_orders::contract::{Order, OrderStatus};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::countries::Country;
use crate::views::{Chrome, Pager, capitalized};

/// `GET /checkout`, and the form again after a refusal.
#[derive(Template)]
#[template(path = "checkout.html")]
pub struct CheckoutPage {
    /// The header.
    pub chrome: Chrome,
    /// The caller's cart: the summary above the form.
    pub cart: Cart,
    /// The address typed so far (never the card number).
    pub address: AddressFields,
    /// Why the last attempt was refused.
    pub messages: FormMessages,
    /// The key that makes this form place at most one order.
    pub idempotency_key: String,
    /// The countries of the select.
    pub countries: &'static [Country],
    /// What shipping to the chosen country costs, when shipping could say.
    pub shipping: Option<ShippingEstimate>,
}

/// The address fields of the checkout form, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFields {
    /// The recipient.
    pub name: String,
    /// Street and number.
    pub line1: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
}

/// Messages of a refused form: one per field where the refusal names it, and general ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormMessages {
    fields: Vec<(String, String)>,
    general: Vec<String>,
}

impl FormMessages {
    /// Adds `message` next to the form field `field`; the first message of a field wins.
    pub fn field(&mut self, field: &str, message: String) {
        if self.for_field(field).is_none() {
            self.fields.push((field.to_owned(), message));
        }
    }

    /// Adds `message` above the form.
    pub fn general(&mut self, message: String) {
        self.general.push(message);
    }

    /// The message next to field `field`, if any.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }

    /// The messages above the form.
    pub fn general_messages(&self) -> &[String] {
        &self.general
    }

    /// True when nothing was refused.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.general.is_empty()
    }
}

/// The shipping cost shown before paying.
#[derive(Debug, Clone)]
pub struct ShippingEstimate {
    /// The destination's name.
    pub country: String,
    /// What shipping there costs.
    pub amount: Money,
    /// The cart's total plus shipping (`None` if the currencies differ).
    pub total: Option<Money>,
}

/// `GET /orders/{id}`.
#[derive(Template)]
#[template(path = "order.html")]
pub struct OrderPage {
    /// The header.
    pub chrome: Chrome,
    /// The order.
    pub order: Order,
    /// Its status as a shopper reads it.
    pub progress: Progress,
    /// The destination country's name.
    pub country: String,
    /// When it was placed, for display.
    pub placed: String,
    /// Why it was cancelled, in words (empty unless cancelled).
    pub reason: String,
    /// What happened to it, oldest first.
    pub history: Vec<HistoryRow>,
}

/// One change of an order's status.
#[derive(Debug, Clone)]
pub struct HistoryRow {
    /// The step, in words.
    pub status: String,
    /// What the service noted about it.
    pub note: Option<String>,
    /// When (RFC 3339, for the `datetime` attribute).
    pub at: String,
    /// When, for display.
    pub at_text: String,
}

impl HistoryRow {
    /// The row of one status change.
    pub fn new(status: &str, note: Option<&str>, at: OffsetDateTime) -> Self {
        Self {
            status: words(status),
            note: note.map(str::to_owned),
            at: at.format(&Rfc3339).unwrap_or_default(),
            at_text: display_time(at),
        }
    }
}

/// `GET /orders`.
#[derive(Template)]
#[template(path = "orders.html")]
pub struct OrdersPage {
    /// The header.
    pub chrome: Chrome,
    /// This page of the caller's orders, newest first.
    pub orders: Vec<OrderRow>,
    /// Orders in all.
    pub total: u64,
    /// Paging links.
    pub pager: Pager,
}

/// One order in the history.
#[derive(Debug, Clone)]
pub struct OrderRow {
    /// The order id (its page is `/orders/{id}`).
    pub id: String,
    /// When it was placed, for display.
    pub placed: String,
    /// Its status.
    pub progress: Progress,
    /// Items ordered.
    pub items: u32,
    /// What it costs, shipping included.
    pub total: Money,
}

impl From<&Order> for OrderRow {
    fn from(order: &Order) -> Self {
        Self {
            id: order.id.clone(),
            placed: display_time(order.created_at),
            progress: Progress::of(order.status),
            items: order
                .lines
                .iter()
                .fold(0, |n: u32, l| n.saturating_add(l.quantity)),
            total: order.total,
        }
    }
}

/// Where an order stands, as its badge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The checkout saga is still running.
    Processing,
    /// Paid and handed to the carrier.
    Confirmed,
    /// Given up; nothing is charged.
    Cancelled,
}

impl Progress {
    /// The progress of an order in `status`.
    pub fn of(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Pending => Progress::Processing,
            OrderStatus::Confirmed => Progress::Confirmed,
            OrderStatus::Cancelled => Progress::Cancelled,
        }
    }

    /// The badge's text.
    pub fn label(self) -> &'static str {
        match self {
            Progress::Processing => "Processing",
            Progress::Confirmed => "Confirmed",
            Progress::Cancelled => "Cancelled",
        }
    }

    /// The badge's CSS class.
    pub fn class(self) -> &'static str {
        match self {
            Progress::Processing => "pending",
            Progress::Confirmed => "confirmed",
            Progress::Cancelled => "cancelled",
        }
    }

    /// True while the page should refresh itself.
    pub fn is_processing(self) -> bool {
        self == Progress::Processing
    }
}

/// A time as `2026-11-26 21:44 UTC`.
pub fn display_time(t: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// A machine name such as `PAYMENT_AUTHORIZED` or `card-declined` as words: "Payment
/// authorized", "Card declined".
pub fn words(name: &str) -> String {
    capitalized(&name.replace(['_', '-'], " ").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_lose_their_seconds_and_offsets() {
        assert_eq!(
            display_time(datetime!(2026-11-26 21:44:09.123 UTC)),
            "2026-11-26 21:44 UTC"
        );
        assert_eq!(
            display_time(datetime!(2026-11-26 23:44:09 +02:00)),
            "2026-11-26 21:44 UTC"
        );
    }

    #[test]
    fn machine_names_read_as_words() {
        assert_eq!(words("PAYMENT_AUTHORIZED"), "Payment authorized");
        assert_eq!(words("card-declined"), "Card declined");
        assert_eq!(words(""), "");
    }

    fn order(status: OrderStatus) -> Order {
        let price = Money::new(1999, flotilla_chassis::Currency::EUR);
        Order {
            id: "ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b".into(),
            user_id: "user-1".into(),
            status,
            reason: None,
            lines: Vec::new(),
            subtotal: price,
            shipping: price,
            total: price,
            address: flotilla_orders::contract::Address {
                name: "Ada".into(),
                line1: "Unter den Linden 1".into(),
                city: "Berlin".into(),
                postal_code: "10117".into(),
                country: "DE".into(),
            },
            payment_id: None,
            shipment_id: None,
            tracking_number: None,
            history: Vec::new(),
            created_at: datetime!(2026-11-26 21:44:09 UTC),
            updated_at: datetime!(2026-11-26 21:44:09 UTC),
        }
    }

    /// The order page of an order in `status`, rendered.
    fn order_page(status: OrderStatus) -> String {
        let page = OrderPage {
            chrome: Chrome::new("Flotilla", true),
            order: order(status),
            progress: Progress::of(status),
            country: "Germany".into(),
            placed: String::new(),
            reason: String::new(),
            history: Vec::new(),
        };
        page.render().expect("renders")
    }

    #[test]
    fn only_a_pending_order_refreshes_itself() {
        let refresh = r#"<meta http-equiv="refresh" content="2">"#;
        let pending = order_page(OrderStatus::Pending);
        assert!(pending.contains(refresh));
        assert!(pending.contains("We're processing your order"));
        assert!(
            pending
                .contains(r#"<a href="/orders/ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b">Refresh</a>"#)
        );
        for settled in [OrderStatus::Confirmed, OrderStatus::Cancelled] {
            let body = order_page(settled);
            assert!(!body.contains(refresh), "{settled:?}");
            assert!(!body.contains("Refresh</a>"), "{settled:?}");
        }
    }

    #[test]
    fn a_field_keeps_its_first_message() {
        let mut messages = FormMessages::default();
        assert!(messages.is_empty());
        messages.field("city", "First.".into());
        messages.field("city", "Second.".into());
        messages.general("Above.".into());
        assert_eq!(messages.for_field("city"), Some("First."));
        assert_eq!(messages.for_field("name"), None);
        assert_eq!(messages.general_messages(), ["Above.".to_owned()]);
    }
}
