//! Pricing an order: the cart's lines priced from the catalog's current prices, and the totals
//! with the shipping quote. Amounts that cannot be added up (mixed currencies, overflow) are a
//! broken peer, never a silently wrong charge.

use flotilla_catalog::contract::{Product, ProductId};
use flotilla_chassis::Money;
use flotilla_chassis::money::MoneyError;
use std::collections::HashMap;

/// A line to price: what the cart holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedLine {
    pub product_id: ProductId,
    /// How many, at least 1.
    pub quantity: u32,
}

/// A line priced from the catalog at checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: ProductId,
    /// The catalog's name for it.
    pub name: String,
    /// The catalog's current price.
    pub unit_price: Money,
    pub quantity: u32,
    /// `unit_price × quantity`.
    pub line_total: Money,
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// These products are no longer in the catalog.
    #[error("no longer available: {}", listed(.0))]
    Unavailable(Vec<ProductId>),
    /// The amounts cannot be added up (mixed currencies, overflow): a broken peer, not the
    /// customer's fault.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The lines priced from `products` (the catalog's answer), in the order of `wanted`.
pub fn price_lines(
    wanted: &[WantedLine],
    products: &[Product],
) -> Result<Vec<PricedLine>, PricingError> {
    let by_id: HashMap<ProductId, &Product> = products.iter().map(|p| (p.id, p)).collect();
    let missing: Vec<ProductId> = wanted
        .iter()
        .filter(|line| !by_id.contains_key(&line.product_id))
        .map(|line| line.product_id)
        .collect();
    if !missing.is_empty() {
        return Err(PricingError::Unavailable(missing));
    }
    wanted
        .iter()
        .filter_map(|line| by_id.get(&line.product_id).map(|p| (line, *p)))
        .map(|(line, product)| {
            Ok(PricedLine {
                product_id: line.product_id,
                name: product.name.clone(),
                unit_price: product.price,
                quantity: line.quantity,
                line_total: product.price.checked_mul(i64::from(line.quantity))?,
            })
        })
        .collect()
}

/// What an order costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// The sum of the line totals.
    pub subtotal: Money,
    /// The quoted shipping cost.
    pub shipping: Money,
    /// `subtotal + shipping`.
    pub total: Money,
}

/// Adds up `lines` (at least one) and `shipping`, refusing mixed currencies and overflow.
pub fn totals(lines: &[PricedLine], shipping: Money) -> Result<Totals, MoneyError> {
    let mut subtotal = Money::zero(shipping.currency);
    if let Some(first) = lines.first() {
        subtotal = Money::zero(first.line_total.currency);
    }
    for line in lines {
        subtotal = subtotal.checked_add(line.line_total)?;
    }
    let total = subtotal.checked_add(shipping)?;
    Ok(Totals {
        subtotal,
        shipping,
        total,
    })
}

/// The number of items in the parcel (what shipping prices by); `None` when it overflows.
pub fn item_count(lines: &[PricedLine]) -> Option<u32> {
    lines
        .iter()
        .try_fold(0u32, |sum, line| sum.checked_add(line.quantity))
}

/// `ids` as the text a customer reads: `p0000001, p0000002`.
pub fn listed(ids: &[ProductId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
