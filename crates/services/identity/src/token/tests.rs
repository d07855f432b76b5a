//! The verifier against the attacks of RFC 8725 and the lifetime rules, one case per test.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use flotilla_chassis::Role;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::Ed25519KeyPair;
use serde_json::{Value, json};

use super::*;
use crate::IdentityConfig;

const NOW: i64 = 1_800_000_000;

struct Setup {
    key: SigningKey,
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    keys: JwkSet,
}

fn setup() -> Setup {
    let config = IdentityConfig::default();
    let key = SigningKey::generate().expect("key");
    let keys = JwkSet {
        keys: vec![key.jwk()],
    };
    Setup {
        issuer: TokenIssuer::new(key.clone(), &config),
        verifier: TokenVerifier::new(&config),
        key,
        keys,
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

/// A token with any header and claims, correctly signed with `key`.
fn signed_raw(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let pkcs8 = STANDARD.decode(key.pkcs8_base64()).expect("base64");
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).expect("pkcs8");
    let message = format!("{}.{}", b64(header), b64(claims));
    let signature = URL_SAFE_NO_PAD.encode(pair.sign(message.as_bytes()).as_ref());
    format!("{message}.{signature}")
}

fn good_header(key: &SigningKey) -> Value {
    json!({"alg": "EdDSA", "typ": "JWT", "kid": key.kid()})
}

fn good_claims(s: &Setup) -> Value {
    serde_json::to_value(s.issuer.claims("user-1", Role::Customer, NOW)).expect("claims")
}

fn invalid(result: Result<AccessClaims, TokenError>) -> String {
    match result {
        Err(TokenError::Invalid(why)) => why,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn a_token_it_issued_verifies() {
    let s = setup();
    let token = s.issuer.issue("user-1", Role::Admin, NOW).expect("sign");
    let claims = s.verifier.verify(&token, &s.keys, NOW).expect("valid");
    assert_eq!(claims.sub, "user-1");
    assert_eq!(claims.role, Role::Admin);
    assert_eq!(
        (claims.iss.as_str(), claims.aud.as_str()),
        ("flotilla", "flotilla")
    );
    assert_eq!(
        (claims.iat, claims.exp, claims.nbf),
        (NOW, NOW + 900, Some(NOW))
    );
    assert!(!claims.jti.is_empty());
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(s.key.kid()));
}

#[test]
fn expiry_is_checked_against_the_given_clock_with_leeway() {
    let s = setup();
    let token = s.issuer.issue("user-1", Role::Customer, NOW).expect("sign");
    let exp = NOW + 900;
    assert!(s.verifier.verify(&token, &s.keys, exp + 29).is_ok());
    assert_eq!(
        s.verifier.verify(&token, &s.keys, exp + 30),
        Err(TokenError::Expired)
    );
    assert_eq!(
        s.verifier.verify(&token, &s.keys, exp + 3600),
        Err(TokenError::Expired)
    );
}

#[test]
fn a_token_from_the_future_is_refused_beyond_the_leeway() {
    let s = setup();
    let token = s.issuer.issue("user-1", Role::Customer, NOW).expect("sign");
    // The verifier's clock is behind the issuer's: inside the leeway this is tolerated.
    assert!(s.verifier.verify(&token, &s.keys, NOW - 30).is_ok());
    assert_eq!(
        s.verifier.verify(&token, &s.keys, NOW - 31),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn nbf_in_the_future_is_refused() {
    let s = setup();
    let mut claims = good_claims(&s);
    claims["nbf"] = json!(NOW + 120);
    let token = signed_raw(&s.key, &good_header(&s.key), &claims);
    assert_eq!(
        s.verifier.verify(&token, &s.keys, NOW),
        Err(TokenError::NotYetValid)
    );
    assert!(s.verifier.verify(&token, &s.keys, NOW + 100).is_ok());
}

#[test]
fn wrong_issuer_or_audience_is_refused() {
    let s = setup();
    for (claim, value) in [("iss", "someone-else"), ("aud", "another-app")] {
        let mut claims = good_claims(&s);
        claims[claim] = json!(value);
        let token = signed_raw(&s.key, &good_header(&s.key), &claims);
        invalid(s.verifier.verify(&token, &s.keys, NOW));
    }
    // An audience list without this verifier's audience, or with non-strings, is refused.
    for aud in [
        json!(["other", "another"]),
        json!([]),
        json!(["flotilla", 7]),
    ] {
        let mut claims = good_claims(&s);
        claims["aud"] = aud;
        let token = signed_raw(&s.key, &good_header(&s.key), &claims);
        invalid(s.verifier.verify(&token, &s.keys, NOW));
    }
}

#[test]
fn an_audience_list_containing_the_audience_is_accepted() {
    // RFC 7519 §4.1.3: `aud` may be an array; the token is for us when ours is in it.
    let s = setup();
    let mut claims = good_claims(&s);
    claims["aud"] = json!(["other", "flotilla"]);
    let token = signed_raw(&s.key, &good_header(&s.key), &claims);
    let verified = s.verifier.verify(&token, &s.keys, NOW).expect("valid");
    assert_eq!(verified.aud, "flotilla");
}

#[test]
fn a_lifetime_beyond_the_issuers_is_refused() {
    // Signed by the real key, but living 30 years: identity never issues that.
    let s = setup();
    let mut claims = good_claims(&s);
    claims["exp"] = json!(NOW + 30 * 365 * 24 * 3600);
    let token = signed_raw(&s.key, &good_header(&s.key), &claims);
    assert!(invalid(s.verifier.verify(&token, &s.keys, NOW)).contains("lifetime"));
    // The configured lifetime (900 s) plus the leeway (30 s) is the limit, inclusive.
    for (extra, ok) in [(930, true), (931, false)] {
        let mut claims = good_claims(&s);
        claims["exp"] = json!(NOW + extra);
        let token = signed_raw(&s.key, &good_header(&s.key), &claims);
        assert_eq!(
            s.verifier.verify(&token, &s.keys, NOW).is_ok(),
            ok,
            "{extra}"
        );
    }
    // An `iat` far back makes the span too long even for a token that has not expired.
    let mut claims = good_claims(&s);
    claims["iat"] = json!(NOW - 3600);
    let token = signed_raw(&s.key, &good_header(&s.key), &claims);
    invalid(s.verifier.verify(&token, &s.keys, NOW));
}

#[test]
fn required_claims_must_be_present() {
    let s = setup();
    for claim in ["exp", "iat", "sub", "iss", "aud", "jti", "role"] {
        let mut claims = good_claims(&s);
        claims.as_object_mut().expect("object").remove(claim);
        let token = signed_raw(&s.key, &good_header(&s.key), &claims);
        invalid(s.verifier.verify(&token, &s.keys, NOW));
    }
    let mut claims = good_claims(&s);
    claims["role"] = json!("superuser");
    let token = signed_raw(&s.key, &good_header(&s.key), &claims);
    invalid(s.verifier.verify(&token, &s.keys, NOW));
}

#[test]
fn alg_none_is_refused() {
    let s = setup();
    let claims = good_claims(&s);
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "kid": s.key.kid()});
        for token in [
            format!("{}.{}.", b64(&header), b64(&claims)),
            format!("{}.{}", b64(&header), b64(&claims)),
        ] {
            assert!(s.verifier.verify(&token, &s.keys, NOW).is_err(), "{alg}");
        }
    }
    let header = json!({"alg": "none", "kid": s.key.kid()});
    let token = format!("{}.{}.", b64(&header), b64(&claims));
    invalid(s.verifier.verify(&token, &s.keys, NOW));
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let s = setup();
    let claims = s.issuer.claims("user-1", Role::Admin, NOW);
    let raw_public = URL_SAFE_NO_PAD.decode(s.key.public_key()).expect("x");
    for secret in [raw_public.as_slice(), s.key.public_key().as_bytes()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(s.key.kid().to_owned());
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).expect("hs");
        let why = invalid(s.verifier.verify(&token, &s.keys, NOW));
        assert!(why.contains("HS256"), "{why}");
    }
}

