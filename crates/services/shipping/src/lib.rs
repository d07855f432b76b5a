//! The shipping service: what a parcel costs to send, and the shipments of orders with their
//! tracking numbers.
//!
//! Anyone may ask for a quote (the storefront shows shipping costs before checkout); quotes are
//! stored and honoured for a while, so the price a customer saw is the price the shipment
//! costs. The orders saga creates one shipment per order (idempotently, since it retries) and
//! cancels it when checkout is compensated; those routes are internal to the fleet. Prices come
//! from a pure rate card (`domain::pricing`) so they are deterministic and property-tested.
//! Other services use only [`contract`] and [`client`].

pub mod client;
pub mod contract;

mod api;
mod domain;
mod error;
mod quote_purge;
mod store;

use flotilla_chassis::{Currency, Service, ServiceContext, ServiceSpec, StartError};
use serde::Deserialize;
use std::sync::Arc;

use crate::domain::CountryCode;
use crate::domain::pricing::RateCard;

/// The service's name: its configuration section, database name and gateway prefix.
pub const NAME: &str = "shipping";

/// How hosts start shipping.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: NAME,
    factory: |ctx| Box::pin(service(ctx)),
    needs_database: true,
};

/// The `[shipping]` configuration section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ShippingConfig {
    /// Where parcels ship from (ISO 3166-1 alpha-2): the domestic zone.
    pub origin_country: String,
    /// Destinations refused with 422 `unsupported-destination`.
    pub unsupported_countries: Vec<String>,
    /// How long a quote is honoured, in seconds.
    pub quote_ttl_secs: u64,
    /// The currency prices are charged in (ISO 4217); the rate card's amounts are minor units
    /// of it.
    pub currency: String,
}

impl Default for ShippingConfig {
    fn default() -> Self {
        Self {
            origin_country: "DE".to_owned(),
            unsupported_countries: vec!["AQ".to_owned(), "KP".to_owned()],
            quote_ttl_secs: 1800,
            currency: "EUR".to_owned(),
        }
    }
}

impl ShippingConfig {
    /// The rate card this configuration describes; a start error names the bad key.
    fn rate_card(&self) -> Result<RateCard, StartError> {
        let country = |key: &str, code: &str| {
            CountryCode::parse(code).ok_or_else(|| {
                StartError::Other(format!(
                    "[shipping] {key}: {code:?} is not an ISO 3166-1 alpha-2 code"
                ))
            })
        };
        let origin = country("origin_country", &self.origin_country)?;
        let unsupported = self
            .unsupported_countries
            .iter()
            .map(|code| country("unsupported_countries", code))
            .collect::<Result<Vec<_>, _>>()?;
        let currency = Currency::parse(&self.currency)
            .map_err(|e| StartError::Other(format!("[shipping] currency: {e}")))?;
        RateCard::new(origin, unsupported, currency)
            .map_err(|e| StartError::Other(format!("[shipping] {e}")))
    }

    /// The quote lifetime; zero or more than a year is a typo, not a policy.
    fn quote_ttl(&self) -> Result<time::Duration, StartError> {
        const YEAR_SECS: u64 = 365 * 24 * 60 * 60;
        if self.quote_ttl_secs == 0 || self.quote_ttl_secs > YEAR_SECS {
            return Err(StartError::Other(format!(
                "[shipping] quote_ttl_secs must be between 1 and {YEAR_SECS}"
            )));
        }
        // Fits: at most a year of seconds.
        Ok(time::Duration::seconds(self.quote_ttl_secs as i64))
    }
}

/// Starts shipping: checks its configuration, migrates its database, and returns its routes and
/// the task that purges long-expired quotes.
pub async fn service(ctx: ServiceContext) -> Result<Service, StartError> {
    let config: ShippingConfig = ctx.config()?;
    let rates = config.rate_card()?;
    let quote_ttl = config.quote_ttl()?;
    let db = ctx.db()?;
    db.migrate(store::MIGRATIONS).await?;
    let store = store::ShippingStore::new(db.clone());
    let state = api::ShippingState {
        store: store.clone(),
        rates: Arc::new(rates),
        clock: ctx.clock.clone(),
        quote_ttl,
    };
    let mut service = Service::new(NAME, api::routes(state), Some(db));
    service.tasks.push(Box::pin(quote_purge::run(
        store,
        ctx.clock.clone(),
        quote_purge::PERIOD,
        ctx.shutdown.clone(),
    )));
    Ok(service)
}
