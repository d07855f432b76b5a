//! Quotes: a price stored with its expiry, read back by id, and deleted a while after it
//! expired (the `quote_purge` task calls the last).

use flotilla_chassis::Money;
use flotilla_chassis::clock::{at_millis, millis};
use flotilla_chassis::db::CorruptRow;
use time::OffsetDateTime;

use super::{ShippingStore, parse_currency};
use crate::domain::{QuoteId, QuoteInput};

/// A stored quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteRecord {
    pub id: QuoteId,
    /// The destination it was priced for.
    pub country: String,
    pub amount: Money,
    /// When it stops being honoured.
    pub expires_at: OffsetDateTime,
}

impl ShippingStore {
    /// Stores a quote priced at `amount` for `input`.
    pub async fn insert_quote(
        &self,
        input: &QuoteInput,
        amount: Money,
        now: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<QuoteRecord, sqlx::Error> {
        let id = QuoteId::generate();
        sqlx::query(
            "INSERT INTO quotes (id, country, postal_code, items, weight_grams, amount_minor,
                                 currency, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.as_str())
        .bind(input.country.as_str())
        .bind(&input.postal_code)
        .bind(i64::from(input.items.get()))
        .bind(input.weight.map(|w| i64::from(w.0)))
        .bind(amount.amount_minor)
        .bind(amount.currency.as_str())
        .bind(millis(now))
        .bind(millis(expires_at))
        .execute(self.db.pool())
        .await?;
        Ok(QuoteRecord {
            id,
            country: input.country.as_str().to_owned(),
            amount,
            expires_at,
        })
    }

    /// The quote `id`, expired or not.
    pub async fn quote(&self, id: &QuoteId) -> Result<Option<QuoteRecord>, sqlx::Error> {
        let row: Option<(String, String, i64, String, i64)> = sqlx::query_as(
            "SELECT id, country, amount_minor, currency, expires_at FROM quotes WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|(stored_id, country, amount_minor, currency, expires_at)| {
            let currency = parse_currency("quotes.currency", &currency)?;
            Ok(QuoteRecord {
                id: QuoteId::parse(&stored_id)
                    .ok_or_else(|| CorruptRow::column("quotes.id", &stored_id))?,
                country,
                amount: Money::new(amount_minor, currency),
                expires_at: at_millis(expires_at),
            })
        })
        .transpose()
    }

    /// Deletes the quotes that expired before `before`; returns how many.
    pub async fn purge_quotes(&self, before: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let done = sqlx::query("DELETE FROM quotes WHERE expires_at < $1")
            .bind(millis(before))
            .execute(self.db.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
