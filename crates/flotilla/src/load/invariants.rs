//! The shop's promises, checked while it is under load and once more at the end:
//!
//! 1. every order's total is its lines plus shipping (each line its unit price × quantity, the
//!    subtotal the sum of the lines), read back from the orders API;
//! 2. no product's stock is below zero (`GET /api/inventory/stock/{id}`, public, for the
//!    products the journeys put in carts), read every second;
//! 3. every acknowledged order (201 or 202 to `POST /api/orders`) is CONFIRMED or CANCELLED
//!    within `--order-deadline` of its acknowledgement, polled as its owner.
//!
//! A broken promise is a [`Violation`], logged when found; any violation makes `flotilla load`
//! exit with status 3. The polling is load the schedule did not offer (one read per pending
//! order every 200 ms, one stock read per watched product a second), kept out of the report.

use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

use flotilla_catalog::contract::ProductId;
use flotilla_chassis::Money;
use flotilla_inventory::contract::StockLevel;
use flotilla_orders::contract::Order;

use super::shop::{Call, Shop};

/// How often pending orders are read.
const ORDER_POLL: Duration = Duration::from_millis(200);

/// How often stock is read.
const STOCK_POLL: Duration = Duration::from_secs(1);

/// Violations kept word for word in the report (all are counted).
const KEPT_VIOLATIONS: usize = 20;

