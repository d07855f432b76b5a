//! Shipping's rules, free of I/O: what a quote request and a shipment request may hold (the
//! address by the contract's own rules, [`Address::parse`]), the ids shipping makes and reads
//! back, how a tracking number looks, and (in [`pricing`]) what shipping costs.
//!
//! Requests arrive as the plain strings of [`crate::contract`]; they are parsed here into types
//! that can only hold valid values, so the store and the pricing never see a country code that
//! is not two letters or a parcel of zero items. Every invalid field is reported at once, named
//! the way it appears in the JSON (`address.city`, `lines[2].quantity`).

pub mod pricing;

use flotilla_chassis::problem::FieldError;
use rand::RngExt;

use crate::contract::address::{check_country, check_postal_code, country_code, field_error};
use crate::contract::{
    Address, CreateShipment, MAX_ITEMS, QuoteRequest, Shipment, ShipmentLine,
    TEST_REJECTED_POSTAL_CODE,
};

/// Longest product id a shipment line may name (the catalog's own limit).
pub const MAX_PRODUCT_ID_LEN: usize = 64;
/// Longest order id a shipment may name.
pub const MAX_ORDER_ID_LEN: usize = 128;

/// An assigned ISO 3166-1 alpha-2 country code (two ASCII upper-case letters, one of
/// [`crate::contract::address::ASSIGNED_COUNTRY_CODES`]). Any code other than the origin and the
/// EU members is priced as the rest of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses `raw` (already trimmed) by the contract's rule.
    pub fn parse(raw: &str) -> Option<Self> {
        country_code(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl std::fmt::Display for CountryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quote id: a UUIDv7 in its hyphenated lower-case form, made when the quote is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuoteId(String);

/// A shipment id: a UUIDv7 in its hyphenated lower-case form, made when the shipment is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ShipmentId(String);

/// The ids shipping makes, and the one rule for reading them back from a request.
macro_rules! uuid_id {
    ($name:ident) => {
        impl $name {
            /// A fresh id.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            /// Accepts only the form [`Self::generate`] writes, so an id that cannot exist is
            /// answered as unknown without a query.
            pub fn parse(raw: &str) -> Option<Self> {
                let id = uuid::Uuid::try_parse(raw).ok()?;
                (id.hyphenated().to_string() == raw).then(|| Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
uuid_id!(QuoteId);
uuid_id!(ShipmentId);

/// An order id as orders sent it: 1 to [`MAX_ORDER_ID_LEN`] characters, no control characters.
/// An order has at most one shipment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderId(String);

impl OrderId {
    /// `raw` exactly as given, when it keeps the rule.
    pub fn parse(raw: &str) -> Option<Self> {
        let len = raw.chars().count();
        (len > 0 && len <= MAX_ORDER_ID_LEN && !has_control(raw)).then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many items a parcel holds: 1 to [`MAX_ITEMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ItemCount(u32);

impl ItemCount {
    /// `n` items, or `None` outside 1..=[`MAX_ITEMS`].
    pub fn new(n: u32) -> Option<Self> {
        (1..=MAX_ITEMS).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A parcel's weight in grams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grams(pub u32);

/// A checked `POST /quotes` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteInput {
    /// Where to.
    pub country: CountryCode,
    /// The destination's postal code (trimmed); recorded, not priced.
    pub postal_code: String,
    /// How many items.
    pub items: ItemCount,
    /// How heavy, when known.
    pub weight: Option<Grams>,
}

impl QuoteInput {
    /// Checks every field of `req`, reporting each invalid one.
    pub fn parse(req: &QuoteRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_country(&req.country, "country", &mut errors);
        let country = CountryCode::parse(req.country.trim());
        check_postal_code(&req.postal_code, "postal_code", &mut errors);
        let items = ItemCount::new(req.items);
        if items.is_none() {
            errors.push(field_error(
                "items",
                format!("must be between 1 and {MAX_ITEMS}"),
            ));
        }
        match (country, items) {
            (Some(country), Some(items)) if errors.is_empty() => Ok(Self {
                country,
                postal_code: req.postal_code.trim().to_owned(),
                items,
                weight: req.weight_grams.map(Grams),
            }),
            _ => Err(errors),
        }
    }
}

/// A checked `POST /shipments` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShipment {
    /// The order, exactly as given.
    pub order_id: OrderId,
    /// The quote to honour, if any (an empty id counts as none, and so does one shipping could
    /// never have made).
    pub quote_id: Option<QuoteId>,
    /// The trimmed address.
    pub address: Address,
    /// The address's country.
    pub country: CountryCode,
    /// The lines, in the order given.
    pub lines: Vec<ShipmentLine>,
    /// The sum of the lines' quantities: what the shipment is priced by.
    pub items: ItemCount,
}

impl NewShipment {
    /// Checks every field of `req`, reporting each invalid one.
    pub fn parse(req: &CreateShipment) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let order_id = OrderId::parse(&req.order_id);
        if order_id.is_none() {
            errors.push(field_error(
                "order_id",
                format!("must be 1 to {MAX_ORDER_ID_LEN} characters, without control characters"),
            ));
        }
        let address = req.address.parse().map_err(|address_errors| {
            errors.extend(address_errors.into_iter().map(|e| FieldError {
                field: format!("address.{}", e.field),
                message: e.message,
            }));
        });
        let items = lines_errors(&req.lines, &mut errors);
        let country = address
            .as_ref()
            .ok()
            .and_then(|a| CountryCode::parse(&a.country));
        match (order_id, address, country, items) {
            (Some(order_id), Ok(address), Some(country), Some(items)) if errors.is_empty() => {
                Ok(Self {
                    order_id,
                    quote_id: req.quote_id.as_deref().and_then(QuoteId::parse),
                    address,
                    country,
                    lines: req.lines.clone(),
                    items,
                })
            }
            _ => Err(errors),
        }
    }

    /// True for the documented test address the carrier always rejects.
    pub fn carrier_rejects(&self) -> bool {
        self.address.postal_code == TEST_REJECTED_POSTAL_CODE
    }

    /// True when `existing` ships the same lines to the same address: a repeat of this request,
    /// to be answered with `existing` whatever its status. The quote is not compared: a retry may
    /// carry a newer one, and the order's shipment is already priced.
    pub fn repeats(&self, existing: &Shipment) -> bool {
        self.address == existing.address && self.lines == existing.lines
    }
}

/// Checks the lines and returns their total item count when it is in range.
fn lines_errors(lines: &[ShipmentLine], errors: &mut Vec<FieldError>) -> Option<ItemCount> {
    if lines.is_empty() {
        errors.push(field_error("lines", "must hold at least one line"));
        return None;
    }
    let mut total: u64 = 0;
    for (i, line) in lines.iter().enumerate() {
        let len = line.product_id.chars().count();
        if len == 0 || len > MAX_PRODUCT_ID_LEN || has_control(&line.product_id) {
            errors.push(field_error(
                &format!("lines[{i}].product_id"),
                format!("must be 1 to {MAX_PRODUCT_ID_LEN} characters, without control characters"),
            ));
        }
        if line.quantity == 0 {
            errors.push(field_error(
                &format!("lines[{i}].quantity"),
                "must be at least 1",
            ));
        }
        total += u64::from(line.quantity);
    }
    let items = u32::try_from(total).ok().and_then(ItemCount::new);
    if items.is_none() && total > 0 {
        errors.push(field_error(
            "lines",
            format!("must hold at most {MAX_ITEMS} items in all"),
        ));
    }
    items
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Characters of a tracking number after the prefix: digits and upper-case letters.
const TRACKING_ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Prefix of every tracking number, so support staff recognise one at a glance.
pub const TRACKING_PREFIX: &str = "FLT";
/// Random characters after the prefix: 36^12 ≈ 4.7e18 numbers, so a collision (which the
/// store's UNIQUE constraint catches and a retry resolves) is practically never seen.
pub const TRACKING_RANDOM_LEN: usize = 12;

/// A new tracking number: [`TRACKING_PREFIX`] and [`TRACKING_RANDOM_LEN`] characters drawn
/// uniformly from `rng`.
pub fn tracking_number(rng: &mut impl rand::Rng) -> String {
    let mut out = String::with_capacity(TRACKING_PREFIX.len() + TRACKING_RANDOM_LEN);
    out.push_str(TRACKING_PREFIX);
    for _ in 0..TRACKING_RANDOM_LEN {
        let i = rng.random_range(0..TRACKING_ALPHABET.len());
        out.push(char::from(TRACKING_ALPHABET[i]));
    }
    out
}

#[cfg(test)]
mod tests;
