//! The console's one stylesheet, compiled into the binary (no files on disk, no build step,
//! no network).

use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet, hand-written in `static/console.css`.
const CONSOLE_CSS: &str = include_str!("../static/console.css");

/// `GET /ops/static/console.css`.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=600"),
        ],
        CONSOLE_CSS,
    )
}
