//! The HTTP/1 byte stream of a connection read once more, ahead of hyper, to refuse what hyper
//! would let through or answer with an empty body (RELIABILITY.md B2, B4).
//!
//! hyper resolves the request-smuggling cases quietly: with both `Content-Length` and
//! `Transfer-Encoding` it drops the length and reads chunks; two equal `Content-Length` lines
//! become one; a second `Host` or `Authorization` is passed on. Each is a request two parsers
//! can read differently (a proxy in front, a service behind), so each is refused here with 400
//! before hyper sees the head, and the connection is closed. hyper cannot be asked to do it:
//! by the time a request reaches the service, the length it dropped is gone from the headers.
//! The head limits (request target, head size, header count) are checked here too, below
//! hyper's own, so that the refusals are problem+json (hyper's 400/414/431 have no body).
//!
//! [`Framing`] follows the stream request by request: a head (parsed with httparse, the parser
//! hyper uses, with hyper's defaults), then its body by the same framing rules (a length, or
//! chunks), then the next head, so that pipelined requests are checked too. When it cannot
//! follow (an upgrade, HTTP/2, bytes it does not understand in a chunked body) it stops
//! checking and leaves the connection to hyper, which refuses malformed framing on its own.

use axum::http::StatusCode;

/// What a connection's requests may be, at most (`[connections]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadLimits {
    /// Longest request target (bytes); 414 above it.
    pub(crate) uri_bytes: usize,
    /// Longest head, request line and headers (bytes); 431 above it.
    pub(crate) head_bytes: usize,
}

/// Most header lines a request may have (hyper's own default, so its array is never the one
/// to overflow first); 431 above it.
pub(crate) const MAX_HEADERS: usize = 100;

/// Why a request is refused before any handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) slug: &'static str,
    pub(crate) detail: String,
}

impl Refusal {
    fn bad(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            slug: "bad-request",
            detail: detail.into(),
        }
    }

    fn smuggling(detail: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            slug: "ambiguous-request",
            detail: detail.into(),
        }
    }
}

/// Where the stream is.
#[derive(Debug)]
enum State {
    /// Reading a head: its bytes so far.
    Head(Vec<u8>),
    /// In a body of known length: bytes still to come.
    Fixed(u64),
    /// In a chunked body.
    Chunked(Chunk),
    /// No longer followed (HTTP/2, an upgrade, a body this reader does not understand).
    Blind,
}

/// Where a chunked body is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Reading the size's hex digits.
    Size {
        size: u64,
        digits: u32,
    },
    /// After the size: whitespace or an extension, up to the line's end.
    SizeRest {
        size: u64,
    },
    /// The size line's LF.
    SizeLf {
        size: u64,
    },
    /// Data still to come.
    Data(u64),
    /// The CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// After the last chunk: the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// A trailer line's LF.
    TrailerLf,
    /// The final LF.
    EndLf,
}

/// Follows one connection's HTTP/1 requests.
#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
    limits: HeadLimits,
    /// Still at the connection's first bytes (where an HTTP/2 preface may come).
    first: bool,
    /// Heads passed so far.
    heads: u64,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

impl Framing {
    /// A connection at its start.
    pub(crate) fn new(limits: HeadLimits) -> Self {
        Self {
            state: State::Head(Vec::new()),
            limits,
            first: true,
            heads: 0,
        }
    }

    /// How many request heads have passed (and so will reach hyper).
    pub(crate) fn heads(&self) -> u64 {
        self.heads
    }

    /// A connection that is not followed (HTTP/2 negotiated by ALPN).
    pub(crate) fn blind(limits: HeadLimits) -> Self {
        Self {
            state: State::Blind,
            limits,
            first: false,
            heads: 0,
        }
    }

