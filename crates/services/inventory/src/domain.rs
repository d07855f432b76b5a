//! The inventory's rules, free of I/O: what a reservation id, a quantity, a stock level and a
//! time-to-live may be, and what makes a set of reservation lines valid. Products are named by
//! the catalog's [`ProductId`]: the inventory keeps stock only for ids the catalog could hold.
//!
//! Requests are parsed into these types at the edge ([`crate::api`]), so the store never sees an
//! id that could not exist, a quantity of zero, or a product twice in one reservation. Lines are
//! kept sorted by product id: that makes "the same lines" an equality test (a repeated reserve
//! may list them in any order) and makes every transaction touch stock rows in the same order,
//! so two reservations can never wait on each other's rows (no deadlock on PostgreSQL).

use flotilla_catalog::contract::{InvalidProductId, ProductId};
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};

use crate::contract::{Reservation, ReservationLine, ReservationStatus};

/// Longest reservation id accepted.
pub const MAX_RESERVATION_ID_LEN: usize = 100;
/// Most units a stock level may be set to: far beyond any shop, far below where adding held
/// units back could overflow a BIGINT.
pub const MAX_STOCK: i64 = 1_000_000_000;
/// Longest a reservation may be held: a checkout that needs a week has failed.
pub const MAX_TTL_SECS: u64 = 7 * 24 * 60 * 60;

/// Parses the product id of `field`, or says which rule it breaks.
pub fn product_id(raw: &str, field: impl Into<String>) -> Result<ProductId, InvalidInput> {
    raw.parse()
        .map_err(|e: InvalidProductId| InvalidInput::new(field, e.to_string()))
}

/// A reservation id: chosen by the caller, 1 to [`MAX_RESERVATION_ID_LEN`] characters from
/// `[A-Za-z0-9._:-]`, which covers UUIDs and order ids and stays readable in logs and paths.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReservationId(String);

