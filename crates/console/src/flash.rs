//! The one-time message an action leaves for the page it redirects to ("Saga retried",
//! "Refused: …"): a short-lived cookie scoped to `/ops`, read and cleared by the next page.
//! A cookie rather than a query parameter, so that nobody can send an admin a link that makes
//! the console say something it did not.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie's name.
const COOKIE: &str = "flotilla_ops_flash";

/// Longest message kept (the rest is cut): a cookie is at most 4 KiB.
const MAX_LEN: usize = 1500;

/// How an action came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// True when the action was done; false when it was refused or failed.
    pub ok: bool,
    /// What to tell the operator.
    pub text: String,
}

/// A 303 to `location` leaving `flash` for the page there.
pub fn redirect(location: &str, flash: &Flash) -> Response {
    let mut response = Redirect::to(location).into_response();
    let text: String = flash.text.chars().take(MAX_LEN).collect();
    let value: String = form_urlencoded::Serializer::new(String::new())
        .append_pair(if flash.ok { "ok" } else { "refused" }, &text)
        .finish();
    if let Ok(cookie) = HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=60"
    )) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// The flash the request carries, if any.
pub fn take(headers: &HeaderMap) -> Option<Flash> {
    let value = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(&format!("{COOKIE}=")))?;
    let (kind, text) = form_urlencoded::parse(value.as_bytes()).next()?;
    Some(Flash {
        ok: kind == "ok",
        text: text.chars().take(MAX_LEN).collect(),
    })
}

/// Clears the flash cookie on `response` (the page showing it is its one reading).
pub fn clear(response: &mut Response) {
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "flotilla_ops_flash=; Path=/ops; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flash_survives_the_round_trip() {
        let flash = Flash {
            ok: false,
            text: "Refused: the saga is past its pivot; α & ; = done".into(),
        };
        let response = redirect("/ops/sagas/ord_1", &flash);
        assert_eq!(response.status(), axum::http::StatusCode::SEE_OTHER);
        let set = response.headers()[header::SET_COOKIE]
            .to_str()
            .expect("ascii");
        let pair = set.split(';').next().expect("pair");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=b; {pair}")).expect("header"),
        );
        assert_eq!(take(&headers), Some(flash));
    }
}