#[test]
fn other_asymmetric_algorithms_are_refused() {
    let s = setup();
    for alg in ["RS256", "ES256", "PS256", "EdDSA2"] {
        let header = json!({"alg": alg, "kid": s.key.kid()});
        let token = signed_raw(&s.key, &header, &good_claims(&s));
        invalid(s.verifier.verify(&token, &s.keys, NOW));
    }
}

#[test]
fn a_tampered_payload_is_refused() {
    let s = setup();
    let token = s.issuer.issue("user-1", Role::Customer, NOW).expect("sign");
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut claims = good_claims(&s);
    claims["role"] = json!("admin");
    let forged = b64(&claims);
    parts[1] = &forged;
    let why = invalid(s.verifier.verify(&parts.join("."), &s.keys, NOW));
    assert!(why.contains("signature"), "{why}");
}

#[test]
fn a_stripped_signature_is_refused() {
    let s = setup();
    let token = s.issuer.issue("user-1", Role::Customer, NOW).expect("sign");
    let (unsigned, _) = token.rsplit_once('.').expect("three parts");
    invalid(s.verifier.verify(&format!("{unsigned}."), &s.keys, NOW));
    assert_eq!(
        s.verifier.verify(unsigned, &s.keys, NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn a_signature_by_another_key_is_refused() {
    let s = setup();
    let other = SigningKey::generate().expect("key");
    // Signed by `other` but claiming to be signed by the published key.
    let token = signed_raw(&other, &good_header(&s.key), &good_claims(&s));
    invalid(s.verifier.verify(&token, &s.keys, NOW));
}

#[test]
fn an_unknown_or_missing_kid_asks_for_a_key_refresh() {
    let s = setup();
    let other = SigningKey::generate().expect("key");
    let token = signed_raw(&other, &good_header(&other), &good_claims(&s));
    assert_eq!(
        s.verifier.verify(&token, &s.keys, NOW),
        Err(TokenError::UnknownKey {
            kid: Some(other.kid().to_owned())
        })
    );
    let token = signed_raw(&s.key, &json!({"alg": "EdDSA"}), &good_claims(&s));
    assert_eq!(
        s.verifier.verify(&token, &s.keys, NOW),
        Err(TokenError::UnknownKey { kid: None })
    );
    // With the rotated key set the same token verifies.
    let rotated = JwkSet {
        keys: vec![s.key.jwk(), other.jwk()],
    };
    let token = signed_raw(&other, &good_header(&other), &good_claims(&s));
    assert!(s.verifier.verify(&token, &rotated, NOW).is_ok());
}

#[test]
fn headers_that_choose_their_own_key_are_refused() {
    let s = setup();
    let attacker = SigningKey::generate().expect("key");
    let embedded = serde_json::to_value(attacker.jwk()).expect("jwk");
    for (name, value) in [
        ("jku", json!("https://attacker.example/jwks.json")),
        ("x5u", json!("https://attacker.example/cert.pem")),
        ("jwk", embedded),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
    ] {
        let mut header = good_header(&s.key);
        header[name] = value;
        // Correctly signed with the real key: the header alone must sink it.
        let token = signed_raw(&s.key, &header, &good_claims(&s));
        let why = invalid(s.verifier.verify(&token, &s.keys, NOW));
        assert!(why.contains(name), "{why}");
    }
}

#[test]
fn a_non_ed25519_key_with_the_right_kid_is_not_used() {
    let s = setup();
    let mut oct: jsonwebtoken::jwk::Jwk = serde_json::from_value(json!({
        "kty": "oct", "k": "c2VjcmV0", "alg": "EdDSA", "kid": s.key.kid()
    }))
    .expect("jwk");
    oct.common.key_id = Some(s.key.kid().to_owned());
    let keys = JwkSet { keys: vec![oct] };
    let token = s.issuer.issue("user-1", Role::Customer, NOW).expect("sign");
    invalid(s.verifier.verify(&token, &keys, NOW));
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    let s = setup();
    let long = "a".repeat(10_000);
    for junk in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "a.b.c.d",
        "e30.e30.",
        "bnVsbA.e30.e30",
        "W10.e30.e30",
        "eyJhbGciOjF9.e30.e30",
        "€.€.€",
        long.as_str(),
    ] {
        assert!(s.verifier.verify(junk, &s.keys, NOW).is_err(), "{junk:?}");
    }
    assert_eq!(
        s.verifier.verify("a.b.c", &s.keys, NOW),
        Err(TokenError::Malformed)
    );
}

#[test]
fn keys_round_trip_through_storage() {
    let key = SigningKey::generate().expect("key");
    let loaded = SigningKey::from_pkcs8_base64(&key.pkcs8_base64()).expect("load");
    assert_eq!(loaded.kid(), key.kid());
    assert_eq!(loaded.public_key(), key.public_key());
    assert!(SigningKey::from_pkcs8_base64("bm90IGEga2V5").is_err());
    assert!(!format!("{key:?}").contains(&key.pkcs8_base64()));
}
