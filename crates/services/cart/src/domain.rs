//! The cart's rules, free of I/O: what an order id and a quantity may be, and how a cart is
//! priced from its stored lines and what the catalog said about their products.
//!
//! Input is parsed into these types at the edge ([`crate::api`]), so the store and the pricing
//! never see an id that could not exist or a quantity outside the configured bounds. Products
//! are named by the catalog's [`ProductId`]; what the catalog says about one is kept in the
//! cart's own [`ProductView`] (only what a cart line shows), not in the catalog's wire type.

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::money::MoneyError;
use flotilla_chassis::{Currency, Money};
use std::collections::HashMap;
use std::num::NonZeroU32;

use crate::contract::{Cart, CartLine};

/// Longest order id the cart accepts.
pub const MAX_ORDER_ID_LEN: usize = 64;

/// The id of the order a cart is claimed for. Its form is orders' business: the cart checks only
/// that it is short and plain (1 to [`MAX_ORDER_ID_LEN`] characters from `[A-Za-z0-9_-]`), so it
/// can be stored, logged and put in a path as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderId(String);

/// Text that cannot be an order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order id is 1 to 64 ASCII letters, digits, '-' or '_'")]
pub struct InvalidOrderId;

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, InvalidOrderId> {
        let plain = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if raw.is_empty() || raw.len() > MAX_ORDER_ID_LEN || !plain {
            return Err(InvalidOrderId);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How many of one product a line holds: never zero (a line with none is no line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(NonZeroU32);

impl Quantity {
    /// `n` as a quantity; `None` for zero.
    pub fn new(n: u32) -> Option<Self> {
        NonZeroU32::new(n).map(Self)
    }

    /// A quantity read back from storage (a BIGINT); `None` when out of range.
    pub fn from_stored(n: i64) -> Option<Self> {
        u32::try_from(n).ok().and_then(Self::new)
    }

    /// The count.
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

/// The changes a confirmed order's lines (product id, quantity) ask of a cart. A line that
/// ordered nothing has nothing to take out, so it is skipped rather than failing the whole
/// order: the rest still leaves the cart.
pub fn ordered_changes(
    lines: impl Iterator<Item = (ProductId, u32)>,
) -> impl Iterator<Item = (ProductId, Quantity)> {
    lines.filter_map(|(product_id, quantity)| Some((product_id, Quantity::new(quantity)?)))
}

/// What a `SetQuantity` request asks for, once checked against the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantityChange {
    /// Quantity 0: drop the line.
    Remove,
    /// Hold exactly this many.
    Set(Quantity),
}

/// A requested quantity above the configured maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be at most {max}")]
pub struct QuantityTooLarge {
    /// The configured maximum.
    pub max: u32,
}

impl QuantityChange {
    /// Interprets a requested quantity: 0 removes, 1..=`max` sets, more is refused.
    pub fn parse(requested: u32, max: u32) -> Result<Self, QuantityTooLarge> {
        if requested > max {
            return Err(QuantityTooLarge { max });
        }
        Ok(Quantity::new(requested).map_or(Self::Remove, Self::Set))
    }
}

/// One stored line of a cart, in the order the store returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLine {
    pub product_id: ProductId,
    pub quantity: Quantity,
}

/// What a cart line shows of a product the catalog has: the cart's own view, so that the
/// catalog's wire type can grow without touching the pricing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductView {
    pub name: String,
    pub image_url: String,
    pub price: Money,
}

/// What the catalog said about the products asked for so far: found (`Some`) or absent
/// (`None`). Remembering the absent ones means a vanished product is asked for once per
/// request, not once per pricing step.
#[derive(Debug, Clone, Default)]
pub struct ProductSnapshot {
    answers: HashMap<ProductId, Option<ProductView>>,
}

impl ProductSnapshot {
    /// Records one catalog answer: every id in `asked` not among `found` is absent.
    pub fn record(&mut self, asked: &[ProductId], found: Vec<(ProductId, ProductView)>) {
        for id in asked {
            self.answers.entry(*id).or_insert(None);
        }
        for (id, product) in found {
            self.answers.insert(id, Some(product));
        }
    }

    /// The ids among `ids` the catalog has not been asked about yet, each once.
    pub fn unasked<'a>(&self, ids: impl IntoIterator<Item = &'a ProductId>) -> Vec<ProductId> {
        let mut out: Vec<ProductId> = Vec::new();
        for id in ids {
            if !self.answers.contains_key(id) && !out.contains(id) {
                out.push(*id);
            }
        }
        out
    }

    /// The product, when the catalog has it.
    pub fn get(&self, id: ProductId) -> Option<&ProductView> {
        self.answers.get(&id).and_then(Option::as_ref)
    }
}