    /// Takes in the next `bytes` read from the connection. A refusal comes with where, in
    /// `bytes`, the refused request began (0 when it began in earlier bytes): nothing from there
    /// on may reach hyper.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Option<(usize, Refusal)> {
        let mut at = 0;
        while !bytes.is_empty() {
            let used = match &mut self.state {
                State::Blind => return None,
                State::Fixed(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                    n as usize
                }
                State::Chunked(chunk) => {
                    let (used, next) = chunked(*chunk, bytes);
                    self.state = next;
                    used
                }
                State::Head(head) => {
                    let started_here = head.is_empty();
                    let start = at;
                    match self.head(bytes) {
                        Ok(used) => used,
                        Err(refusal) => {
                            return Some((if started_here { start } else { 0 }, refusal));
                        }
                    }
                }
            };
            bytes = &bytes[used..];
            at += used;
        }
        None
    }

    /// Adds `bytes` to the head being read; returns how many belonged to it.
    fn head(&mut self, bytes: &[u8]) -> Result<usize, Refusal> {
        let State::Head(head) = &mut self.state else {
            return Ok(0);
        };
        let before = head.len();
        // At most one byte past the limit is kept: enough to know the head is too large.
        let take = bytes
            .len()
            .min(self.limits.head_bytes + 1 - before.min(self.limits.head_bytes));
        head.extend_from_slice(&bytes[..take]);
        if self.first {
            let n = head.len().min(H2_PREFACE.len());
            if head[..n] == H2_PREFACE[..n] {
                if n == H2_PREFACE.len() {
                    self.state = State::Blind;
                }
                return Ok(bytes.len());
            }
            self.first = false;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        let status = request.parse(head);
        let len = match status {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => {
                if request.path.is_none() && !head.contains(&b'\n') {
                    // Still in the request line.
                    if head.len() > self.limits.uri_bytes + 32 {
                        return Err(uri_too_long(self.limits));
                    }
                } else if let Some(path) = request.path
                    && path.len() > self.limits.uri_bytes
                {
                    return Err(uri_too_long(self.limits));
                }
                if head.len() > self.limits.head_bytes {
                    return Err(head_too_large(self.limits));
                }
                return Ok(take);
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Refusal {
                    status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    slug: "header-fields-too-large",
                    detail: format!("a request may have at most {MAX_HEADERS} header fields"),
                });
            }
            Err(e) => return Err(parse_refusal(e)),
        };
        if len > self.limits.head_bytes {
            return Err(head_too_large(self.limits));
        }
        if request
            .path
            .is_some_and(|p| p.len() > self.limits.uri_bytes)
        {
            return Err(uri_too_long(self.limits));
        }
        let next = next_state(&request)?;
        self.state = next;
        self.heads += 1;
        // The bytes of `bytes` that completed the head; the rest is the body.
        Ok(len - before)
    }
}

fn uri_too_long(limits: HeadLimits) -> Refusal {
    Refusal {
        status: StatusCode::URI_TOO_LONG,
        slug: "uri-too-long",
        detail: format!(
            "the request target is longer than the {} bytes accepted",
            limits.uri_bytes
        ),
    }
}

fn head_too_large(limits: HeadLimits) -> Refusal {
    Refusal {
        status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        slug: "header-fields-too-large",
        detail: format!(
            "the request line and headers are larger than the {} bytes accepted",
            limits.head_bytes
        ),
    }
}

fn parse_refusal(e: httparse::Error) -> Refusal {
    Refusal::bad(match e {
        httparse::Error::HeaderName => "a header name has a character not allowed in it",
        httparse::Error::HeaderValue => {
            "a header value has a control character (CR, LF, NUL or another) in it"
        }
        httparse::Error::NewLine => "a line of the request head does not end in CRLF",
        httparse::Error::Version => "the request line does not end in HTTP/1.0 or HTTP/1.1",
        _ => "the request line is not `METHOD target HTTP/1.1`",
    })
}