/// A promise the shop broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// An order whose amounts do not add up.
    WrongTotal { order: String, detail: String },
    /// A product with fewer than zero units.
    NegativeStock { product: ProductId, available: i64 },
    /// An acknowledged order still pending past the deadline (or, `unreadable`, whose last
    /// read before it failed: the shop could not show it ended).
    NotTerminal {
        order: String,
        deadline: Duration,
        unreadable: bool,
    },
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::WrongTotal { order, detail } => {
                write!(
                    f,
                    "order {order}: total is not its lines plus shipping: {detail}"
                )
            }
            Violation::NegativeStock { product, available } => {
                write!(f, "product {product}: stock is {available}, below zero")
            }
            Violation::NotTerminal {
                order,
                deadline,
                unreadable,
            } => write!(
                f,
                "order {order}: acknowledged but neither CONFIRMED nor CANCELLED within {deadline:?}{}",
                if *unreadable {
                    " (its last read failed)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Checks that an order's amounts add up: each line is its unit price × quantity, the
/// subtotal the sum of the lines, and the total the subtotal plus shipping.
pub fn check_order_total(order: &Order) -> Result<(), String> {
    let mut lines = Money::zero(order.subtotal.currency);
    for line in &order.lines {
        let expected = line
            .unit_price
            .checked_mul(i64::from(line.quantity))
            .map_err(|e| format!("line {}: {e}", line.product_id))?;
        if expected != line.line_total {
            return Err(format!(
                "line {} is {} × {} = {expected}, but says {}",
                line.product_id, line.quantity, line.unit_price, line.line_total
            ));
        }
        lines = lines
            .checked_add(line.line_total)
            .map_err(|e| e.to_string())?;
    }
    if lines != order.subtotal {
        return Err(format!(
            "the lines add up to {lines}, the subtotal says {}",
            order.subtotal
        ));
    }
    let total = lines
        .checked_add(order.shipping)
        .map_err(|e| e.to_string())?;
    if total != order.total {
        return Err(format!(
            "lines {lines} + shipping {} = {total}, the total says {}",
            order.shipping, order.total
        ));
    }
    Ok(())
}

/// Checks a stock level.
pub fn check_stock(level: &StockLevel) -> Option<Violation> {
    (level.available < 0).then_some(Violation::NegativeStock {
        product: level.product_id,
        available: level.available,
    })
}

/// An acknowledged order not yet seen terminal.
#[derive(Debug, Clone)]
struct Pending {
    id: String,
    token: String,
    acknowledged: Instant,
}

/// What the checks saw (report field names are stable: README, "flotilla load").
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvariantReport {
    /// Orders acknowledged with 201 or 202.
    pub orders_acknowledged: u64,
    /// Of those, seen CONFIRMED or CANCELLED.
    pub orders_terminal: u64,
    pub orders_confirmed: u64,
    pub orders_cancelled: u64,
    /// Order bodies whose amounts were checked.
    pub order_totals_checked: u64,
    /// Stock levels read.
    pub stock_reads: u64,
    /// Stock or order reads that failed (retried, not violations in themselves).
    pub failed_reads: u64,
    /// Every violation found.
    pub violation_count: u64,
    /// The first violations, in words.
    pub violations: Vec<String>,
    /// No violation.
    pub passed: bool,
}

#[derive(Debug, Default)]
struct State {
    pending: Vec<Pending>,
    report: InvariantReport,
}

/// The checker: fed by the checkout journeys, run beside them.
pub struct Invariants {
    shop: Shop,
    deadline: Duration,
    products: Vec<ProductId>,
    state: Mutex<State>,
}

impl Invariants {
    pub fn new(shop: Shop, deadline: Duration, products: Vec<ProductId>) -> Self {
        Self {
            shop,
            deadline,
            products,
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    fn violated(&self, violation: Violation) {
        tracing::error!(%violation, "invariant violated");
        self.with(|s| {
            s.report.violation_count += 1;
            if s.report.violations.len() < KEPT_VIOLATIONS {
                s.report.violations.push(violation.to_string());
            }
        });
    }

    /// Checks the amounts of an order body; counts it if terminal. True when terminal.
    fn observe(&self, order: &Order) -> bool {
        self.with(|s| s.report.order_totals_checked += 1);
        if let Err(detail) = check_order_total(order) {
            self.violated(Violation::WrongTotal {
                order: order.id.clone(),
                detail,
            });
        }
        use flotilla_orders::contract::OrderStatus;
        let terminal = order.status.is_terminal();
        if terminal {
            self.with(|s| {
                s.report.orders_terminal += 1;
                match order.status {
                    OrderStatus::Confirmed => s.report.orders_confirmed += 1,
                    OrderStatus::Cancelled => s.report.orders_cancelled += 1,
                    OrderStatus::Pending => {}
                }
            });
        }
        terminal
    }

    /// An order the shop acknowledged, as its owner (`token`) saw it.
    pub fn acknowledged(&self, order: Order, token: String) {
        self.with(|s| s.report.orders_acknowledged += 1);
        if !self.observe(&order) {
            self.with(|s| {
                s.pending.push(Pending {
                    id: order.id,
                    token,
                    acknowledged: Instant::now(),
                })
            });
        }
    }

    /// Violations so far.
    pub fn violation_count(&self) -> u64 {
        self.with(|s| s.report.violation_count)
    }

    /// Reads every pending order once; the ones still pending past the deadline are
    /// violations.
    async fn poll_orders(&self) {
        let pending = self.with(|s| std::mem::take(&mut s.pending));
        let mut still = Vec::new();
        for order in pending {
            let call = Call::get(format!("/api/orders/{}", order.id), Some(&order.token));
            let read = match self.shop.send(call).await {
                Ok(answer) if answer.status == 200 => answer.json::<Order>(),
                _ => None,
            };
            let unreadable = match read {
                Some(body) if self.observe(&body) => continue,
                Some(_) => false,
                None => {
                    self.with(|s| s.report.failed_reads += 1);
                    true
                }
            };
            if order.acknowledged.elapsed() > self.deadline {
                self.violated(Violation::NotTerminal {
                    order: order.id,
                    deadline: self.deadline,
                    unreadable,
                });
            } else {
                still.push(order);
            }
        }
        self.with(|s| s.pending.extend(still));
    }

    /// Reads the stock of every watched product once.
    async fn poll_stock(&self) {
        for product in &self.products {
            let call = Call::get(format!("/api/inventory/stock/{product}"), None);
            match self.shop.send(call).await {
                Ok(answer) if answer.status == 200 => match answer.json::<StockLevel>() {
                    Some(level) => {
                        self.with(|s| s.report.stock_reads += 1);
                        if let Some(violation) = check_stock(&level) {
                            self.violated(violation);
                        }
                    }
                    None => self.with(|s| s.report.failed_reads += 1),
                },
                // No stock kept for it: nothing can be below zero.
                Ok(answer) if answer.status == 404 => {}
                _ => self.with(|s| s.report.failed_reads += 1),
            }
        }
    }

    /// Checks as the run goes, until `stop`.
    pub async fn watch(&self, stop: CancellationToken) {
        let mut last_stock: Option<Instant> = None;
        loop {
            self.poll_orders().await;
            if last_stock.is_none_or(|at| at.elapsed() >= STOCK_POLL) {
                self.poll_stock().await;
                last_stock = Some(Instant::now());
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(ORDER_POLL) => {}
            }
        }
    }

    /// The final pass: waits for every pending order to end or pass its deadline, reads the
    /// stock once more, and reports.
    pub async fn finish(&self) -> InvariantReport {
        while self.with(|s| !s.pending.is_empty()) {
            self.poll_orders().await;
            if self.with(|s| s.pending.is_empty()) {
                break;
            }
            tokio::time::sleep(ORDER_POLL).await;
        }
        self.poll_stock().await;
        self.with(|s| {
            let mut report = s.report.clone();
            report.passed = report.violation_count == 0;
            report
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::Currency;
    use flotilla_orders::contract::{Address, OrderLine, OrderStatus};

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::EUR)
    }

    fn order(lines: &[(i64, u32, i64)], subtotal: i64, shipping: i64, total: i64) -> Order {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        Order {
            id: "ord_1".to_owned(),
            user_id: "usr_1".to_owned(),
            status: OrderStatus::Confirmed,
            reason: None,
            lines: lines
                .iter()
                .enumerate()
                .map(|(i, &(unit, quantity, line_total))| OrderLine {
                    product_id: ProductId::from_number(i as u64 + 1).expect("id"),
                    name: "Thing".to_owned(),
                    unit_price: eur(unit),
                    quantity,
                    line_total: eur(line_total),
                })
                .collect(),
            subtotal: eur(subtotal),
            shipping: eur(shipping),
            total: eur(total),
            address: Address {
                name: "A".to_owned(),
                line1: "1".to_owned(),
                city: "B".to_owned(),
                postal_code: "1".to_owned(),
                country: "DE".to_owned(),
            },
            payment_id: None,
            shipment_id: None,
            tracking_number: None,
            history: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn an_order_adds_up_or_says_where_it_does_not() {
        assert_eq!(
            check_order_total(&order(&[(250, 2, 500), (100, 1, 100)], 600, 499, 1099)),
            Ok(())
        );
        let wrong_line = check_order_total(&order(&[(250, 2, 400)], 400, 0, 400));
        assert!(
            wrong_line.is_err_and(|e| e.contains("2 × 2.50 EUR")),
            "line"
        );
        let wrong_subtotal = check_order_total(&order(&[(250, 2, 500)], 600, 0, 600));
        assert!(wrong_subtotal.is_err_and(|e| e.contains("subtotal")));
        let wrong_total = check_order_total(&order(&[(250, 2, 500)], 500, 499, 500));
        assert!(wrong_total.is_err_and(|e| e.contains("shipping")));
    }

    #[test]
    fn stock_below_zero_is_a_violation() {
        let product = ProductId::from_number(7).expect("id");
        assert_eq!(
            check_stock(&StockLevel {
                product_id: product,
                available: 0
            }),
            None
        );
        let violation = check_stock(&StockLevel {
            product_id: product,
            available: -1,
        });
        assert_eq!(
            violation.map(|v| v.to_string()).as_deref(),
            Some("product p0000007: stock is -1, below zero")
        );
    }
}
