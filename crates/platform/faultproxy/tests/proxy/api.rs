//! The HTTP API: Toxiproxy's routes and shapes, and problem+json 4xx for every bad input.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use flotilla_faultproxy::{FaultProxy, Limits};

use crate::support::{echo, ms, round_trip};

struct Api {
    base: String,
    http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

impl Api {
    async fn start() -> Self {
        Self::over(FaultProxy::new()).await
    }

    async fn over(fault_proxy: FaultProxy) -> Self {
        let stop = CancellationToken::new();
        let addr = flotilla_faultproxy::api::start(fault_proxy, "127.0.0.1:0", stop.clone())
            .await
            .expect("api");
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("send");
        let status = res.status();
        let problem = res
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/problem+json");
        let text = res.text().await.expect("body");
        if status.is_client_error() {
            assert!(problem, "{status} without problem+json: {text}");
        }
        assert!(!status.is_server_error(), "{status}: {text}");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.call(reqwest::Method::DELETE, path, None).await.0
    }
}

#[tokio::test]
async fn proxies_and_toxics_through_the_api() {
    let api = Api::start().await;
    let upstream = echo().await.to_string();
    let (status, proxy) = api
        .post(
            "/proxies",
            json!({"name": "echo", "listen": "127.0.0.1:0", "upstream": upstream}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(proxy["enabled"], true);
    let listen = proxy["listen"].as_str().expect("listen").to_owned();
    assert!(
        !listen.ends_with(":0"),
        "the bound port is reported: {listen}"
    );

    let (status, all) = api.get("/proxies").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all["echo"]["upstream"], upstream);

    let (status, toxic) = api
        .post(
            "/proxies/echo/toxics",
            json!({"type": "latency", "stream": "upstream", "toxicity": 1.0,
                   "attributes": {"latency": 250, "jitter": 0}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(toxic["name"], "latency_upstream");
    let mut socket = TcpStream::connect(&listen).await.expect("connect");
    assert!(round_trip(&mut socket, b"ping").await >= ms(250));

    let (status, updated) = api
        .post(
            "/proxies/echo/toxics/latency_upstream",
            json!({"attributes": {"jitter": 10}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["attributes"], json!({"latency": 250, "jitter": 10}));
    let (_, got) = api.get("/proxies/echo/toxics/latency_upstream").await;
    assert_eq!(got, updated);
    let (_, list) = api.get("/proxies/echo/toxics").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));

    assert_eq!(
        api.delete("/proxies/echo/toxics/latency_upstream").await,
        StatusCode::NO_CONTENT
    );
    assert!(round_trip(&mut socket, b"ping").await < ms(200));

    let (status, off) = api.post("/proxies/echo", json!({"enabled": false})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["enabled"], false);
    assert!(TcpStream::connect(&listen).await.is_err());

    api.post("/proxies/echo/toxics", json!({"type": "timeout"}))
        .await;
    let (status, _) = api.post("/reset", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = api.get("/proxies/echo").await;
    assert_eq!(after["enabled"], true);
    assert_eq!(after["toxics"], json!([]));
    let mut socket = TcpStream::connect(&listen).await.expect("enabled by reset");
    round_trip(&mut socket, b"ping").await;

    assert_eq!(api.delete("/proxies/echo").await, StatusCode::NO_CONTENT);
    assert_eq!(api.get("/proxies/echo").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_input_is_a_problem_with_a_4xx() {
    let api = Api::start().await;
    let upstream = echo().await.to_string();
    let create = |body: Value| api.post("/proxies", body);
    assert_eq!(
        create(json!({"name": "p", "upstream": upstream})).await.0,
        StatusCode::CREATED
    );
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (
            json!({"name": "p", "upstream": upstream}),
            StatusCode::CONFLICT,
            "exists",
        ),
        (
            json!({"name": "", "upstream": upstream}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            json!({"name": "a/b", "upstream": upstream}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
        ),
        (
            json!({"name": "q", "upstream": "nowhere"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "HOST:PORT",
        ),
        (
            json!({"name": "q", "upstream": "h:99999"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "HOST:PORT",
        ),
        (
            json!({"name": "q"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "upstream",
        ),
        (
            json!({"name": "q", "upstream": upstream, "colour": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "colour",
        ),
        (
            json!({"name": "q", "upstream": upstream, "listen": "10.255.255.1:1"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "listen",
        ),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY, ""),
    ];
    for (body, status, needle) in cases {
        let (got, problem) = create(body.clone()).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(needle)),
            "{body}: {problem}"
        );
    }
    // The port the proxy holds is in use.
    let (_, p) = api.get("/proxies/p").await;
    let taken = p["listen"].as_str().expect("listen").to_owned();
    let (got, _) = create(json!({"name": "q", "listen": taken, "upstream": upstream})).await;
    assert_eq!(got, StatusCode::CONFLICT);

    let toxic_cases: Vec<(Value, &str)> = vec![
        (json!({"type": "nope"}), "not a toxic type"),
        (json!({"attributes": {}}), "required"),
        (json!({"type": "latency", "stream": "sideways"}), "stream"),
        (json!({"type": "latency", "toxicity": 2}), "toxicity"),
        (json!({"type": "latency", "toxicity": -0.1}), "toxicity"),
        (
            json!({"type": "latency", "attributes": {"latency": -5}}),
            "whole number",
        ),
        (
            json!({"type": "latency", "attributes": {"latency": 1.5}}),
            "whole number",
        ),
        (
            json!({"type": "latency", "attributes": {"latency": 99999999}}),
            "3600000",
        ),
        (
            json!({"type": "bandwidth", "attributes": {"latency": 1}}),
            "no attribute",
        ),
        (
            json!({"type": "slicer", "attributes": {"average_size": 0}}),
            "average_size",
        ),
        (json!({"type": "timeout", "attributes": "x"}), "object"),
        (json!("latency"), "object"),
    ];
    for (body, needle) in toxic_cases {
        let (got, problem) = api.post("/proxies/p/toxics", body.clone()).await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {problem}");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(needle)),
            "{body}: {problem}"
        );
    }
    assert_eq!(
        api.post("/proxies/p/toxics", json!({"type": "timeout"}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.post("/proxies/p/toxics", json!({"type": "timeout"}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.post(
            "/proxies/p/toxics/timeout_downstream",
            json!({"stream": "upstream"})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.post(
            "/proxies/p/toxics/timeout_downstream",
            json!({"attributes": {"timeout": -1}})
        )
        .await
        .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.post("/proxies/p", json!({"upstream": "bad"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.post("/proxies/p", json!({"enabled": "yes"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        api.post("/proxies/p", json!({"listen": "127.0.0.1:1"}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(api.get("/proxies/ghost").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        api.post("/proxies/ghost/toxics", json!({"type": "timeout"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("/proxies/p/toxics/ghost").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete("/proxies/p/toxics/ghost").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.delete("/proxies/ghost").await, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/nowhere").await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.delete("/reset").await, StatusCode::METHOD_NOT_ALLOWED);

    // A body that is not JSON; one not declared as JSON is read all the same (Toxiproxy's
    // habit, `curl -d`): `{}` lacks the required fields.
    let res = api
        .http
        .post(format!("{}/proxies", api.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = api
        .http
        .post(format!("{}/proxies", api.base))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// `body` posted as `curl -d` sends it: `Content-Type: application/x-www-form-urlencoded`
/// (or with no content type at all when `content_type` is `None`).
async fn post_raw(
    api: &Api,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let mut req = api
        .http
        .post(format!("{}{path}", api.base))
        .body(body.to_owned());
    if let Some(content_type) = content_type {
        req = req.header("content-type", content_type);
    }
    let res = req.send().await.expect("send");
    let status = res.status();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The README's example is `curl -d '{"type":"latency",…}' …/toxics`: Toxiproxy reads a JSON
/// body whatever its content type, and so does this API; a body that is not JSON is still a
/// 400 that says so.
#[tokio::test]
async fn json_bodies_are_read_whatever_their_content_type() {
    let api = Api::start().await;
    let upstream = echo().await.to_string();
    let form = Some("application/x-www-form-urlencoded");
    let (status, proxy) = post_raw(
        &api,
        "/proxies",
        None,
        &format!(r#"{{"name":"web","upstream":"{upstream}"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{proxy}");
    let (status, toxic) = post_raw(
        &api,
        "/proxies/web/toxics",
        form,
        r#"{"type":"latency","stream":"downstream","attributes":{"latency":200,"jitter":50}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{toxic}");
    assert_eq!(toxic["name"], "latency_downstream");
    let (status, updated) = post_raw(
        &api,
        "/proxies/web/toxics/latency_downstream",
        Some("text/plain"),
        r#"{"attributes":{"latency":300}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["attributes"]["latency"], 300);
    let (status, proxy) = post_raw(&api, "/proxies/web", form, r#"{"enabled":false}"#).await;
    assert_eq!(status, StatusCode::OK, "{proxy}");
    assert_eq!(proxy["enabled"], false);

    for (body, status, says) in [
        ("type=latency", StatusCode::BAD_REQUEST, "not valid JSON"),
        ("", StatusCode::BAD_REQUEST, "not valid JSON"),
        (
            r#"{"type":"latency""#,
            StatusCode::BAD_REQUEST,
            "not valid JSON",
        ),
        (
            r#"{"type":"nope"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "not a toxic type",
        ),
    ] {
        let (got, problem) = post_raw(&api, "/proxies/web/toxics", form, body).await;
        assert_eq!(got, status, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().is_some_and(|d| d.contains(says)),
            "{body}: {problem}"
        );
    }
}

/// The caps of `Limits`: a proxy or toxic over its cap is a 409 that names the cap (not a 422
/// about the request), deleting one makes room again; a connection over its proxy's cap is
/// closed at once, and one that ends makes room.
#[tokio::test]
async fn proxies_toxics_and_connections_are_capped_with_a_clear_problem() {
    let limits = Limits {
        proxies: 2,
        toxics_per_proxy: 2,
        connections_per_proxy: 1,
    };
    let api = Api::over(FaultProxy::with_limits(limits)).await;
    let upstream = echo().await.to_string();
    for name in ["a", "b"] {
        let (status, _) = api
            .post("/proxies", json!({"name": name, "upstream": upstream}))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, problem) = api
        .post("/proxies", json!({"name": "c", "upstream": upstream}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:flotilla:problem:limit-reached");
    assert_eq!(problem["limit"], 2);
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("maximum of 2 proxies"), "{detail}");
    assert!(detail.contains("--max-proxies"), "{detail}");
    assert_eq!(api.delete("/proxies/b").await, StatusCode::NO_CONTENT);
    let (status, _) = api
        .post("/proxies", json!({"name": "c", "upstream": upstream}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "room again after a delete");

    for name in ["t1", "t2"] {
        let (status, _) = api
            .post(
                "/proxies/a/toxics",
                json!({"type": "latency", "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, problem) = api
        .post(
            "/proxies/a/toxics",
            json!({"type": "latency", "name": "t3"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["type"], "urn:flotilla:problem:limit-reached");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("maximum of 2 toxics"), "{detail}");
    // The cap is per proxy.
    let (status, _) = api
        .post("/proxies/c/toxics", json!({"type": "latency"}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, c) = api.get("/proxies/c").await;
    let listen = c["listen"].as_str().expect("listen").to_owned();
    let mut first = TcpStream::connect(&listen).await.expect("connect");
    round_trip(&mut first, b"ping").await;
    let mut over = TcpStream::connect(&listen).await.expect("connect");
    let mut buf = [0u8; 4];
    let closed = tokio::time::timeout(ms(2000), over.read(&mut buf))
        .await
        .expect("the connection over the cap is closed at once");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    drop(first);
    // The first connection's end frees its place; poll with a deadline.
    let deadline = std::time::Instant::now() + ms(3000);
    loop {
        let mut again = TcpStream::connect(&listen).await.expect("connect");
        let answered = tokio::time::timeout(ms(500), async {
            tokio::io::AsyncWriteExt::write_all(&mut again, b"ping")
                .await
                .ok()?;
            let mut back = [0u8; 4];
            again.read_exact(&mut back).await.ok().map(|_| back)
        })
        .await;
        if let Ok(Some(back)) = answered {
            assert_eq!(&back, b"ping");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no room after the first connection ended"
        );
        tokio::time::sleep(ms(50)).await;
    }
}