/// Where the stream goes after a complete, acceptable head: its body's framing.
fn next_state(request: &httparse::Request<'_, '_>) -> Result<State, Refusal> {
    let mut lengths = 0;
    let mut length = None;
    let mut codings = 0;
    let mut chunked = false;
    let mut hosts = 0;
    let mut authorizations = 0;
    let mut upgrade = request
        .method
        .is_some_and(|m| m.eq_ignore_ascii_case("CONNECT"));
    for header in request.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = std::str::from_utf8(header.value)
                .ok()
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok());
            if length.is_none() {
                return Err(Refusal::bad("Content-Length is not a number of bytes"));
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            codings += 1;
            // hyper's rule: the last coding of the last line must be `chunked`.
            chunked = header
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"))
                .unwrap_or(false);
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorizations += 1;
        } else if name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if lengths > 0 && codings > 0 {
        return Err(Refusal::smuggling(
            "a request may not have both Content-Length and Transfer-Encoding",
        ));
    }
    if lengths > 1 {
        // Even equal values: some parsers take the first, some join them ("5, 5"); one line
        // leaves nothing to disagree on.
        return Err(Refusal::smuggling(
            "a request may have only one Content-Length",
        ));
    }
    if hosts > 1 {
        return Err(Refusal::smuggling("a request may have only one Host"));
    }
    if authorizations > 1 {
        return Err(Refusal::smuggling(
            "a request may have only one Authorization",
        ));
    }
    if codings > 0 {
        if request.version == Some(0) {
            return Err(Refusal::bad("HTTP/1.0 has no Transfer-Encoding"));
        }
        if !chunked {
            return Err(Refusal::bad(
                "the only Transfer-Encoding accepted ends in `chunked`",
            ));
        }
    }
    if upgrade {
        // The connection may become another protocol after this request.
        return Ok(State::Blind);
    }
    Ok(if codings > 0 {
        State::Chunked(Chunk::Size { size: 0, digits: 0 })
    } else {
        match length {
            Some(n) if n > 0 => State::Fixed(n),
            _ => State::Head(Vec::new()),
        }
    })
}

/// Follows a chunked body through `bytes`: how many it used, and the state after them.
fn chunked(mut chunk: Chunk, bytes: &[u8]) -> (usize, State) {
    let mut i = 0;
    while i < bytes.len() {
        if let Chunk::Data(left) = chunk {
            let n = left.min((bytes.len() - i) as u64);
            i += n as usize;
            chunk = if left == n {
                Chunk::DataCr
            } else {
                Chunk::Data(left - n)
            };
            continue;
        }
        let b = bytes[i];
        i += 1;
        chunk = match step(chunk, b) {
            Step::Next(next) => next,
            Step::Done => return (i, State::Head(Vec::new())),
            Step::Lost => return (bytes.len(), State::Blind),
        };
    }
    (i, State::Chunked(chunk))
}

/// What one byte of a chunked body's framing does.
enum Step {
    Next(Chunk),
    /// The body ended with this byte.
    Done,
    /// Not framing this reader follows (hyper will judge it).
    Lost,
}

fn step(chunk: Chunk, b: u8) -> Step {
    use Chunk::*;
    Step::Next(match (chunk, b) {
        (Size { size, digits }, b) if b.is_ascii_hexdigit() => {
            let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
            match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                Some(size) => Size {
                    size,
                    digits: digits + 1,
                },
                None => return Step::Lost,
            }
        }
        (Size { digits: 0, .. }, _) => return Step::Lost,
        (Size { size, .. } | SizeRest { size }, b'\r') => SizeLf { size },
        (Size { size, .. } | SizeRest { size }, b) if b != b'\n' => SizeRest { size },
        (SizeLf { size: 0 }, b'\n') => TrailerStart,
        (SizeLf { size }, b'\n') => Data(size),
        (DataCr, b'\r') => DataLf,
        (DataLf, b'\n') => Size { size: 0, digits: 0 },
        (TrailerStart, b'\r') => EndLf,
        (TrailerStart | TrailerLine, b'\n') => return Step::Lost,
        (TrailerLine, b'\r') => TrailerLf,
        (TrailerStart | TrailerLine, _) => TrailerLine,
        (TrailerLf, b'\n') => TrailerStart,
        (EndLf, b'\n') => return Step::Done,
        _ => return Step::Lost,
    })
}

#[cfg(test)]
mod tests;
