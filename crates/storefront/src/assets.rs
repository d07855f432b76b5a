//! The shop's one stylesheet and its icon, compiled into the binary so the shop needs no files on disk, no
//! build step and no network: system fonts, no web fonts, no CDN.

use axum::http::header;
use axum::response::IntoResponse;

/// The stylesheet, hand-written in `static/style.css`.
pub const STYLE_CSS: &str = include_str!("../static/style.css");

/// `GET /static/style.css`. Cached for an hour: it changes only with a new release.
pub async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE_CSS,
    )
}

/// The shop's icon (a boat), hand-written in `static/icon.svg`.
pub const ICON_SVG: &str = include_str!("../static/icon.svg");

/// `GET /static/icon.svg` and `GET /favicon.ico` (browsers ask for the latter on their own; an
/// SVG served there is shown by every current browser). Cached for a day.
pub async fn icon() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON_SVG,
    )
}
