//! The load generator and the gauges of the shedding test: one request as the client sees it,
//! closed- and open-loop load, percentiles, and a process's memory and CPU time from `/proc`.

use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// One answer as the client saw it.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) took: Duration,
    /// For a 503: whether it is the problem the gateway promises (type, media type,
    /// `Retry-After`).
    pub(super) well_formed: bool,
}

async fn call(http: reqwest::Client, url: String) -> Answer {
    let started = Instant::now();
    let response = http.get(&url).send().await.expect("the gateway answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    let problem_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/problem+json");
    let body = response.bytes().await.expect("body");
    let took = started.elapsed();
    let well_formed = status == StatusCode::SERVICE_UNAVAILABLE
        && problem_json
        && retry_after.is_some_and(|s| s >= 1)
        && serde_json::from_slice::<serde_json::Value>(&body)
            .is_ok_and(|p| p["type"] == "urn:flotilla:problem:overloaded" && p["status"] == 503);
    Answer {
        status,
        took,
        well_formed,
    }
}

/// `clients` clients each sending its next request when its last is answered, for `length`.
pub(super) async fn closed_loop(
    http: &reqwest::Client,
    url: &str,
    clients: usize,
    length: Duration,
) -> Vec<Answer> {
    let until = Instant::now() + length;
    let mut loops = JoinSet::new();
    for _ in 0..clients {
        let (http, url) = (http.clone(), url.to_owned());
        loops.spawn(async move {
            let mut answers = Vec::new();
            while Instant::now() < until {
                answers.push(call(http.clone(), url.clone()).await);
            }
            answers
        });
    }
    loops.join_all().await.into_iter().flatten().collect()
}

/// Requests sent at `rate` per second for `length`, each on its own task, answered or not.
pub(super) async fn open_loop(
    http: &reqwest::Client,
    url: &str,
    rate: f64,
    length: Duration,
) -> Vec<Answer> {
    let until = Instant::now() + length;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    // Ticks missed while the client was busy are sent at once: the offered rate holds.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = JoinSet::new();
    while Instant::now() < until {
        tick.tick().await;
        calls.spawn(call(http.clone(), url.to_owned()));
    }
    calls.join_all().await
}

/// The `p`-th percentile (0–100) of `took`.
pub(super) fn percentile(answers: &[&Answer], p: f64) -> Duration {
    let mut took: Vec<Duration> = answers.iter().map(|a| a.took).collect();
    took.sort();
    assert!(!took.is_empty(), "no answers to take a percentile of");
    let rank = ((p / 100.0) * took.len() as f64).ceil() as usize;
    took[rank.clamp(1, took.len()) - 1]
}

pub(super) fn ok(answers: &[Answer]) -> Vec<&Answer> {
    answers
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .collect()
}

/// The process's resident memory in KiB (`VmRSS` of `/proc/<pid>/status`).
pub(super) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// CPU time the process has used (user + system), from `/proc/<pid>/stat` (in clock ticks of
/// 10 ms, the kernel's `USER_HZ` of 100 on Linux).
pub(super) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which may hold spaces) start at its closing parenthesis;
    // utime and stime are the 14th and 15th fields, the 12th and 13th after it.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).expect("stat");
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().expect("ticks"))
        .collect();
    Duration::from_millis(10 * fields.iter().sum::<u64>())
}
