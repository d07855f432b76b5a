//! The notifications rules, free of I/O: which ids and sender addresses are acceptable, and what
//! the message about a confirmed or cancelled order says.
//!
//! Text that arrives in events ends up in a subject line and an email body, so it is parsed here
//! before it is trusted: ids are short and single-line (a line break in a subject is a header
//! injection in a real mailer), free text is flattened to one bounded line.

use flotilla_chassis::Money;

use crate::contract::MessageKind;

/// Longest user or order id accepted, the same bound the chassis puts on a caller's user id.
pub const MAX_ID_LEN: usize = 128;

/// Longest piece of free text (a cancellation reason, a tracking number) shown in a message; the
/// rest is cut with an ellipsis.
pub const MAX_TEXT_LEN: usize = 500;

/// Most order lines listed in a confirmation; a longer order is summarised after them.
pub const MAX_LISTED_LINES: usize = 100;

/// Why text is not an acceptable id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than [`MAX_ID_LEN`] characters.
    #[error("must be 1 to {MAX_ID_LEN} characters long")]
    Length,
    /// Holds a control character (a line break, a tab, ...).
    #[error("must not contain control characters")]
    Control,
}

/// Checks the rules shared by every id.
fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() || raw.chars().count() > MAX_ID_LEN {
        return Err(IdError::Length);
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::Control);
    }
    Ok(())
}

