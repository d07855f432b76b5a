//! What orders tells Prometheus about the business and its sagas (the chassis serves them at
//! `/metrics` with every other series; README, "Metrics"):
//!
//! - `flotilla_orders_placed_total{service}`: orders stored (a repeat of a checkout key is not
//!   a new order);
//! - `flotilla_sagas_completed_total{service,outcome}` (`confirmed`, `cancelled`) and
//!   `flotilla_saga_duration_seconds{service,outcome}`, from the order's placing to the saga's
//!   last write (across crashes and recoveries: the start is the saga row's);
//! - `flotilla_order_revenue_minor_units_total{service,currency}`: what confirmed orders
//!   charged, in minor units (cents) per currency, since money is never a float.
//!
//! Recorded once per order, where the order's row changes (the conditional write that won),
//! with handles made at start, and per currency on first use.

use ::metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram,
};
use flotilla_chassis::Money;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::contract::OrderStatus;

/// The handles of orders' series. Cheap to clone.
#[derive(Clone)]
pub struct OrderMetrics {
    service: &'static str,
    placed: Counter,
    confirmed: Counter,
    cancelled: Counter,
    confirmed_duration: Histogram,
    cancelled_duration: Histogram,
    revenue: Arc<Mutex<Vec<(String, Counter)>>>,
}

impl OrderMetrics {
    /// The series of `service` (orders' name).
    pub fn new(service: &'static str) -> Self {
        describe_counter!(
            "flotilla_orders_placed_total",
            Unit::Count,
            "Orders placed (stored with their saga; a repeated checkout key is not counted)."
        );
        describe_counter!(
            "flotilla_sagas_completed_total",
            Unit::Count,
            "Checkout sagas finished, by outcome: confirmed, or cancelled after compensations."
        );
        describe_histogram!(
            "flotilla_saga_duration_seconds",
            Unit::Seconds,
            "Time from placing an order to its saga's end, by outcome."
        );
        describe_counter!(
            "flotilla_order_revenue_minor_units_total",
            "Amount charged by confirmed orders, in the currency's minor units (cents)."
        );
        let outcome = |outcome: &'static str| counter!("flotilla_sagas_completed_total", "service" => service, "outcome" => outcome);
        let duration = |outcome: &'static str| histogram!("flotilla_saga_duration_seconds", "service" => service, "outcome" => outcome);
        Self {
            service,
            placed: counter!("flotilla_orders_placed_total", "service" => service),
            confirmed: outcome("confirmed"),
            cancelled: outcome("cancelled"),
            confirmed_duration: duration("confirmed"),
            cancelled_duration: duration("cancelled"),
            revenue: Arc::default(),
        }
    }

    /// An order was stored.
    pub fn placed(&self) {
        self.placed.increment(1);
    }

    /// A saga ended with its order `status` after `took`, its order charging `total` when
    /// confirmed.
    pub fn finished(&self, status: OrderStatus, took: Duration, total: &Money) {
        let seconds = took.as_secs_f64();
        match status {
            OrderStatus::Confirmed => {
                self.confirmed.increment(1);
                self.confirmed_duration.record(seconds);
                if let Ok(minor) = u64::try_from(total.amount_minor) {
                    self.revenue(total).increment(minor);
                }
            }
            OrderStatus::Cancelled => {
                self.cancelled.increment(1);
                self.cancelled_duration.record(seconds);
            }
            // A saga ends its order CONFIRMED or CANCELLED; anything else is not an ending.
            _ => {}
        }
    }

    /// The revenue counter of `total`'s currency, made on first use.
    fn revenue(&self, total: &Money) -> Counter {
        let code = total.currency.as_str();
        let mut known = self.revenue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, counter)) = known.iter().find(|(c, _)| c == code) {
            return counter.clone();
        }
        let made = counter!("flotilla_order_revenue_minor_units_total",
            "service" => self.service, "currency" => code.to_owned());
        known.push((code.to_owned(), made.clone()));
        made
    }
}
