//! The operators' view of sagas: each saga's state with its log and review flag, one or a page
//! at a time (the log of a whole page is read in one query); one saga also with the operators'
//! actions on it, from the platform's audit trail.

use flotilla_chassis::audit;
use flotilla_chassis::clock::at_millis;
use flotilla_chassis::pagination::{Page, PageRequest};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;

use super::OrdersStore;
use crate::contract::{SagaReview, SagaStepView, SagaView};
use crate::saga::Phase;
use flotilla_chassis::db::placeholders;

const SAGA_SELECT: &str = "SELECT order_id, status, step, attempts, failure, updated_at,
                                  review_note, review_by, review_at FROM sagas";

impl OrdersStore {
    /// One saga with its log and the operators' actions on it.
    pub async fn saga_view(&self, order_id: &str) -> Result<Option<SagaView>, sqlx::Error> {
        let sql = format!("{SAGA_SELECT} WHERE order_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(order_id)
            .fetch_optional(self.db.pool())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut view = self.complete_views(vec![row]).await?.pop();
        if let Some(view) = &mut view {
            view.audit = audit::of_subject(&self.db, order_id).await?;
        }
        Ok(view)
    }

    /// One page of sagas (optionally in one phase), most recently changed first.
    pub async fn saga_views(
        &self,
        phase: Option<Phase>,
        page: PageRequest,
    ) -> Result<Page<SagaView>, sqlx::Error> {
        let (total, found) = match phase {
            Some(phase) => {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sagas WHERE status = $1")
                    .bind(phase.as_str())
                    .fetch_one(self.db.pool())
                    .await?;
                let sql = format!(
                    "{SAGA_SELECT} WHERE status = $1 ORDER BY updated_at DESC, order_id DESC
                     LIMIT $2 OFFSET $3"
                );
                let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(phase.as_str())
                    .bind(page.limit())
                    .bind(page.offset())
                    .fetch_all(self.db.pool())
                    .await?;
                (total, found)
            }
            None => {
                let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sagas")
                    .fetch_one(self.db.pool())
                    .await?;
                let sql = format!(
                    "{SAGA_SELECT} ORDER BY updated_at DESC, order_id DESC LIMIT $1 OFFSET $2"
                );
                let found = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(page.limit())
                    .bind(page.offset())
                    .fetch_all(self.db.pool())
                    .await?;
                (total, found)
            }
        };
        Ok(Page {
            items: self.complete_views(found).await?,
            total: u64::try_from(total).unwrap_or(0),
            page: page.page,
            page_size: page.page_size,
        })
    }

    async fn complete_views(&self, rows: Vec<AnyRow>) -> Result<Vec<SagaView>, sqlx::Error> {
        let mut views = rows
            .iter()
            .map(|row| {
                let attempts: i64 = row.try_get("attempts")?;
                let review_at: Option<i64> = row.try_get("review_at")?;
                let review = match review_at {
                    Some(at) => Some(SagaReview {
                        note: row
                            .try_get::<Option<String>, _>("review_note")?
                            .unwrap_or_default(),
                        by: row
                            .try_get::<Option<String>, _>("review_by")?
                            .unwrap_or_default(),
                        at: at_millis(at),
                    }),
                    None => None,
                };
                Ok(SagaView {
                    order_id: row.try_get("order_id")?,
                    status: row.try_get("status")?,
                    step: row.try_get("step")?,
                    failure: row.try_get("failure")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    steps: Vec::new(),
                    updated_at: at_millis(row.try_get("updated_at")?),
                    review,
                    audit: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        if views.is_empty() {
            return Ok(views);
        }
        let sql = format!(
            "SELECT order_id, step, action, outcome, detail, at FROM saga_log
             WHERE order_id IN ({}) ORDER BY order_id, seq",
            placeholders(1, views.len())
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for view in &views {
            query = query.bind(view.order_id.as_str());
        }
        let mut logs: HashMap<String, Vec<SagaStepView>> = HashMap::new();
        for row in query.fetch_all(self.db.pool()).await? {
            let entry = SagaStepView {
                step: row.try_get("step")?,
                action: row.try_get("action")?,
                outcome: row.try_get("outcome")?,
                detail: row.try_get("detail")?,
                at: at_millis(row.try_get("at")?),
            };
            logs.entry(row.try_get("order_id")?)
                .or_default()
                .push(entry);
        }
        for view in &mut views {
            view.steps = logs.remove(&view.order_id).unwrap_or_default();
        }
        Ok(views)
    }
}
