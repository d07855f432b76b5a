//! `flotilla chaos`: inject a fault into a running service, list its faults, or clear them,
//! through the gateway's `/api/<service>/admin/faults` with an admin's token.
//!
//! The token is `--token` / `FLOTILLA_ADMIN_TOKEN`, or else one obtained by logging in with the
//! administrator `flotilla run` was started with (`FLOTILLA_ADMIN_EMAIL` and
//! `FLOTILLA_ADMIN_PASSWORD`, or `[identity] admin_email` / `admin_password` in the same
//! configuration file). Faults live in each instance's memory: behind a gateway balancing
//! several replicas, one call reaches one of them (the answer names it).

use anyhow::{Context, bail};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use clap::Args;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;

/// Longest wait for the gateway's answer.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Largest answer read.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// The flags that describe a fault to add (which --list and --clear do not take).
const FAULT_FLAGS: [&str; 8] = [
    "route", "upstream", "latency", "jitter", "status", "abort", "rate", "lifetime",
];

/// `flotilla chaos`'s options.
#[derive(Debug, Args, Clone)]
pub struct ChaosArgs {
    /// The service (identity, catalog, cart, inventory, payments, shipping, orders,
    /// notifications, storefront).
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Only this route of the service: METHOD:/path or /path; {name} is one path segment, a
    /// final * any rest (with --upstream: the path called on the upstream).
    #[arg(long, value_name = "METHOD:/PATH")]
    pub route: Option<String>,
    /// Fault the service's calls to this peer service instead of its own routes.
    #[arg(long, value_name = "NAME")]
    pub upstream: Option<String>,
    /// Delay added to each faulted request, e.g. 500ms, 5s (at most 5m).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub latency: Option<std::time::Duration>,
    /// The delay varies uniformly by up to this much either way.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub jitter: Option<std::time::Duration>,
    /// Answer this status instead (429 or 500-599), a problem+json naming the fault.
    #[arg(long, value_name = "CODE")]
    pub status: Option<u16>,
    /// Drop the connection without an answer instead (a reset, as callers see it); not with
    /// --status (an aborted request gets no status).
    #[arg(long, conflicts_with = "status")]
    pub abort: bool,
    /// Share of matching requests faulted: 0.5 or 50% [default: 1].
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// How long the fault lasts, whole seconds (e.g. 60s, 10m; at most 1h) [default: 60s].
    #[arg(long = "for", value_name = "DURATION", value_parser = parse_duration)]
    pub lifetime: Option<std::time::Duration>,
    /// List the service's active faults (remaining time, requests matched and faulted).
    #[arg(long, conflicts_with_all = FAULT_FLAGS, conflicts_with = "clear")]
    pub list: bool,
    /// Remove one fault (by id), or all of them.
    #[arg(long, value_name = "ID", num_args = 0..=1, conflicts_with_all = FAULT_FLAGS)]
    pub clear: Option<Option<String>>,
    /// The gateway [env: FLOTILLA_GATEWAY_URL] [default: the local `flotilla run`,
    /// http://127.0.0.1:PORT with FLOTILLA_PORT or the configuration's port].
    #[arg(
        long,
        value_name = "URL",
        env = "FLOTILLA_GATEWAY_URL",
        hide_env = true
    )]
    pub gateway: Option<String>,
    /// An admin's access token [env: FLOTILLA_ADMIN_TOKEN] [default: log in with
    /// FLOTILLA_ADMIN_EMAIL and FLOTILLA_ADMIN_PASSWORD].
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLOTILLA_ADMIN_TOKEN",
        hide_env = true
    )]
    pub token: Option<String>,
}

