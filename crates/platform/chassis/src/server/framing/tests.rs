//! The framing reader alone: what it refuses, and that it finds every head of a pipelined
//! stream, however the bytes are cut into reads.

use super::*;

const LIMITS: HeadLimits = HeadLimits {
    uri_bytes: 64,
    head_bytes: 512,
};

/// Feeds `stream` in reads of `step` bytes; the refusal and its offset in the whole stream.
fn run(stream: &[u8], step: usize) -> Option<(usize, Refusal)> {
    let mut framing = Framing::new(LIMITS);
    let mut offset = 0;
    for read in stream.chunks(step) {
        if let Some((at, refusal)) = framing.feed(read) {
            return Some((offset + at, refusal));
        }
        offset += read.len();
    }
    None
}

/// The same answer for every way of cutting the stream into reads.
fn check(stream: &[u8]) -> Option<(u16, String)> {
    let whole = run(stream, stream.len().max(1));
    for step in [1, 2, 3, 7, 16] {
        let cut = run(stream, step).map(|(_, r)| r);
        assert_eq!(whole.as_ref().map(|(_, r)| r), cut.as_ref(), "step {step}");
    }
    whole.map(|(_, r)| (r.status.as_u16(), r.detail))
}

#[test]
fn plain_requests_pass() {
    assert_eq!(check(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
    assert_eq!(
        check(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        None
    );
    assert_eq!(
        check(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n"),
        None
    );
}

#[test]
fn smuggling_shapes_are_refused() {
    for (stream, says) in [
        (
            &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
            "both",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
            "both",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
            "one Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
            "one Content-Length",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", "one Host"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
            "one Authorization",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "ends in `chunked`",
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "header name"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", "header name"),
        (b"GET / HTTP/9\r\n\r\n", "HTTP/1"),
    ] {
        let (status, detail) = check(stream).unwrap_or_else(|| {
            panic!("not refused: {}", String::from_utf8_lossy(stream))
        });
        assert_eq!(status, 400, "{detail}");
        assert!(detail.contains(says), "{detail}");
    }
}

#[test]
fn head_limits_are_414_and_431() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
    assert_eq!(check(long.as_bytes()).map(|(s, _)| s), Some(414));
    let endless = format!("GET /{}", "a".repeat(200));
    assert_eq!(check(endless.as_bytes()).map(|(s, _)| s), Some(414));
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "b".repeat(600)
    );
    assert_eq!(check(big.as_bytes()).map(|(s, _)| s), Some(431));
    let many = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        "a: b\r\n".repeat(MAX_HEADERS + 1)
    );
    let mut framing = Framing::new(HeadLimits {
        uri_bytes: 64,
        head_bytes: 4096,
    });
    assert_eq!(
        framing
            .feed(many.as_bytes())
            .map(|(_, r)| r.status.as_u16()),
        Some(431)
    );
}

#[test]
fn every_head_of_a_pipelined_stream_is_checked() {
    let good_fixed = &b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"[..];
    let good_chunked =
        &b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
            [..];
    let bad = &b"GET /b HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"[..];
    let stream = [good_fixed, good_chunked, bad].concat();
    let mut framing = Framing::new(LIMITS);
    assert!(
        framing
            .feed(&stream[..good_fixed.len() + good_chunked.len()])
            .is_none()
    );
    assert_eq!(framing.heads(), 2, "two requests passed");
    for step in [1, 5, 13, stream.len()] {
        let (at, refusal) = run(&stream, step).expect("the third request is refused");
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        if step == stream.len() {
            // Read at once: the refusal starts exactly at the bad head.
            assert_eq!(at, good_fixed.len() + good_chunked.len());
        } else {
            // Cut into reads: from the read that completed the bad head; never earlier.
            assert!(at >= good_fixed.len() + good_chunked.len(), "{at}");
        }
    }
    // A body that looks like a head is a body.
    let body = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    let carrier = format!(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    assert_eq!(check(&[carrier.as_bytes(), body].concat()), None);
}

#[test]
fn http2_and_upgrades_are_left_to_hyper() {
    let mut framing = Framing::new(LIMITS);
    assert!(framing.feed(H2_PREFACE).is_none());
    assert!(
        framing
            .feed(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            .is_none()
    );
    let mut framing = Framing::new(LIMITS);
    assert!(
        framing
            .feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
            .is_none()
    );
    assert!(framing.feed(b"\x81\x05hello").is_none());
}