impl ReservationId {
    /// Parses a reservation id.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_RESERVATION_ID_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidInput::new(
                "reservation_id",
                format!("1 to {MAX_RESERVATION_ID_LEN} characters from [A-Za-z0-9._:-]"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A field that breaks a rule, with the rule; the API answers it with a 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidInput {
    /// The offending field, e.g. `lines[2].quantity`.
    pub field: String,
    /// The rule it breaks.
    pub message: String,
}

impl InvalidInput {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A stock level an admin may set: 0 to [`MAX_STOCK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockAmount(i64);

impl StockAmount {
    /// Parses a requested stock level.
    pub fn parse(available: i64) -> Result<Self, InvalidInput> {
        if (0..=MAX_STOCK).contains(&available) {
            Ok(Self(available))
        } else {
            Err(InvalidInput::new(
                "available",
                format!("must be between 0 and {MAX_STOCK}"),
            ))
        }
    }

    /// The number of units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// The limits a reservation is checked against (from the `[inventory]` configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLimits {
    /// Most lines per reservation.
    pub max_lines: u32,
    /// Most units per line.
    pub max_quantity_per_line: i64,
}

/// One valid line: a product and a positive quantity within the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The product.
    pub product_id: ProductId,
    /// Units, at least 1.
    pub quantity: i64,
}

/// The lines of a reservation: 1 to `max_lines`, each product once, sorted by product id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines(Vec<Line>);

impl Lines {
    /// Checks `lines` against `limits` and sorts them.
    pub fn parse(
        lines: &[ReservationLine],
        limits: ReservationLimits,
    ) -> Result<Self, InvalidInput> {
        if lines.is_empty() {
            return Err(InvalidInput::new("lines", "at least one line is required"));
        }
        if lines.len() > limits.max_lines as usize {
            return Err(InvalidInput::new(
                "lines",
                format!("at most {} lines per reservation", limits.max_lines),
            ));
        }
        let mut seen = HashSet::with_capacity(lines.len());
        let mut parsed = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let product_id = line.product_id;
            if !(1..=limits.max_quantity_per_line).contains(&line.quantity) {
                return Err(InvalidInput::new(
                    format!("lines[{i}].quantity"),
                    format!("must be between 1 and {}", limits.max_quantity_per_line),
                ));
            }
            if !seen.insert(product_id) {
                return Err(InvalidInput::new(
                    format!("lines[{i}].product_id"),
                    format!("{product_id} appears more than once"),
                ));
            }
            parsed.push(Line {
                product_id,
                quantity: line.quantity,
            });
        }
        parsed.sort_by_key(|line| line.product_id);
        Ok(Self(parsed))
    }

    /// Lines read back from storage, trusted as written (sorted here, whatever the query did).
    pub fn from_stored(mut lines: Vec<Line>) -> Self {
        lines.sort_by_key(|line| line.product_id);
        Self(lines)
    }

    /// The lines, sorted by product id.
    pub fn iter(&self) -> impl Iterator<Item = &Line> {
        self.0.iter()
    }

    /// The lines in their contract form, sorted by product id.
    pub fn to_contract(&self) -> Vec<ReservationLine> {
        self.0
            .iter()
            .map(|line| ReservationLine {
                product_id: line.product_id,
                quantity: line.quantity,
            })
            .collect()
    }
}

/// How long a new reservation is held: the request's `ttl_secs` or the configured default,
/// 1 s to [`MAX_TTL_SECS`].
pub fn ttl(requested: Option<u64>, default_secs: u64) -> Result<Duration, InvalidInput> {
    let secs = requested.unwrap_or(default_secs);
    let out_of_range =
        || InvalidInput::new("ttl_secs", format!("must be between 1 and {MAX_TTL_SECS}"));
    if !(1..=MAX_TTL_SECS).contains(&secs) {
        return Err(out_of_range());
    }
    i64::try_from(secs)
        .map(Duration::seconds)
        .map_err(|_| out_of_range())
}

/// A reservation as stored, lines parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    /// The caller's id.
    pub id: ReservationId,
    /// Where it is in its life.
    pub status: ReservationStatus,
    /// What it holds.
    pub lines: Lines,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When a held reservation stops being committable.
    pub expires_at: OffsetDateTime,
    /// Why it was released, if it was.
    pub released_reason: Option<String>,
}

impl ReservationRecord {
    /// The contract form.
    pub fn to_contract(&self) -> Reservation {
        Reservation {
            id: self.id.as_str().to_owned(),
            status: self.status,
            lines: self.lines.to_contract(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            released_reason: self.released_reason.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ReservationLimits = ReservationLimits {
        max_lines: 3,
        max_quantity_per_line: 10,
    };

    const A: &str = "p0000001";
    const B: &str = "p0000002";
    const C: &str = "p0000010";
    const D: &str = "p0000300";

    fn line(product_id: &str, quantity: i64) -> ReservationLine {
        ReservationLine {
            product_id: product_id.parse().expect("a product id"),
            quantity,
        }
    }

    #[test]
    fn product_ids_are_the_catalogs() {
        assert!(product_id("p0000001", "product_id").is_ok());
        for bad in [
            "",
            "a b",
            "p/1",
            "é",
            "p000001",
            "p00000001",
            "P0000001",
            "p0000000",
        ] {
            let err = product_id(bad, "product_id").expect_err(bad);
            assert_eq!(err.field, "product_id");
        }
    }

    #[test]
    fn reservation_ids_allow_uuids_and_order_ids() {
        for ok in [
            "0193f1c2-7d1e-7aa0-9b6e-0c7e1b2f3a4d",
            "order-17:try.2",
            "x",
        ] {
            assert!(ReservationId::parse(ok).is_ok(), "{ok}");
        }
        let long = "r".repeat(MAX_RESERVATION_ID_LEN + 1);
        for bad in ["", "a/b", "a b", "a%2F", long.as_str()] {
            let err = ReservationId::parse(bad).expect_err(bad);
            assert_eq!(err.field, "reservation_id");
        }
    }

    #[test]
    fn stock_amounts_are_bounded() {
        assert_eq!(StockAmount::parse(0).map(StockAmount::get), Ok(0));
        assert!(StockAmount::parse(MAX_STOCK).is_ok());
        assert!(StockAmount::parse(-1).is_err());
        assert!(StockAmount::parse(MAX_STOCK + 1).is_err());
    }

    #[test]
    fn lines_are_sorted_and_checked() {
        let lines = Lines::parse(&[line(B, 2), line(A, 1)], LIMITS).expect("valid");
        assert_eq!(lines.to_contract(), vec![line(A, 1), line(B, 2)]);

        // Text that is no product id never becomes a line: the body is refused as it is read.
        let cases: [(&[ReservationLine], &str); 5] = [
            (&[], "lines"),
            (&[line(A, 1), line(B, 1), line(C, 1), line(D, 1)], "lines"),
            (&[line(A, 0)], "lines[0].quantity"),
            (&[line(A, 1), line(B, 11)], "lines[1].quantity"),
            (&[line(A, 1), line(A, 2)], "lines[1].product_id"),
        ];
        for (lines, field) in cases {
            let err = Lines::parse(lines, LIMITS).expect_err(field);
            assert_eq!(err.field, field, "{lines:?}");
        }
    }

    #[test]
    fn ttl_defaults_and_bounds() {
        assert_eq!(ttl(None, 900), Ok(Duration::seconds(900)));
        assert_eq!(ttl(Some(5), 900), Ok(Duration::seconds(5)));
        assert!(ttl(Some(0), 900).is_err());
        assert!(ttl(Some(MAX_TTL_SECS + 1), 900).is_err());
        assert!(ttl(Some(u64::MAX), 900).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever order a caller lists the same lines in, they parse to the same value:
            /// what makes a repeated reserve recognisable as a replay.
            #[test]
            fn line_order_does_not_matter(
                quantities in proptest::collection::btree_map("p[0-9]{6}[1-9]", 1i64..=10, 1..=3),
                seed in any::<u64>(),
            ) {
                let lines: Vec<ReservationLine> =
                    quantities.iter().map(|(p, q)| line(p, *q)).collect();
                let mut shuffled = lines.clone();
                let len = shuffled.len();
                shuffled.rotate_left((seed as usize) % len);
                if seed % 2 == 0 {
                    shuffled.reverse();
                }
                prop_assert_eq!(Lines::parse(&lines, LIMITS), Lines::parse(&shuffled, LIMITS));
            }
        }
    }
}
