//! Reading HTML form posts: the extractor, and the field types a form's text is parsed into.
//!
//! Form fields arrive as text whatever the `<input type>` says, so the form structs take
//! `String`s and the handlers parse them into [`Quantity`], the catalog's [`ProductId`] and
//! [`OrderId`]: a typo in a number becomes a message next to the form, never axum's plain-text
//! rejection. The services' validation messages ("must be at least 8 characters") are turned
//! into sentences that name their field here too.

use axum::extract::{FromRequest, OptionalFromRequestParts, Request};
use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Caller;
use serde::de::DeserializeOwned;
use std::sync::Arc;

use crate::error::PageError;
use crate::shop::Shop;
use crate::views::capitalized;

/// An `application/x-www-form-urlencoded` body; an unreadable one is a 400 error page.
#[derive(Debug, Clone)]
pub struct HtmlForm<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<Shop>> for HtmlForm<T> {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, shop: &Arc<Shop>) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let caller = <Caller as OptionalFromRequestParts<()>>::from_request_parts(&mut parts, &())
            .await
            .ok()
            .flatten();
        let req = Request::from_parts(parts, body);
        match axum::Form::<T>::from_request(req, shop).await {
            Ok(axum::Form(value)) => Ok(HtmlForm(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, "unreadable form post");
                // A body over the limit with no Content-Length is found out here, while reading.
                let error = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    PageError::TooLarge
                } else {
                    PageError::BadRequest
                };
                Err(error.page(shop.bare_chrome(caller.as_ref())))
            }
        }
    }
}

/// How many of one product a cart line holds: 0 to [`Quantity::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(u32);

/// Why a typed quantity was refused; the text is shown next to the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a whole number.
    #[error("Please enter a whole number.")]
    NotANumber,
    /// Zero where at least one is needed.
    #[error("Please choose at least one.")]
    Zero,
    /// More than the cart takes.
    #[error("You can have at most 99 of one product in your cart.")]
    TooMany,
}

impl Quantity {
    /// The most of one product a cart holds (the cart service refuses more).
    pub const MAX: u32 = 99;

    /// A quantity from 0 (remove the line) to [`Quantity::MAX`].
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let n: u64 = text.trim().parse().map_err(|_| QuantityError::NotANumber)?;
        match u32::try_from(n) {
            Ok(n) if n <= Self::MAX => Ok(Quantity(n)),
            _ => Err(QuantityError::TooMany),
        }
    }

    /// A quantity from 1 to [`Quantity::MAX`]: how many to add.
    pub fn parse_positive(text: &str) -> Result<Self, QuantityError> {
        match Self::parse(text)? {
            Quantity(0) => Err(QuantityError::Zero),
            q => Ok(q),
        }
    }

    /// `self + more`, capped at [`Quantity::MAX`]: adding to a full line fills it, no more.
    pub fn add_capped(self, more: Quantity) -> Quantity {
        Quantity(self.0.saturating_add(more.0).min(Self::MAX))
    }

    /// Any count, capped at [`Quantity::MAX`].
    pub fn capped(n: u32) -> Quantity {
        Quantity(n.min(Self::MAX))
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The catalog product id typed into a URL or a form, spaces around it ignored. Text of any
/// other shape names no product, so it is refused before any service is asked.
pub fn product_id(text: &str) -> Option<ProductId> {
    ProductId::parse(text.trim())
}

/// An order id as found in a URL: orders names its orders with UUIDs, so anything that is not
/// short and plain is a 404 without asking it. Being plain, it is also safe to put back into a
/// path or a `next=` parameter as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

impl OrderId {
    /// The id, if it could be one.
    pub fn parse(text: &str) -> Option<Self> {
        plain_id(text).map(OrderId)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text`, trimmed, if it is 1 to 64 ASCII letters, digits, hyphens and underscores: the ids
/// the services hand out.
fn plain_id(text: &str) -> Option<String> {
    let text = text.trim();
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then(|| text.to_owned())
}

/// Fallback when a service refuses a form without saying why.
pub const GENERIC_INVALID: &str = "Please check the form and try again.";

/// The services' field errors read "must be at least 8 characters"; on the page they name their
/// field: "Password must be at least 8 characters." A message that names its field already
/// ("a card number has 12 to 19 digits") is only made a sentence.
pub fn field_message(field: &str, message: &str) -> String {
    let message = message.trim().trim_end_matches('.');
    let field = field.replace('_', " ");
    let text = if message.to_lowercase().contains(&field.to_lowercase()) {
        message.to_owned()
    } else {
        format!("{field} {message}")
    };
    format!("{}.", sentence(&text))
}

/// `text` starting with a capital letter, as a message on a page reads ([`GENERIC_INVALID`]
/// when there is no text).
pub fn sentence(text: &str) -> String {
    match capitalized(text) {
        text if text.is_empty() => GENERIC_INVALID.to_owned(),
        text => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_parsed_and_capped() {
        assert_eq!(Quantity::parse(" 3 ").map(Quantity::get), Ok(3));
        assert_eq!(Quantity::parse("0").map(Quantity::get), Ok(0));
        assert_eq!(Quantity::parse("99").map(Quantity::get), Ok(99));
        assert_eq!(Quantity::parse("100"), Err(QuantityError::TooMany));
        assert_eq!(Quantity::parse("99999999999"), Err(QuantityError::TooMany));
        assert_eq!(Quantity::parse("-1"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse("two"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse_positive("0"), Err(QuantityError::Zero));
        let sum = Quantity::capped(98).add_capped(Quantity::capped(5));
        assert_eq!(sum.get(), Quantity::MAX);
        assert_eq!(Quantity::capped(2).add_capped(Quantity::capped(3)).get(), 5);
    }

    #[test]
    fn messages_read_as_sentences() {
        assert_eq!(
            sentence("must be at least 8 characters"),
            "Must be at least 8 characters"
        );
        assert_eq!(sentence("  "), GENERIC_INVALID);
        assert_eq!(capitalized("  "), "");
        assert_eq!(
            field_message("password", "must be at least 8 characters"),
            "Password must be at least 8 characters."
        );
        assert_eq!(
            field_message("email", "Email is not valid."),
            "Email is not valid."
        );
        assert_eq!(
            field_message("card_number", "a card number has 12 to 19 digits"),
            "A card number has 12 to 19 digits."
        );
    }

    #[test]
    fn product_ids_are_the_catalogs() {
        assert_eq!(
            product_id("p0000042").map(|p| p.to_string()),
            Some("p0000042".to_owned())
        );
        assert_eq!(
            product_id(" p0000042 ").map(|p| p.to_string()),
            Some("p0000042".to_owned()),
            "spaces typed around it are not part of it"
        );
        for odd in [
            "",
            "../admin",
            "a b",
            "p42",
            "p0000000",
            "P0000042",
            &"p".repeat(65),
        ] {
            assert!(product_id(odd).is_none(), "{odd:?}");
        }
    }

    #[test]
    fn order_ids_are_short_and_plain() {
        let order = "0190b2c4-7e1a-4c3e-9f00-0123456789ab";
        assert_eq!(
            OrderId::parse(order).map(|o| o.as_str().to_owned()),
            Some(order.to_owned())
        );
        assert!(OrderId::parse("../orders").is_none());
        assert!(OrderId::parse(&"o".repeat(65)).is_none());
    }
}
