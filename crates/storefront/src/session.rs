//! The session cookie and where to go after logging in.
//!
//! The storefront only ever *writes* the `flotilla_token` cookie: the gateway reads it, verifies
//! the token and forwards the caller's identity, so nothing here parses or trusts a token. The
//! cookie is `HttpOnly` (no script may read it; the shop has none anyway) and `SameSite=Lax`
//! (other sites' form posts arrive without it). `Secure` is added by the gateway when the shop is
//! served over TLS (`gateway.secure_cookies`): adding it here would break the plain-HTTP local
//! shop.
//!
//! The `next` parameter of the login page is an open-redirect hazard, so it is reduced to a local
//! path or to `/`.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

/// The cookie the gateway reads the access token from.
pub const COOKIE: &str = "flotilla_token";

/// Longest `next` kept; anything longer is not a path this shop links to.
const MAX_NEXT_LEN: usize = 2048;

/// An access token fit to be a cookie value: a JWT's base64url segments and dots only, so it
/// cannot carry a `;` that would add cookie attributes of its own.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// The token, if it is made only of the characters a JWT uses.
    pub fn parse(token: &str) -> Option<Self> {
        let ok = !token.is_empty()
            && token.len() <= 8192
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
        ok.then(|| AccessToken(token.to_owned()))
    }
}

// Never print a token, not even in a debug log.
impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(..)")
    }
}

/// `Set-Cookie` logging the browser in for `max_age` seconds.
fn login_cookie(token: &AccessToken, max_age: u64) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}",
        token.0
    ))
    .ok()
}

/// `Set-Cookie` logging the browser out.
fn logout_cookie() -> HeaderValue {
    HeaderValue::from_static("flotilla_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
}

/// A 303 to `location` that logs the browser in.
pub fn log_in(location: &str, token: &AccessToken, max_age: u64) -> Response {
    let mut response = Redirect::to(location).into_response();
    if let Some(cookie) = login_cookie(token, max_age) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A 303 to `/` that logs the browser out.
pub fn log_out() -> Response {
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, logout_cookie());
    response
}

/// A 303 to the login page, coming back to `next` (a local path) afterwards.
pub fn to_login(next: &str) -> Response {
    Redirect::to(&format!(
        "/login?next={}",
        query_value(&safe_next(Some(next)))
    ))
    .into_response()
}

/// `?next=<next>` for a link to the login or sign-up page that comes back to `next` (already
/// sanitised) afterwards; empty for `/`, where they go anyway.
pub fn next_query(next: &str) -> String {
    if next == "/" {
        String::new()
    } else {
        format!("?next={}", query_value(next))
    }
}

/// Encodes a sanitised path as a query value. Only the bytes that would end or alter the value
/// are escaped, so the common `/login?next=/cart` stays readable; [`safe_next`] has already
/// ruled out everything non-printable.
fn query_value(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '&' => out.push_str("%26"),
            '#' => out.push_str("%23"),
            '+' => out.push_str("%2B"),
            c => out.push(c),
        }
    }
    out
}

/// `next` if it is a path on this site, else `/`.
///
/// Accepted: starts with exactly one `/` (`//host` and `/\host` are other sites to a browser),
/// printable ASCII only (no `\`, which browsers read as `/`, no spaces or control characters that
/// could split a header), and of a sane length.
pub fn safe_next(next: Option<&str>) -> String {
    let Some(next) = next else {
        return "/".to_owned();
    };
    let bytes = next.as_bytes();
    let local = bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && next.len() <= MAX_NEXT_LEN
        && bytes
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b'\\');
    if local {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/cart")), "/cart");
        assert_eq!(
            safe_next(Some("/search?q=tea&page=2")),
            "/search?q=tea&page=2"
        );
        assert_eq!(safe_next(Some("/")), "/");
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "",
            "/a\\b",
            "/a b",
            "/a\r\nSet-Cookie: x=y",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            safe_next(Some(&format!("/{}", "a".repeat(MAX_NEXT_LEN)))),
            "/"
        );
    }

    #[test]
    fn logout_clears_the_login_cookie() {
        let cookie = logout_cookie();
        let text = cookie.to_str().expect("ascii");
        assert!(text.starts_with(&format!("{COOKIE}=;")));
        assert!(text.ends_with("Max-Age=0"));
    }

    #[test]
    fn tokens_cannot_inject_cookie_attributes() {
        assert!(AccessToken::parse("eyJhbGciOi.eyJzdWIiOi.c2ln-_").is_some());
        assert!(AccessToken::parse("abc; Domain=evil.example").is_none());
        assert!(AccessToken::parse("").is_none());
        let token = AccessToken::parse("a.b.c").expect("valid");
        assert_eq!(format!("{token:?}"), "AccessToken(..)");
        let cookie = login_cookie(&token, 900).expect("valid header");
        assert_eq!(
            cookie.to_str().expect("ascii"),
            "flotilla_token=a.b.c; HttpOnly; SameSite=Lax; Path=/; Max-Age=900"
        );
    }

    #[test]
    fn login_redirect_encodes_next() {
        let response = to_login("/cart");
        assert_eq!(response.status(), axum::http::StatusCode::SEE_OTHER);
        assert_eq!(response.headers()[header::LOCATION], "/login?next=/cart");
        let response = to_login("/search?q=a+b&page=2");
        assert_eq!(
            response.headers()[header::LOCATION],
            "/login?next=/search?q=a%2Bb%26page=2"
        );
        assert_eq!(
            to_login("//evil.example").headers()[header::LOCATION],
            "/login?next=/"
        );
    }
}