/// Why a cart could not be totalled. Both come from catalog data that breaks its promises (one
/// currency, sane prices), so the API reports them as a dependency failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    /// Lines in different currencies, or a total out of range.
    #[error("cannot total the cart: {0}")]
    Money(#[from] MoneyError),
    /// The item count does not fit in a `u32`.
    #[error("cannot total the cart: too many items")]
    ItemCount,
}

/// Prices `lines` with the products in `products`.
///
/// Lines whose product the catalog no longer has are kept but marked unavailable, priced at zero
/// and left out of the total and the item count. The cart's currency is that of its first
/// available line (EUR when there is none); a line in any other currency fails the whole pricing
/// rather than produce a total that means nothing.
pub fn price_cart(
    user_id: &str,
    version: u64,
    lines: &[StoredLine],
    products: &ProductSnapshot,
) -> Result<Cart, PricingError> {
    let currency = lines
        .iter()
        .find_map(|line| products.get(line.product_id))
        .map_or(Currency::EUR, |product| product.price.currency);
    let zero = Money::zero(currency);
    let mut total = zero;
    let mut item_count: u32 = 0;
    let mut items = Vec::with_capacity(lines.len());
    for line in lines {
        let quantity = line.quantity.get();
        let item = match products.get(line.product_id) {
            Some(product) => {
                let line_total = product.price.checked_mul(i64::from(quantity))?;
                total = total.checked_add(line_total)?;
                item_count = item_count
                    .checked_add(quantity)
                    .ok_or(PricingError::ItemCount)?;
                CartLine {
                    product_id: line.product_id,
                    name: product.name.clone(),
                    image_url: product.image_url.clone(),
                    unit_price: product.price,
                    quantity,
                    line_total,
                    available: true,
                }
            }
            None => CartLine {
                product_id: line.product_id,
                name: String::new(),
                image_url: String::new(),
                unit_price: zero,
                quantity,
                line_total: zero,
                available: false,
            },
        };
        items.push(item);
    }
    Ok(Cart {
        user_id: user_id.to_owned(),
        items,
        total,
        item_count,
        version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ProductId {
        ProductId::from_number(n).expect("seven digits")
    }

    fn product(n: u64, amount_minor: i64, currency: &str) -> (ProductId, ProductView) {
        let view = ProductView {
            name: format!("Product {n}"),
            image_url: format!("/api/catalog/products/{}/image.svg", id(n)),
            price: Money::new(amount_minor, Currency::parse(currency).expect("valid code")),
        };
        (id(n), view)
    }

    fn line(n: u64, quantity: u32) -> StoredLine {
        StoredLine {
            product_id: id(n),
            quantity: Quantity::new(quantity).expect("non-zero"),
        }
    }

    fn snapshot(lines: &[StoredLine], products: Vec<(ProductId, ProductView)>) -> ProductSnapshot {
        let mut snapshot = ProductSnapshot::default();
        let ids: Vec<ProductId> = lines.iter().map(|l| l.product_id).collect();
        snapshot.record(&ids, products);
        snapshot
    }

    #[test]
    fn order_ids_are_short_and_plain() {
        assert_eq!(OrderId::parse("o-17_A").expect("valid").as_str(), "o-17_A");
        assert!(OrderId::parse(&"x".repeat(MAX_ORDER_ID_LEN)).is_ok());
        for bad in [
            "",
            &"x".repeat(MAX_ORDER_ID_LEN + 1),
            "a b",
            "a/b",
            "o1.",
            "é",
            "../x",
            "p\u{0}",
        ] {
            assert_eq!(OrderId::parse(bad), Err(InvalidOrderId), "{bad:?}");
        }
    }

    #[test]
    fn ordered_lines_of_nothing_are_skipped() {
        let lines = [(id(1), 2), (id(2), 0)];
        let changes: Vec<(ProductId, u32)> = ordered_changes(lines.into_iter())
            .map(|(id, q)| (id, q.get()))
            .collect();
        assert_eq!(changes, [(id(1), 2)]);
    }

    #[test]
    fn quantity_zero_removes_and_the_maximum_is_inclusive() {
        assert_eq!(QuantityChange::parse(0, 99), Ok(QuantityChange::Remove));
        let one = Quantity::new(1).expect("non-zero");
        assert_eq!(QuantityChange::parse(1, 99), Ok(QuantityChange::Set(one)));
        let max = Quantity::new(99).expect("non-zero");
        assert_eq!(QuantityChange::parse(99, 99), Ok(QuantityChange::Set(max)));
        assert_eq!(
            QuantityChange::parse(100, 99),
            Err(QuantityTooLarge { max: 99 })
        );
        assert_eq!(
            QuantityChange::parse(u32::MAX, 99),
            Err(QuantityTooLarge { max: 99 })
        );
    }

    #[test]
    fn stored_quantities_out_of_range_are_refused() {
        assert_eq!(Quantity::from_stored(3).map(Quantity::get), Some(3));
        assert_eq!(Quantity::from_stored(0), None);
        assert_eq!(Quantity::from_stored(-1), None);
        assert_eq!(Quantity::from_stored(i64::from(u32::MAX) + 1), None);
    }

    #[test]
    fn an_empty_cart_costs_zero_euros() {
        let cart = price_cart("u1", 7, &[], &ProductSnapshot::default()).expect("priced");
        assert_eq!(cart.total, Money::zero(Currency::EUR));
        assert_eq!(cart.item_count, 0);
        assert!(cart.items.is_empty());
        assert_eq!(cart.user_id, "u1");
        assert_eq!(cart.version, 7, "the version is shown as stored");
    }

    #[test]
    fn total_is_the_sum_of_unit_price_times_quantity() {
        let lines = [line(1, 2), line(2, 3)];
        let products = snapshot(
            &lines,
            vec![product(2, 250, "EUR"), product(1, 1999, "EUR")],
        );
        let cart = price_cart("u1", 7, &lines, &products).expect("priced");
        assert_eq!(cart.total, Money::new(2 * 1999 + 3 * 250, Currency::EUR));
        assert_eq!(cart.item_count, 5);
        let order: Vec<ProductId> = cart.items.iter().map(|l| l.product_id).collect();
        assert_eq!(order, [id(1), id(2)], "the stored order is kept");
        assert_eq!(cart.items[0].line_total, Money::new(3998, Currency::EUR));
        assert_eq!(cart.items[0].name, "Product 1");
        assert!(cart.items.iter().all(|l| l.available));
    }

    #[test]
    fn vanished_products_are_shown_but_not_counted() {
        let lines = [line(99, 4), line(1, 1)];
        let products = snapshot(&lines, vec![product(1, 500, "EUR")]);
        let cart = price_cart("u1", 7, &lines, &products).expect("priced");
        assert_eq!(cart.total, Money::new(500, Currency::EUR));
        assert_eq!(cart.item_count, 1);
        let gone = &cart.items[0];
        assert!(!gone.available);
        assert_eq!(gone.product_id, id(99));
        assert_eq!(gone.quantity, 4);
        assert_eq!(gone.unit_price, Money::zero(Currency::EUR));
        assert_eq!(gone.line_total, Money::zero(Currency::EUR));
    }

    #[test]
    fn the_cart_currency_follows_the_catalog() {
        let lines = [line(1, 1)];
        let products = snapshot(&lines, vec![product(1, 700, "USD")]);
        let cart = price_cart("u1", 7, &lines, &products).expect("priced");
        assert_eq!(cart.total.to_string(), "7.00 USD");
    }

    #[test]
    fn mixed_currencies_and_overflow_fail_instead_of_lying() {
        let lines = [line(1, 1), line(2, 1)];
        let mixed = snapshot(&lines, vec![product(1, 1, "EUR"), product(2, 1, "USD")]);
        assert!(matches!(
            price_cart("u1", 7, &lines, &mixed),
            Err(PricingError::Money(MoneyError::CurrencyMismatch(..)))
        ));
        let huge = snapshot(
            &lines,
            vec![product(1, i64::MAX, "EUR"), product(2, 1, "EUR")],
        );
        assert_eq!(
            price_cart("u1", 7, &lines, &huge).map(|c| c.total),
            Err(PricingError::Money(MoneyError::Overflow))
        );
    }

    #[test]
    fn the_snapshot_asks_each_product_once() {
        let ids = [id(1), id(2), id(1)];
        let mut snapshot = ProductSnapshot::default();
        assert_eq!(snapshot.unasked(&ids), ids[..2].to_vec());
        snapshot.record(&ids[..1], Vec::new());
        assert_eq!(snapshot.unasked(&ids), ids[1..2].to_vec());
        assert!(snapshot.get(ids[0]).is_none(), "asked and absent");
        snapshot.record(&ids[1..2], vec![product(2, 1, "EUR")]);
        assert!(snapshot.unasked(&ids).is_empty());
        assert!(snapshot.get(ids[1]).is_some());
    }
}
