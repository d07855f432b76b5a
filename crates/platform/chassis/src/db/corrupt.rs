//! The error for a stored row that the service's own writes could never have produced: a status
//! no migration knows, a negative quantity, a row that vanished inside its transaction.
//!
//! Such a row means the database was edited by hand or by a newer version of the service, so the
//! store refuses it (sqlx's `Decode` error, which the chassis answers with a 500 and logs) rather
//! than guessing. One type for every service, so the log line reads the same everywhere.

use std::fmt::Display;

/// A row that breaks an invariant the service's writes keep. Carried inside
/// `sqlx::Error::Decode`, so a store's methods keep returning `sqlx::Error`.
#[derive(Debug, thiserror::Error)]
#[error("corrupt row: {0}")]
pub struct CorruptRow(String);

impl CorruptRow {
    /// `column` holds `value`, which the service never writes.
    pub fn column(column: &str, value: impl Display) -> sqlx::Error {
        Self::because(format!("column {column} holds {value}"))
    }

    /// Any other broken invariant, said in words.
    pub fn because(what: impl Into<String>) -> sqlx::Error {
        sqlx::Error::Decode(Box::new(CorruptRow(what.into())))
    }

    /// What is wrong, as it was said.
    pub fn what(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_decode_error_that_names_the_column_and_value() {
        let error = CorruptRow::column("status", "LOST");
        let sqlx::Error::Decode(inner) = &error else {
            panic!("expected a decode error, got {error:?}");
        };
        let row = inner
            .downcast_ref::<CorruptRow>()
            .expect("a CorruptRow inside");
        assert_eq!(row.what(), "column status holds LOST");
        assert!(
            error
                .to_string()
                .contains("corrupt row: column status holds LOST")
        );
    }
}
