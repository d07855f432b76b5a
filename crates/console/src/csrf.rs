//! The per-session form token, the console's second line against cross-site requests (the
//! first is the `Sec-Fetch-Site`/`Origin` check of tower-http's `CsrfLayer`).
//!
//! The token is HMAC-SHA256 of a fixed label, keyed by the session's access token: the same
//! for every form of one session, different for every session, unknowable without the token
//! (an `HttpOnly` cookie no page script can read), and it needs no server state and no key of
//! the gateway's own, so any gateway of a fleet checks the forms another one rendered.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// What the token authenticates: the console's forms, version 1.
const LABEL: &[u8] = b"flotilla ops console form v1";

/// The token of the session whose access token is `session_token`.
pub fn token(session_token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, LABEL).as_ref())
}

/// True when `sent` is the token of the session whose access token is `session_token`
/// (compared in constant time).
pub fn is_valid(session_token: &str, sent: &str) -> bool {
    let Ok(tag) = URL_SAFE_NO_PAD.decode(sent.trim()) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_token.as_bytes());
    hmac::verify(&key, LABEL, &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_belongs_to_one_session() {
        let mine = token("a.b.c");
        assert!(is_valid("a.b.c", &mine));
        assert!(!is_valid("a.b.d", &mine), "another session's token");
        assert!(!is_valid("a.b.c", ""));
        assert!(!is_valid("a.b.c", "not base64!"));
        assert_ne!(token("a.b.c"), token("a.b.d"));
    }
}
