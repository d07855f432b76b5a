//! All of the inventory's SQL, in plain sight: stock levels, and reservations moving from held to
//! committed or released.
//!
//! The rules "stock never negative" and "units return exactly once" are enforced here by
//! conditional UPDATEs whose effect is checked (`rows_affected`, or the rows they return:
//! `... AND available >= $q`, `... WHERE status = 'held'`), never by reading first and writing
//! after, so they hold on SQLite and PostgreSQL alike and under any interleaving. Every
//! transaction starts with a write: on SQLite that takes the database's write lock before
//! anything is read (a transaction that read first could fail with SQLITE_BUSY when it tried to
//! write), on PostgreSQL it locks the row.

mod reads;
mod reservations;
mod stock;

use flotilla_chassis::Db;
use flotilla_chassis::db::Migration;

use crate::domain::{InvalidInput, ProductId, ReservationRecord};

/// The inventory's schema, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration::portable(
    1,
    "init",
    include_str!("../migrations/0001_init.sql"),
)];

/// What a reserve did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// A new reservation now holds the units.
    Created(ReservationRecord),
    /// The id was already used for the same lines: the existing reservation, as it is now.
    Replayed(ReservationRecord),
    /// The id was already used for different lines; nothing changed.
    Conflict,
    /// These products lack the units asked for (or have no stock row); nothing was reserved.
    OutOfStock(Vec<ProductId>),
}

/// What a commit or release did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The reservation is now in the state asked for (by this call or an earlier one).
    Reached(ReservationRecord),
    /// The reservation is in the other final state and cannot be moved.
    Blocked(ReservationRecord),
    /// There is no such reservation.
    NotFound,
}

/// A stored row that breaks the rules the writes enforce (someone edited the tables by hand).
#[derive(Debug, thiserror::Error)]
enum CorruptRow {
    #[error("reservations.status {0:?} is not a status")]
    Status(String),
    #[error("stored id: {0}")]
    Id(#[from] InvalidInput),
    #[error("reservation {0} vanished while being read")]
    Vanished(String),
}

/// `err` as the storage error a handler turns into a 500.
fn corrupt(err: CorruptRow) -> sqlx::Error {
    sqlx::Error::Decode(Box::new(err))
}

/// The inventory's tables.
#[derive(Debug, Clone)]
pub struct InventoryStore {
    db: Db,
}

impl InventoryStore {
    /// A store over `db` (already migrated).
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}