/// Runs the command; the error says what failed, for people.
pub async fn run(args: ChaosArgs, config: &figment::Figment) -> anyhow::Result<()> {
    let gateway = match &args.gateway {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => default_gateway(config)?,
    };
    // A fault the flags cannot describe is refused before anything is sent.
    let adding = !args.list && args.clear.is_none();
    let body = if adding {
        Some(new_fault(&args)?)
    } else {
        None
    };
    let http = Http::new(gateway);
    let token = match &args.token {
        Some(token) => token.clone(),
        None => http.admin_token(config).await?,
    };
    let faults = if args.service == "storefront" {
        "/admin/faults".to_owned()
    } else {
        format!("/api/{}/admin/faults", args.service)
    };
    if args.list {
        let list = http
            .expect(Method::GET, &faults, &token, None, StatusCode::OK)
            .await?;
        print_list(&list);
        return Ok(());
    }
    if let Some(clear) = &args.clear {
        match clear {
            Some(id) => {
                let path = format!("{faults}/{id}");
                http.expect(Method::DELETE, &path, &token, None, StatusCode::NO_CONTENT)
                    .await?;
                crate::report!("{}: removed fault {id}", args.service);
            }
            None => {
                let cleared = http
                    .expect(Method::DELETE, &faults, &token, None, StatusCode::OK)
                    .await?;
                // Faults live per instance: say which one answered.
                crate::report!(
                    "{} ({}): cleared {} fault(s)",
                    args.service,
                    cleared["instance"].as_str().unwrap_or("?"),
                    cleared["cleared"].as_u64().unwrap_or(0)
                );
            }
        }
        return Ok(());
    }
    let added = http
        .expect(Method::POST, &faults, &token, body, StatusCode::CREATED)
        .await?;
    crate::report!(
        "{}: fault {} injected — {}",
        args.service,
        added["id"].as_str().unwrap_or("?"),
        describe(&added)
    );
    crate::report!(
        "remove it with: flotilla chaos {} --clear {}",
        args.service,
        added["id"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// The gateway of a `flotilla run` started with the same configuration: its port, on this
/// machine.
fn default_gateway(config: &figment::Figment) -> anyhow::Result<String> {
    let (_, settings) = crate::default_settings(config.clone())?;
    let host = if settings.host.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        settings.host.to_string()
    };
    Ok(format!("http://{host}:{}", settings.port))
}

/// The body of `POST /admin/faults` the flags describe.
fn new_fault(args: &ChaosArgs) -> anyhow::Result<Value> {
    if args.latency.is_none() && args.jitter.is_none() && args.status.is_none() && !args.abort {
        bail!(
            "nothing to inject: give --latency, --jitter, --status or --abort \
             (or --list, or --clear)"
        );
    }
    let ms = |d: Option<Duration>, flag: &str| -> anyhow::Result<u64> {
        let d = d.unwrap_or_default();
        if !d.subsec_nanos().is_multiple_of(1_000_000) {
            bail!("{flag} is counted in whole milliseconds");
        }
        Ok(u64::try_from(d.as_millis())?)
    };
    let mut body = json!({
        "latency_ms": ms(args.latency, "--latency")?,
        "jitter_ms": ms(args.jitter, "--jitter")?,
        "abort": args.abort,
    });
    if let Some(route) = &args.route {
        // Methods are upper case in the API; people type them as they like.
        let route = match route.split_once(":/") {
            Some((method, _)) if !method.starts_with('/') => {
                format!("{}{}", method.to_ascii_uppercase(), &route[method.len()..])
            }
            _ => route.clone(),
        };
        body["route"] = json!(route);
    }
    if let Some(upstream) = &args.upstream {
        body["upstream"] = json!(upstream);
    }
    if let Some(status) = args.status {
        body["status"] = json!(status);
    }
    if let Some(rate) = args.rate {
        body["rate"] = json!(rate);
    }
    if let Some(lifetime) = args.lifetime {
        if lifetime.subsec_nanos() != 0 {
            bail!("--for is counted in whole seconds");
        }
        body["for_secs"] = json!(lifetime.as_secs());
    }
    Ok(body)
}

/// One fault in words: its effect, its target, its rate, what is left of it.
fn describe(fault: &Value) -> String {
    let mut effect = Vec::new();
    let latency = fault["latency_ms"].as_u64().unwrap_or(0);
    let jitter = fault["jitter_ms"].as_u64().unwrap_or(0);
    if latency > 0 || jitter > 0 {
        effect.push(if jitter > 0 {
            format!("latency {} ± {}", millis(latency), millis(jitter))
        } else {
            format!("latency {}", millis(latency))
        });
    }
    if fault["abort"].as_bool() == Some(true) {
        effect.push("abort".to_owned());
    } else if let Some(status) = fault["status"].as_u64() {
        effect.push(format!("status {status}"));
    }
    if effect.is_empty() {
        effect.push("count only".to_owned());
    }
    let route = fault["route"].as_str();
    let target = match (fault["upstream"].as_str(), route) {
        (Some(up), Some(route)) => format!("calls to {up} {route}"),
        (Some(up), None) => format!("calls to {up}"),
        (None, Some(route)) => format!("route {route}"),
        (None, None) => "all routes".to_owned(),
    };
    // At most nine decimals of a percent: 1e-9 is "0.0000001%", not its binary expansion.
    let rate = (fault["rate"].as_f64().unwrap_or(1.0) * 100.0 * 1e9).round() / 1e9;
    format!(
        "{} on {target}, {rate}% of requests, expires in {}",
        effect.join(" then "),
        millis(fault["remaining_ms"].as_u64().unwrap_or(0))
    )
}

/// `1500` as `1.5s`, `200` as `200ms`.
fn millis(ms: u64) -> String {
    if ms >= 1000 {
        format!("{}s", (ms as f64 / 1000.0 * 10.0).round() / 10.0)
    } else {
        format!("{ms}ms")
    }
}

fn print_list(list: &Value) {
    let faults = list["faults"].as_array().cloned().unwrap_or_default();
    crate::report!(
        "{} ({}): {} active fault(s)",
        list["service"].as_str().unwrap_or("?"),
        list["instance"].as_str().unwrap_or("?"),
        faults.len()
    );
    if faults.is_empty() {
        return;
    }
    crate::report!("{:<37} {:>7} {:>7}  FAULT", "ID", "MATCHED", "FIRED");
    for fault in &faults {
        crate::report!(
            "{:<37} {:>7} {:>7}  {}",
            fault["id"].as_str().unwrap_or("?"),
            fault["matched"].as_u64().unwrap_or(0),
            fault["fired"].as_u64().unwrap_or(0),
            describe(fault)
        );
    }
}

/// Parses `5s`, `500ms`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{text:?} has no unit: write e.g. 500ms, 5s, 2m or 1h"))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("{unit:?} is not a unit: use ms, s, m or h")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is out of range"))
}

/// Parses a rate: `0.5` or `50%`.
pub fn parse_rate(text: &str) -> Result<f64, String> {
    let rate = match text.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("{text:?} is not a rate: write 0.5 or 50%"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err(format!("{text:?} is not between 0 and 1 (0% and 100%)"));
    }
    Ok(rate)
}

/// Plain-HTTP calls to the gateway.
struct Http {
    base: String,
    client: Client<HttpConnector, Body>,
}

impl Http {
    fn new(base: String) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        Self {
            base,
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// A token for the administrator of the configuration (see the module's documentation).
    async fn admin_token(&self, config: &figment::Figment) -> anyhow::Result<String> {
        let identity: flotilla_identity::IdentityConfig =
            flotilla_chassis::config::section(config, flotilla_identity::NAME)?;
        let (Some(email), Some(password)) = (identity.admin_email, identity.admin_password) else {
            bail!(
                "no admin credentials: set FLOTILLA_ADMIN_TOKEN (or --token), or \
                 FLOTILLA_ADMIN_EMAIL and FLOTILLA_ADMIN_PASSWORD of the administrator \
                 `flotilla run` was started with"
            );
        };
        let body = json!({"email": email, "password": password});
        let answer = self
            .call(Method::POST, "/api/identity/login", None, Some(body))
            .await
            .context("logging in as the administrator")?;
        match answer {
            (StatusCode::OK, body) => body["access_token"]
                .as_str()
                .map(str::to_owned)
                .context("the login answer has no access_token"),
            (status, body) => bail!(
                "logging in as {email} failed: {}",
                problem_text(status, &body)
            ),
        }
    }

    /// `method path` expecting `want`; any other answer is an error saying what the gateway
    /// said.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> anyhow::Result<Value> {
        let (status, answer) = self.call(method, path, Some(token), body).await?;
        if status != want {
            bail!("{}", problem_text(status, &answer));
        }
        Ok(answer)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder().method(method).uri(&url);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&body)?))?,
            None => request.body(Body::empty())?,
        };
        let response = tokio::time::timeout(TIMEOUT, self.client.request(request))
            .await
            .map_err(|_| anyhow::anyhow!("{url} did not answer within {TIMEOUT:?}"))?
            .with_context(|| format!("cannot reach the gateway at {}", self.base))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(Body::new(response.into_body()), MAX_ANSWER_BYTES)
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Value::String(String::from_utf8_lossy(&bytes).chars().take(200).collect())
            })
        };
        Ok((status, value))
    }
}

/// A problem answer in one line: status, detail and each invalid field.
fn problem_text(status: StatusCode, body: &Value) -> String {
    let mut text = format!("{status}");
    if let Some(detail) = body["detail"].as_str().or(body.as_str()) {
        text.push_str(": ");
        text.push_str(detail);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_as_people_write_them() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert_eq!(parse_rate("50%"), Ok(0.5));
        assert!(parse_rate("1.5").is_err());
        assert!(parse_rate("half").is_err());
    }

    #[test]
    fn faults_are_described_in_words() {
        let fault = json!({"id": "flt_1", "route": null, "upstream": null, "latency_ms": 5000,
            "jitter_ms": 1000, "status": 503, "abort": false, "rate": 0.5, "remaining_ms": 60000});
        assert_eq!(
            describe(&fault),
            "latency 5s ± 1s then status 503 on all routes, 50% of requests, expires in 60s"
        );
    }
}
