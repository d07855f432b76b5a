//! The gateway in a one-process host: routing, probes and contracts per service, bad input, and
//! above all authentication — every forged, expired or misdirected token is refused, and
//! identity headers sent by a client are never believed.

use crate::support::{TestApp, spawn_app};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Signs up and logs in a fresh user; returns (user id, bearer token).
async fn user(app: &TestApp) -> (String, String) {
    let email = format!("u{}@example.com", rand::random::<u64>());
    let res = app
        .http
        .post(format!("{}/api/identity/signup", app.base))
        .json(&json!({"email": email, "password": "password-123", "name": "U"}))
        .send()
        .await
        .expect("signup");
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let token: Value = app
        .http
        .post(format!("{}/api/identity/login", app.base))
        .json(&json!({"email": email, "password": "password-123"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    (
        id,
        token["access_token"].as_str().expect("token").to_owned(),
    )
}

/// Identity's active signing key, read from its own database file (as an attacker who stole
/// it could; here it lets the test mint tokens with chosen claims).
async fn signing_key(app: &TestApp) -> (String, EncodingKey) {
    let url = format!(
        "sqlite://{}?mode=ro",
        app.dir.path().join("identity.db").display()
    );
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url)
        .await
        .expect("open identity db");
    let (kid, pkcs8): (String, String) =
        sqlx::query_as("SELECT kid, private_key_pkcs8 FROM signing_keys WHERE active = TRUE")
            .fetch_one(&pool)
            .await
            .expect("active key");
    let der = base64::engine::general_purpose::STANDARD
        .decode(pkcs8.trim())
        .expect("base64 pkcs8");
    (kid, EncodingKey::from_ed_der(&der))
}

fn claims(sub: &str, exp: i64) -> Value {
    json!({"sub": sub, "role": "customer", "iss": "flotilla", "aud": "flotilla",
           "exp": exp, "iat": now() - 10, "nbf": now() - 10, "jti": "t"})
}

fn sign(kid: &str, key: &EncodingKey, claims: &Value) -> String {
    flotilla_chassis::jwt_crypto::install();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

async fn cart_status(app: &TestApp, token: &str) -> u16 {
    app.http
        .get(format!("{}/api/cart", app.base))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .expect("cart")
        .status()
        .as_u16()
}

#[tokio::test]
async fn forged_expired_and_misdirected_tokens_are_refused() {
    let app = spawn_app().await;
    let (id, token) = user(&app).await;
    assert_eq!(cart_status(&app, &token).await, 200, "a real token works");
    let (kid, key) = signing_key(&app).await;

    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &claims(&id, now() + 600))).await,
        200,
        "minted with the real key"
    );
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &claims(&id, now() - 5))).await,
        200,
        "expired inside the leeway"
    );
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &claims(&id, now() - 3600))).await,
        401,
        "expired"
    );
    let mut c = claims(&id, now() + 600);
    c["aud"] = json!("someone-else");
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &c)).await,
        401,
        "wrong audience"
    );
    let mut c = claims(&id, now() + 600);
    c["iss"] = json!("evil");
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &c)).await,
        401,
        "wrong issuer"
    );
    let mut c = claims(&id, now() + 600);
    c["nbf"] = json!(now() + 3600);
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &c)).await,
        401,
        "not yet valid"
    );
    let mut c = claims(&id, now() + 600);
    c.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        cart_status(&app, &sign(&kid, &key, &c)).await,
        401,
        "no expiry"
    );

    let parts: Vec<&str> = token.split('.').collect();
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    assert_eq!(
        cart_status(&app, &format!("{none_header}.{}.", parts[1])).await,
        401,
        "alg none"
    );
    assert_eq!(
        cart_status(&app, &format!("{}.{}.", parts[0], parts[1])).await,
        401,
        "stripped signature"
    );
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    payload["role"] = json!("admin");
    let tampered = URL_SAFE_NO_PAD.encode(payload.to_string());
    assert_eq!(
        cart_status(&app, &format!("{}.{tampered}.{}", parts[0], parts[2])).await,
        401,
        "tampered"
    );

    // HS256 keyed with the public key (the classic algorithm-confusion attack).
    let jwks: Value = reqwest::get(format!("{}/api/identity/.well-known/jwks.json", app.base))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let x = jwks["keys"][0]["x"].as_str().expect("x");
    for secret in [
        x.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(x).expect("x bytes"),
    ] {
        flotilla_chassis::jwt_crypto::install();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        let forged = jsonwebtoken::encode(
            &header,
            &claims(&id, now() + 600),
            &EncodingKey::from_secret(&secret),
        )
        .expect("hs256");
        assert_eq!(
            cart_status(&app, &forged).await,
            401,
            "HS256 with the public key"
        );
    }
    // A key identity never published.
    let stranger = EncodingKey::from_ed_der(&stranger_key());
    assert_eq!(
        cart_status(
            &app,
            &sign("not-a-kid", &stranger, &claims(&id, now() + 600))
        )
        .await,
        401,
        "unknown kid"
    );
    assert_eq!(
        cart_status(&app, &sign(&kid, &stranger, &claims(&id, now() + 600))).await,
        401,
        "wrong key"
    );

    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer not.a.jwt",
        "Token abc",
    ] {
        let res = app
            .http
            .get(format!("{}/api/cart", app.base))
            .header("authorization", header)
            .send()
            .await
            .expect("cart");
        assert_eq!(res.status(), 401, "{header}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
}

/// A fresh Ed25519 key in PKCS#8, not known to identity.
fn stranger_key() -> Vec<u8> {
    let rng = ring::rand::SystemRandom::new();
    ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .expect("keygen")
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn identity_headers_from_clients_are_ignored() {
    let app = spawn_app().await;
    let (alice, alice_token) = user(&app).await;
    let (_bob, bob_token) = user(&app).await;
    let product: Value = app
        .http
        .get(format!("{}/api/catalog/products?page_size=1", app.base))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let id = product["items"][0]["id"].as_str().expect("id");
    let res = app
        .http
        .put(format!("{}/api/cart/items/{id}", app.base))
        .header("authorization", format!("Bearer {alice_token}"))
        .json(&json!({"quantity": 1}))
        .send()
        .await
        .expect("add");
    assert_eq!(res.status(), 200);

    // No token, Alice's id in the trusted headers: refused.
    let res = app
        .http
        .get(format!("{}/api/cart", app.base))
        .header("x-flotilla-user-id", &alice)
        .header("x-flotilla-user-role", "admin")
        .send()
        .await
        .expect("cart");
    assert_eq!(res.status(), 401);
    // Bob's token plus Alice's id: Bob's (empty) cart.
    let cart: Value = app
        .http
        .get(format!("{}/api/cart", app.base))
        .header("authorization", format!("Bearer {bob_token}"))
        .header("x-flotilla-user-id", &alice)
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    assert_eq!(
        cart["items"].as_array().map(Vec::len),
        Some(0),
        "Bob never sees Alice's cart"
    );
    // Bob removing Alice's line removes nothing of hers.
    let res = app
        .http
        .delete(format!("{}/api/cart/items/{id}", app.base))
        .header("authorization", format!("Bearer {bob_token}"))
        .header("x-flotilla-user-id", &alice)
        .send()
        .await
        .expect("delete");
    assert!(res.status().is_success());
    let cart: Value = app
        .http
        .get(format!("{}/api/cart", app.base))
        .header("authorization", format!("Bearer {alice_token}"))
        .send()
        .await
        .expect("cart")
        .json()
        .await
        .expect("json");
    assert_eq!(cart["items"][0]["product_id"], id);
}

#[tokio::test]
async fn every_service_serves_probes_and_its_contract() {
    let app = spawn_app().await;
    for service in ["identity", "catalog", "cart"] {
        for probe in ["healthz", "readyz"] {
            let res = app
                .http
                .get(format!("{}/api/{service}/{probe}", app.base))
                .send()
                .await
                .expect("probe");
            assert_eq!(res.status(), 200, "{service} {probe}");
        }
        let doc: Value = app
            .http
            .get(format!("{}/api/{service}/openapi.json", app.base))
            .send()
            .await
            .expect("openapi")
            .json()
            .await
            .expect("json");
        assert!(
            doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
            "{service}: {doc}"
        );
        assert!(
            doc["paths"].as_object().is_some_and(|p| !p.is_empty()),
            "{service} documents its paths"
        );
    }
    let res = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("gateway health");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn bad_input_gets_problem_json_at_the_gateway() {
    let app = spawn_app().await;
    let check = |res: reqwest::Response, status: u16| async move {
        assert_eq!(res.status(), status, "{}", res.url());
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{}",
            res.url()
        );
        let body: Value = res.json().await.expect("problem json");
        assert_eq!(body["status"], status);
        assert!(
            body["type"]
                .as_str()
                .is_some_and(|t| t.starts_with("urn:flotilla:problem:"))
        );
    };
    check(
        app.http
            .get(format!("{}/api/nope/x", app.base))
            .send()
            .await
            .expect("x"),
        404,
    )
    .await;
    check(
        app.http
            .get(format!("{}/api/catalog/products/p9999999", app.base))
            .send()
            .await
            .expect("x"),
        404,
    )
    .await;
    check(
        app.http
            .get(format!(
                "{}/api/catalog/products?page_size=100000",
                app.base
            ))
            .send()
            .await
            .expect("x"),
        400,
    )
    .await;
    check(
        app.http
            .get(format!("{}/api/catalog/products?page=abc", app.base))
            .send()
            .await
            .expect("x"),
        400,
    )
    .await;
    let signup = format!("{}/api/identity/signup", app.base);
    check(
        app.http
            .post(&signup)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("x"),
        400,
    )
    .await;
    check(
        app.http
            .post(&signup)
            .json(&json!({"email": 5}))
            .send()
            .await
            .expect("x"),
        422,
    )
    .await;
    let huge = json!({"email": "a@b.co", "password": "x".repeat(200_000), "name": "n"});
    check(
        app.http.post(&signup).json(&huge).send().await.expect("x"),
        413,
    )
    .await;
    // The same oversized body without a Content-Length (chunked) is refused too.
    let chunks = futures_chunks(huge.to_string().into_bytes());
    let res = app
        .http
        .post(&signup)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("chunked");
    assert_eq!(res.status(), 413);

    // A page's form post over the limit is the storefront's to refuse, with an HTML page.
    let res = app
        .http
        .post(format!("{}/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("email=a%40b.co&password={}", "x".repeat(200_000)))
        .send()
        .await
        .expect("form post");
    assert_eq!(res.status(), 413);
    let content_type = res.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
}

/// RELIABILITY.md S9: details say what is wrong in the API's words, never Rust type names or
/// debug output, and repeat at most a bounded, escaped piece of the input.
#[tokio::test]
async fn error_details_are_for_people_and_bounded() {
    let app = spawn_app().await;
    let detail = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: Value = res.json().await.expect("problem json");
        let detail = body["detail"].as_str().expect("detail").to_owned();
        for internal in [
            "struct ",
            "Some(",
            "SignupRequest",
            "u32",
            "usize",
            "String",
            "::",
        ] {
            assert!(!detail.contains(internal), "{internal} in {detail}");
        }
        (status, detail)
    };
    let name = "s".repeat(10 * 1024);
    let (status, unknown) = detail(
        app.http
            .get(format!("{}/api/{name}/x", app.base))
            .send()
            .await
            .expect("x"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(unknown.len() < 200, "{} bytes: {unknown}", unknown.len());
    // An unknown route of a known service echoes its path bounded too (it was echoed whole).
    let (status, route) = detail(
        app.http
            .get(format!("{}/api/catalog/{}", app.base, "b".repeat(20_000)))
            .send()
            .await
            .expect("x"),
    )
    .await;
    assert_eq!(status, 404);
    assert!(route.len() < 200, "{} bytes: {route}", route.len());
    // A key given twice is refused, not silently resolved to its last value.
    let twice =
        r#"{"email":"a@example.com","email":"b@example.com","password":"password-123","name":"n"}"#;
    let (status, dup) = detail(
        app.http
            .post(format!("{}/api/identity/signup", app.base))
            .header("content-type", "application/json")
            .body(twice)
            .send()
            .await
            .expect("x"),
    )
    .await;
    assert_eq!(status, 422, "{dup}");
    assert!(dup.contains("`email` is given twice"), "{dup}");
    let signup = format!("{}/api/identity/signup", app.base);
    for (body, status, says) in [
        (json!("just text"), 422, "expected an object"),
        (
            json!({"email": 5, "password": "p", "name": "n"}),
            422,
            "email",
        ),
        (
            json!({"password": "p", "name": "n"}),
            422,
            "`email` is required",
        ),
        (
            json!({"email": "x".repeat(10_000), "password": 1, "name": "n"}),
            422,
            "password",
        ),
    ] {
        let (got, text) = detail(app.http.post(&signup).json(&body).send().await.expect("x")).await;
        assert_eq!(got, status, "{text}");
        assert!(text.contains(says), "{says} not in {text}");
        assert!(text.len() < 300, "{text}");
    }
    let (status, page) = detail(
        app.http
            .get(format!("{}/api/catalog/products?page=abc", app.base))
            .send()
            .await
            .expect("x"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(page.contains("page"), "{page}");
}

fn futures_chunks(bytes: Vec<u8>) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(8192).map(|c| Ok(c.to_vec())).collect();
    futures::stream::iter(chunks)
}

#[tokio::test]
async fn request_ids_are_kept_or_made() {
    let app = spawn_app().await;
    let res = app
        .http
        .get(format!("{}/api/catalog/categories", app.base))
        .header("x-request-id", "my-request-42")
        .send()
        .await
        .expect("x");
    assert_eq!(res.headers()["x-request-id"], "my-request-42");
    let res = app
        .http
        .get(format!("{}/api/catalog/categories", app.base))
        .send()
        .await
        .expect("x");
    assert!(!res.headers()["x-request-id"].is_empty());
}

#[tokio::test]
async fn the_admin_surface_refuses_customers_in_every_spelling() {
    // RELIABILITY.md S2: a customer's token on admin and ops routes, with method, case,
    // trailing-slash and percent-encoding variants: 403 every time, 401 without a token.
    let (app, admin) = crate::checkout::admin_shop().await;
    let (_, customer) = user(&app).await;
    let customer = format!("Bearer {customer}");
    let mut tried = 0;
    for service in [
        "catalog",
        "shipping",
        "inventory",
        "orders",
        "payments",
        "identity",
    ] {
        for path in [
            "/admin/resilience",
            "/admin/faults",
            "/ADMIN/faults",
            "/Admin/Resilience",
            "/admin/faults/",
            "/admin/resilience/",
            "//admin//faults",
            "/%61dmin/faults",
            "/%2561dmin/resilience",
            "/admin%2Ffaults",
            "/x/../admin/faults",
            "/x/%2e%2e/admin/faults",
            "/./admin/resilience",
        ] {
            for method in ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"] {
                let url = format!("{}/api/{service}{path}", app.base);
                let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
                let as_customer = app
                    .http
                    .request(method.clone(), &url)
                    .header("authorization", &customer)
                    .json(&json!({"latency_ms": 1, "for_secs": 1}))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(as_customer.status(), 403, "customer: {method} {url}");
                let anonymous = app
                    .http
                    .request(method.clone(), &url)
                    .send()
                    .await
                    .expect("request");
                assert_eq!(anonymous.status(), 401, "anonymous: {method} {url}");
                tried += 1;
            }
        }
    }
    assert_eq!(tried, 6 * 13 * 6);
    // The same routes still work for an admin.
    let res = app
        .http
        .get(format!("{}/api/catalog/admin/resilience", app.base))
        .header("authorization", &admin)
        .send()
        .await
        .expect("report");
    assert_eq!(res.status(), 200);
    // And the site's own admin page is guarded alike.
    for path in [
        "/admin/resilience",
        "/ADMIN/resilience/",
        "/%61dmin/resilience",
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .header("authorization", &customer)
            .send()
            .await
            .expect("page");
        assert_eq!(res.status(), 403, "{path}");
        let page = res.text().await.expect("page");
        assert!(page.contains("administrators"), "{path}: {page}");
    }
    let res = app
        .http
        .get(format!("{}/admin/resilience", app.base))
        .header("authorization", &admin)
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn api_answers_and_pictures_are_never_sniffed_and_pictures_run_nothing() {
    let app = spawn_app().await;
    for path in [
        "/api/catalog/products/p0000001",
        "/api/catalog/products/nope",
        "/api/catalog/products/p0000001/image.svg",
        "/api/nope",
        "/healthz",
        "/",
    ] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("get");
        assert_eq!(
            res.headers()
                .get("x-content-type-options")
                .map(|v| v.as_bytes()),
            Some(&b"nosniff"[..]),
            "{path}"
        );
    }
    let res = app
        .http
        .get(format!(
            "{}/api/catalog/products/p0000001/image.svg",
            app.base
        ))
        .send()
        .await
        .expect("image");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("sandbox"),
        "{csp}"
    );
}

#[tokio::test]
async fn cross_origin_calls_are_closed_by_default_and_open_to_listed_origins() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/cart/items", app.base),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let read = |app: &TestApp, origin: &'static str| {
        app.http
            .get(format!("{}/api/catalog/products/p0000001", app.base))
            .header("origin", origin)
            .send()
    };
    let closed = spawn_app().await;
    for res in [
        preflight(&closed, "https://shop.example")
            .await
            .expect("preflight"),
        read(&closed, "https://shop.example").await.expect("read"),
    ] {
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "{:?}",
            res.headers()
        );
    }
    let open = crate::support::spawn_app_with(json!({
        "gateway": {"cors": {"allowed_origins": ["https://shop.example"], "max_age_secs": 600}},
    }))
    .await;
    let res = preflight(&open, "https://shop.example")
        .await
        .expect("preflight");
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let allowed = res.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert_eq!(res.headers()["access-control-max-age"], "600");
    let res = read(&open, "https://shop.example").await.expect("read");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    for res in [
        preflight(&open, "https://evil.example")
            .await
            .expect("preflight"),
        read(&open, "https://evil.example").await.expect("read"),
    ] {
        assert!(!res.headers().contains_key("access-control-allow-origin"));
    }
}

#[tokio::test]
async fn session_cookies_are_secure_when_configured() {
    for (secure, config) in [
        (false, json!({})),
        (true, json!({"gateway": {"secure_cookies": true}})),
    ] {
        let app = crate::support::spawn_app_with(config).await;
        let res = crate::support::web_signup(&crate::support::client(), &app.base, "cookie").await;
        assert_eq!(res.status(), 303);
        let cookie = res.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(cookie.starts_with("flotilla_token="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert_eq!(cookie.ends_with("; Secure"), secure, "{cookie}");
    }
}

#[tokio::test]
async fn the_gateway_reports_its_own_resilience_to_admins() {
    let (app, admin) = crate::checkout::admin_shop().await;
    let (_, customer) = user(&app).await;
    let read = app
        .http
        .get(format!("{}/api/catalog/products/p0000001", app.base))
        .send()
        .await
        .expect("read");
    assert_eq!(read.status(), 200);
    let url = format!("{}/api/gateway/admin/resilience", app.base);
    let anonymous = app.http.get(&url).send().await.expect("report");
    assert_eq!(anonymous.status(), 401);
    let as_customer = app
        .http
        .get(&url)
        .header("authorization", format!("Bearer {customer}"))
        .send()
        .await
        .expect("report");
    assert_eq!(as_customer.status(), 403);
    let report: Value = app
        .http
        .get(&url)
        .header("authorization", &admin)
        .send()
        .await
        .expect("report")
        .json()
        .await
        .expect("json");
    assert_eq!(report["service"], "gateway", "{report}");
    let catalog = report["upstreams"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["upstream"] == "catalog"))
        .expect("the gateway calls catalog");
    assert_eq!(catalog["breaker"]["state"], "closed", "{catalog}");
}

#[tokio::test]
async fn a_remembered_token_is_refused_once_it_expires() {
    // The gateway remembers verified tokens; an expired one must still be refused.
    let app = crate::support::spawn_app_with(json!({
        "identity": {"token_ttl_secs": 2, "leeway_secs": 0},
    }))
    .await;
    let (_, token) = user(&app).await;
    let me = || {
        app.http
            .get(format!("{}/api/identity/me", app.base))
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(me().await.expect("me").status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    assert_eq!(me().await.expect("me").status(), 401);
}
