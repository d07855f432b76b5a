//! The notifications HTTP API: a customer's own messages, and the operators' view of everyone's,
//! with their OpenAPI description. Errors become problem+json in [`crate::error`].
//!
//! `GET /messages` takes no user id: it is always the caller's (`Caller`, 401 without one), so a
//! user can never read another's messages. Only `GET /admin/messages` (`Admin`: 401 anonymous,
//! 403 for customers) may filter by user or order. Both lists are newest first and paged, with
//! at most [`MAX_PAGE_SIZE`] messages a page.

use axum::extract::State;
use flotilla_chassis::extract::Query;
use flotilla_chassis::pagination::{Page, PageParams, PageRequest};
use flotilla_chassis::{Admin, Caller, Problem};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::contract::{MAX_PAGE_SIZE, Message};
use crate::domain::{IdError, OrderId, UserId};
use crate::error::NotificationsError;
use crate::store::{MessageFilter, NotificationsStore};

#[derive(Clone)]
pub struct NotificationsState {
    pub store: NotificationsStore,
}

/// The routes, with their OpenAPI description.
pub fn routes(state: NotificationsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(my_messages))
        .routes(routes!(all_messages))
        .with_state(state)
}

/// `?page=&page_size=&user_id=&order_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AdminListParams {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 100_000)]
    page: Option<u32>,
    /// Messages per page (default 20, at most 100).
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<u32>,
    /// Only messages to this user.
    #[param(schema_with = id_schema)]
    user_id: Option<String>,
    /// Only messages about this order.
    #[param(schema_with = id_schema)]
    order_id: Option<String>,
}

/// The rule `domain::check_id` applies to the ids a filter names.
fn id_schema() -> utoipa::openapi::Object {
    flotilla_chassis::openapi::plain_text(
        crate::domain::MAX_ID_LEN,
        "1 to 128 characters, no control characters.",
    )
}

/// `raw` parsed as the id `field` names, when the query sets it.
fn parse_filter<T>(
    field: &'static str,
    raw: Option<&str>,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<Option<T>, NotificationsError> {
    raw.map(parse)
        .transpose()
        .map_err(|reason| NotificationsError::Filter { field, reason })
}

fn page_of(items: Vec<Message>, total: u64, page: PageRequest) -> Page<Message> {
    Page {
        items,
        total,
        page: page.page,
        page_size: page.page_size,
    }
}

/// The caller's own messages, newest first.
#[utoipa::path(get, path = "/messages", tag = "notifications", security(("bearerAuth" = [])), params(PageParams),
    responses(
        (status = 200, description = "One page of the caller's messages", body = Page<Message>),
        (status = 400, description = "Bad paging parameters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %caller.user_id))]
async fn my_messages(
    State(state): State<NotificationsState>,
    caller: Caller,
    Query(params): Query<PageParams>,
) -> Result<axum::Json<Page<Message>>, Problem> {
    let page = params.validate(MAX_PAGE_SIZE)?;
    // The chassis bounds a caller's id already; one that still breaks the id rules (a tab is a
    // legal header character) is refused rather than matched.
    let user_id = parse_filter("user_id", Some(&caller.user_id), UserId::parse)?;
    let filter = MessageFilter {
        user_id: user_id.as_ref(),
        order_id: None,
    };
    let (items, total) = state
        .store
        .list(filter, page)
        .await
        .map_err(NotificationsError::from)?;
    Ok(axum::Json(page_of(items, total, page)))
}

/// Everyone's messages, newest first, optionally for one user and/or one order (admin only).
#[utoipa::path(get, path = "/admin/messages", tag = "admin", security(("bearerAuth" = ["admin"])), params(AdminListParams),
    responses(
        (status = 200, description = "One page of the messages selected", body = Page<Message>),
        (status = 400, description = "Bad paging parameters or filters", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No authenticated caller", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller is not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn all_messages(
    State(state): State<NotificationsState>,
    admin: Admin,
    Query(params): Query<AdminListParams>,
) -> Result<axum::Json<Page<Message>>, Problem> {
    let page = PageParams {
        page: params.page,
        page_size: params.page_size,
    }
    .validate(MAX_PAGE_SIZE)?;
    let user_id = parse_filter("user_id", params.user_id.as_deref(), UserId::parse)?;
    let order_id = parse_filter("order_id", params.order_id.as_deref(), OrderId::parse)?;
    let filter = MessageFilter {
        user_id: user_id.as_ref(),
        order_id: order_id.as_ref(),
    };
    let (items, total) = state
        .store
        .list(filter, page)
        .await
        .map_err(NotificationsError::from)?;
    Ok(axum::Json(page_of(items, total, page)))
}
