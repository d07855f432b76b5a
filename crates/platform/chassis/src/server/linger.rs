//! Closing a connection so that the client reads its last answer (nginx's `lingering_close`).
//!
//! A server that answers before it has read the whole request (413 for a body over the limit,
//! 400 for a refused head) and then closes its socket with the client's bytes still unread
//! makes the kernel send a reset, and the reset destroys the answer waiting in the client's
//! receive buffer: a client that uploads its whole body before reading (Python's urllib, for
//! one) saw "connection reset" instead of the 413, every time. So, once hyper is done with a
//! connection, the accept loop shuts down its sending side (the client reads the answer, then
//! the end) and reads and discards what the client still sends, until the client closes, for
//! at most [`LINGER_TIME`] and [`LINGER_BYTES`], before it closes the socket.

use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::framing::Refusal;
use crate::problem::{PROBLEM_JSON, Problem};

/// Longest a closing connection is read from (nginx's `lingering_time` is 30 s; 2 s is plenty
/// for a client to finish a body of the accepted size on any link worth serving, and short
/// enough that lingering connections do not pile up).
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// Most bytes read and discarded from a closing connection: past this the client is sending far
/// more than any body we accept, and it gets the reset.
pub const LINGER_BYTES: usize = 8 * 1024 * 1024;

/// An HTTP/1.1 answer carrying `problem`, written on the socket as it is (no hyper below it),
/// closing the connection; `extra` is more header lines, each ending in CRLF.
pub(super) fn raw_answer(problem: &Problem, extra: &str) -> Vec<u8> {
    let body = serde_json::to_vec(problem).unwrap_or_default();
    let status = problem.status_code();
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n{extra}\
         connection: close\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// Writes `refusal` (when there is one), shuts the sending side down and reads until the client
/// closes, within the bounds above. Errors end it: the connection is closed either way.
pub(super) async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(
    mut io: IO,
    refusal: Option<Refusal>,
) {
    let closing = async {
        if let Some(refusal) = refusal {
            let problem = Problem::new(refusal.status, refusal.slug, refusal.detail);
            io.write_all(&raw_answer(&problem, "")).await?;
        }
        // Already shut down by hyper when it closed the connection itself; harmless twice.
        let _ = io.shutdown().await;
        let mut sink = [0u8; 8 * 1024];
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            match io.read(&mut sink).await? {
                0 => break,
                n => discarded += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(LINGER_TIME, closing).await;
}