/// The id of the user a message is for (identity's `sub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Parses a user id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        check_id(raw).map(|()| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of the order a message is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    /// Parses an order id.
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        check_id(raw).map(|()| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why text is not a sender address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must look like local@domain, at most 254 characters, without spaces")]
pub struct SenderError;

/// The address messages say they come from (the `[notifications] sender` setting).
///
/// Only the shape is checked (one `@` between two non-empty parts, no spaces or control
/// characters, RFC 5321's 254-character limit): the simulator sends nothing, and a real mailer
/// would verify the domain itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAddress(String);

impl SenderAddress {
    /// Parses a sender address.
    pub fn parse(raw: &str) -> Result<Self, SenderError> {
        let shaped = raw.len() <= 254
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(raw.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        if shaped {
            Ok(Self(raw.to_owned()))
        } else {
            Err(SenderError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One line of a confirmed order, as the message lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderedLine {
    /// The catalog's product id.
    pub product_id: String,
    /// How many were ordered.
    pub quantity: u32,
}

/// An order that was confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmedOrder {
    pub order_id: OrderId,
    /// The buyer.
    pub user_id: UserId,
    /// What was ordered.
    pub lines: Vec<OrderedLine>,
    /// What it costs.
    pub total: Money,
    /// The shipment's tracking number, when it already has one.
    pub tracking_number: Option<String>,
}

/// An order that was cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelledOrder {
    pub order_id: OrderId,
    /// The buyer.
    pub user_id: UserId,
    /// Why it was cancelled, in words the buyer may read.
    pub reason: String,
    /// What it would have cost.
    pub total: Money,
}

/// A message ready to be recorded: everything but its id and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The recipient.
    pub user_id: UserId,
    /// The order it is about.
    pub order_id: OrderId,
    pub kind: MessageKind,
    /// The subject line (one line).
    pub subject: String,
    pub body: String,
}

impl ConfirmedOrder {
    /// The confirmation sent to the buyer, signed with `sender`.
    pub fn compose(&self, sender: &SenderAddress) -> Draft {
        let order = self.order_id.as_str();
        let mut body = format!("Hello,\n\nthank you for your order {order}. It is confirmed:\n\n");
        for line in self.lines.iter().take(MAX_LISTED_LINES) {
            let product = one_line(&line.product_id);
            body.push_str(&format!("  {} × {product}\n", line.quantity));
        }
        if let Some(more) = self.lines.len().checked_sub(MAX_LISTED_LINES)
            && more > 0
        {
            body.push_str(&format!("  … and {more} more lines\n"));
        }
        body.push_str(&format!("\nTotal: {}\n", self.total));
        match self.tracking_number.as_deref().map(one_line) {
            Some(tracking) if !tracking.is_empty() => {
                body.push_str(&format!("Tracking number: {tracking}\n"));
            }
            _ => body.push_str("Tracking number: not assigned yet\n"),
        }
        body.push_str(&signature(sender));
        Draft {
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
            kind: MessageKind::OrderConfirmed,
            subject: format!("Your order {order} is confirmed"),
            body,
        }
    }
}

impl CancelledOrder {
    /// The cancellation notice sent to the buyer, signed with `sender`.
    pub fn compose(&self, sender: &SenderAddress) -> Draft {
        let order = self.order_id.as_str();
        let reason = one_line(&self.reason);
        let reason = if reason.is_empty() {
            "no reason was given".to_owned()
        } else {
            reason
        };
        let body = format!(
            "Hello,\n\nyour order {order} was cancelled.\n\nReason: {reason}\nOrder total: {}\n{}",
            self.total,
            signature(sender)
        );
        Draft {
            user_id: self.user_id.clone(),
            order_id: self.order_id.clone(),
            kind: MessageKind::OrderCancelled,
            subject: format!("Your order {order} was cancelled"),
            body,
        }
    }
}

/// The closing lines of every message.
fn signature(sender: &SenderAddress) -> String {
    format!("\nQuestions? Write to {}.\n", sender.as_str())
}

/// `text` as one trimmed line of at most [`MAX_TEXT_LEN`] characters: control characters
/// (line breaks included) become spaces, and a cut is marked with an ellipsis.
fn one_line(text: &str) -> String {
    let flat: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= MAX_TEXT_LEN {
        return flat;
    }
    let mut cut: String = flat.chars().take(MAX_TEXT_LEN - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::Currency;

    fn sender() -> SenderAddress {
        SenderAddress::parse("shop@flotilla.example").expect("valid")
    }

    fn confirmed(lines: Vec<OrderedLine>, tracking_number: Option<&str>) -> ConfirmedOrder {
        ConfirmedOrder {
            order_id: OrderId::parse("o-1").expect("valid"),
            user_id: UserId::parse("alice").expect("valid"),
            lines,
            total: Money::new(4250, Currency::EUR),
            tracking_number: tracking_number.map(str::to_owned),
        }
    }

    fn line(product_id: &str, quantity: u32) -> OrderedLine {
        OrderedLine {
            product_id: product_id.to_owned(),
            quantity,
        }
    }

    #[test]
    fn ids_are_short_single_line_text() {
        assert_eq!(UserId::parse("alice").expect("valid").as_str(), "alice");
        assert!(OrderId::parse(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert_eq!(
            OrderId::parse(&"x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::Length)
        );
        assert_eq!(UserId::parse(""), Err(IdError::Length));
        assert_eq!(OrderId::parse("o1\r\nBcc: x"), Err(IdError::Control));
    }

    #[test]
    fn sender_addresses_need_one_at_between_two_parts() {
        assert!(SenderAddress::parse("shop@flotilla.example").is_ok());
        for bad in [
            "",
            "shop",
            "@flotilla.example",
            "shop@",
            "a@b@c",
            "shop @x",
            "shop@x\n",
        ] {
            assert_eq!(SenderAddress::parse(bad), Err(SenderError), "{bad:?}");
        }
        assert!(SenderAddress::parse(&format!("a@{}", "b".repeat(253))).is_err());
    }

    #[test]
    fn a_confirmation_lists_lines_total_tracking_and_sender() {
        let draft = confirmed(
            vec![line("p0000001", 2), line("p0000002", 1)],
            Some("TRK-42"),
        )
        .compose(&sender());
        assert_eq!(draft.subject, "Your order o-1 is confirmed");
        assert_eq!(draft.kind, MessageKind::OrderConfirmed);
        assert_eq!(draft.user_id.as_str(), "alice");
        for expected in [
            "  2 × p0000001\n",
            "  1 × p0000002\n",
            "Total: 42.50 EUR",
            "Tracking number: TRK-42",
            "shop@flotilla.example",
        ] {
            assert!(
                draft.body.contains(expected),
                "{expected:?} in {}",
                draft.body
            );
        }
    }

    #[test]
    fn a_confirmation_without_tracking_says_so_and_long_orders_are_summarised() {
        let lines = (0..MAX_LISTED_LINES + 3)
            .map(|n| line(&format!("p{n:07}"), 1))
            .collect();
        let draft = confirmed(lines, None).compose(&sender());
        assert!(draft.body.contains("Tracking number: not assigned yet"));
        assert!(draft.body.contains("… and 3 more lines"));
        assert!(!draft.body.contains(&format!("p{:07}", MAX_LISTED_LINES)));
    }

    #[test]
    fn a_cancellation_gives_the_reason_on_one_bounded_line() {
        let order = CancelledOrder {
            order_id: OrderId::parse("o-2").expect("valid"),
            user_id: UserId::parse("bob").expect("valid"),
            reason: "  payment declined\r\nBcc: everyone  ".to_owned(),
            total: Money::new(999, Currency::EUR),
        };
        let draft = order.compose(&sender());
        assert_eq!(draft.subject, "Your order o-2 was cancelled");
        assert_eq!(draft.kind, MessageKind::OrderCancelled);
        assert!(
            draft
                .body
                .contains("Reason: payment declined  Bcc: everyone\n")
        );
        assert!(draft.body.contains("Order total: 9.99 EUR"));

        let long = CancelledOrder {
            reason: "x".repeat(10_000),
            ..order.clone()
        };
        let body = long.compose(&sender()).body;
        assert!(body.contains(&format!("{}…", "x".repeat(MAX_TEXT_LEN - 1))));
        assert!(!body.contains(&"x".repeat(MAX_TEXT_LEN)));

        let silent = CancelledOrder {
            reason: " ".to_owned(),
            ..order
        };
        assert!(
            silent
                .compose(&sender())
                .body
                .contains("no reason was given")
        );
    }
}
