//! What shipping costs: a rate card by zone, plus surcharges per extra item and per kilogram.
//!
//! The price is a pure function of the destination, the item count and the weight, so a quote
//! and a shipment priced from the same facts always agree, and a retry is charged what the first
//! attempt was. The rate card (all amounts in minor units of the configured currency):
//!
//! | zone | who | base |
//! |---|---|---|
//! | domestic | the origin country | 4.90 |
//! | EU | the other 26 EU member states | 9.90 |
//! | world | every other well-formed code | 19.90 |
//! | unsupported | the configured list (default AQ, KP) | refused |
//!
//! plus 0.50 for each item beyond the first, plus — when the weight is known — 1.00 for each
//! started kilogram above 2 kg (2001 g to 3000 g is one kilogram more).

use flotilla_chassis::{Currency, Money};

use super::{CountryCode, Grams, ItemCount};

/// Base price of a domestic parcel, in minor units.
pub const DOMESTIC_BASE: i64 = 490;
/// Base price of a parcel to another EU member state.
pub const EU_BASE: i64 = 990;
/// Base price of a parcel anywhere else.
pub const WORLD_BASE: i64 = 1990;
/// Surcharge for each item beyond the first.
pub const PER_EXTRA_ITEM: i64 = 50;
/// Surcharge for each started kilogram above [`FREE_WEIGHT_GRAMS`].
pub const PER_STARTED_KG: i64 = 100;
/// Weight included in the base price.
pub const FREE_WEIGHT_GRAMS: u32 = 2000;

/// The 27 member states of the European Union (ISO codes: Greece is `GR`, not the EU's `EL`).
/// Source: <https://european-union.europa.eu/principles-countries-history/eu-countries_en>.
pub const EU_MEMBERS: [&str; 27] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT",
    "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// The price band a destination falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The origin country.
    Domestic,
    /// Another EU member state.
    Eu,
    /// Anywhere else the shop ships to.
    World,
}

impl Zone {
    /// The zone's base price, in minor units.
    pub fn base(self) -> i64 {
        match self {
            Zone::Domestic => DOMESTIC_BASE,
            Zone::Eu => EU_BASE,
            Zone::World => WORLD_BASE,
        }
    }
}

/// A destination the shop does not ship to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shipping to {0} is not supported")]
pub struct UnsupportedDestination(pub CountryCode);

/// A rate card that cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the origin country {0} is in the unsupported list")]
pub struct OriginUnsupported(pub CountryCode);

/// The rate card of one shop: where it ships from, where it does not ship to, and in which
/// currency it charges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateCard {
    origin: CountryCode,
    unsupported: Vec<CountryCode>,
    currency: Currency,
}

impl RateCard {
    /// A rate card; refused when the origin itself is unsupported (a configuration mistake).
    pub fn new(
        origin: CountryCode,
        unsupported: Vec<CountryCode>,
        currency: Currency,
    ) -> Result<Self, OriginUnsupported> {
        if unsupported.contains(&origin) {
            return Err(OriginUnsupported(origin));
        }
        Ok(Self {
            origin,
            unsupported,
            currency,
        })
    }

    /// The zone of `destination`.
    pub fn zone(&self, destination: CountryCode) -> Result<Zone, UnsupportedDestination> {
        if self.unsupported.contains(&destination) {
            Err(UnsupportedDestination(destination))
        } else if destination == self.origin {
            Ok(Zone::Domestic)
        } else if EU_MEMBERS.contains(&destination.as_str()) {
            Ok(Zone::Eu)
        } else {
            Ok(Zone::World)
        }
    }

    /// What a parcel of `items` weighing `weight` (when known) costs to `destination`.
    pub fn price(
        &self,
        destination: CountryCode,
        items: ItemCount,
        weight: Option<Grams>,
    ) -> Result<Money, UnsupportedDestination> {
        let zone = self.zone(destination)?;
        // Cannot overflow: items ≤ 1000 and weight < 2^32 g keep the total below 5e8.
        let extra_items = i64::from(items.get()) - 1;
        let extra_kgs = i64::from(weight.map_or(0, started_kgs_above_free));
        let amount = zone.base() + PER_EXTRA_ITEM * extra_items + PER_STARTED_KG * extra_kgs;
        Ok(Money::new(amount, self.currency))
    }
}

/// Started kilograms above [`FREE_WEIGHT_GRAMS`]: 0 up to 2000 g, 1 up to 3000 g, and so on.
pub fn started_kgs_above_free(weight: Grams) -> u32 {
    weight.0.saturating_sub(FREE_WEIGHT_GRAMS).div_ceil(1000)
}
