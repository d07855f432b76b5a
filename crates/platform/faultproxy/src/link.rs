//! One proxied connection: a client socket, the upstream socket dialled for it, and a pump per
//! direction that reads chunks (stamped with the time they were read, as Toxiproxy's are) and
//! passes each through that direction's toxics before writing it on.
//!
//! Toxiproxy chains one goroutine per toxic; here each direction is one reader and one writer
//! and the toxics are applied in order inside the writer, which watches the proxy's toxic list:
//! a toxic added or changed applies to the data that flows after the change, and a removed
//! toxic stops delaying the chunk it holds at once. Every timer is `tokio::time`.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::toxic::{Stream, Toxic};

mod writer;
use writer::Writer;

/// One toxic as the proxy holds it: `id` names it for the connections (a toxic removed and added
/// again under one name is a new toxic), `generation` counts its updates (each draws the
/// toxicity again, as Toxiproxy restarts a toxic on update).
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub id: u64,
    pub generation: u64,
    pub toxic: Toxic,
}

/// The toxics of a proxy, in the order they were added (the order they act in).
pub(crate) type Toxics = Arc<Vec<Slot>>;

/// How much one read takes at most; also Toxiproxy's chunk size.
const READ_SIZE: usize = 32 * 1024;
/// Chunks read ahead of the writer: the room latency needs to delay data without slowing it.
const READ_AHEAD: usize = 32;

/// How a direction (or the whole connection) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The source closed and the close was passed on.
    Eof,
    /// Close both sockets now.
    Close,
    /// Close both sockets with RST.
    Reset,
}

/// Proxies `client` to `upstream` until both directions end, a toxic closes the connection, or
/// `closed` is cancelled (the proxy was disabled, changed or deleted).
pub(crate) async fn serve(
    mut client: TcpStream,
    upstream: Arc<str>,
    toxics: watch::Receiver<Toxics>,
    closed: CancellationToken,
) {
    let dialled = tokio::select! {
        () = closed.cancelled() => return,
        dialled = TcpStream::connect(&*upstream) => dialled,
    };
    let mut server = match dialled {
        Ok(server) => server,
        Err(err) => {
            // The client sees its connection closed, as with Toxiproxy.
            tracing::debug!(%upstream, error = %err, "upstream refused");
            return;
        }
    };
    let _ = server.set_nodelay(true);
    let outcome = {
        let (client_read, client_write) = client.split();
        let (server_read, server_write) = server.split();
        let up = pump(
            Stream::Upstream,
            client_read,
            server_write,
            toxics.clone(),
            &closed,
        );
        let down = pump(
            Stream::Downstream,
            server_read,
            client_write,
            toxics,
            &closed,
        );
        both(up, down, &closed).await
    };
    if outcome == Outcome::Reset {
        for socket in [&client, &server] {
            // Closing with a zero linger discards what is unsent and sends RST.
            let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
        }
    }
}

/// Runs both directions: a close or reset from either ends the connection; after an end of
/// stream the other direction carries on (a half-closed connection).
async fn both(
    up: impl Future<Output = Outcome>,
    down: impl Future<Output = Outcome>,
    closed: &CancellationToken,
) -> Outcome {
    tokio::pin!(up, down);
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        let outcome = tokio::select! {
            () = closed.cancelled() => return Outcome::Close,
            o = &mut up, if !up_done => { up_done = true; o }
            o = &mut down, if !down_done => { down_done = true; o }
        };
        if outcome != Outcome::Eof {
            return outcome;
        }
    }
    Outcome::Eof
}

/// What the reader hands the writer.
enum Read {
    Data { data: Bytes, at: Instant },
    Eof,
    Failed,
}

/// One direction: a reader running ahead and the writer that applies the toxics.
async fn pump(
    stream: Stream,
    mut source: ReadHalf<'_>,
    dest: WriteHalf<'_>,
    toxics: watch::Receiver<Toxics>,
    closed: &CancellationToken,
) -> Outcome {
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    let reader = read(&mut source, tx);
    let mut writer = Writer::new(stream, dest, rx, toxics);
    let writing = writer.run();
    tokio::pin!(reader, writing);
    let mut reading = true;
    loop {
        tokio::select! {
            () = closed.cancelled() => return Outcome::Close,
            () = &mut reader, if reading => reading = false,
            outcome = &mut writing => return outcome,
        }
    }
}

async fn read(source: &mut ReadHalf<'_>, tx: mpsc::Sender<Read>) {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_SIZE);
        let read = match source.read_buf(&mut buf).await {
            Ok(0) => Read::Eof,
            Ok(_) => Read::Data {
                data: buf.split().freeze(),
                at: Instant::now(),
            },
            Err(_) => Read::Failed,
        };
        let last = !matches!(read, Read::Data { .. });
        if tx.send(read).await.is_err() || last {
            return;
        }
    }
}
