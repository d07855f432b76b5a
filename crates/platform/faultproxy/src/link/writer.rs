//! The writer of one direction: it takes the chunks the reader stamped, passes each through
//! the toxics acting on this connection, in order, and writes what comes out. It holds each
//! toxic's per-connection state (its toxicity draw, timers, byte counts) and brings it in line
//! whenever the proxy's toxic list changes.

use bytes::Bytes;
use std::collections::HashMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::WriteHalf;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::{Outcome, Read, Slot, Toxics};
use crate::toxic::{Stream, ToxicKind};

/// What one toxic remembers about one connection.
struct State {
    generation: u64,
    /// Whether the toxicity draw made it act on this connection.
    active: bool,
    /// When the timeout toxic's timer (re)started.
    since: Instant,
    /// Bytes passed (limit_data).
    bytes: u64,
    /// When reset_peer saw its first chunk.
    armed: Option<Instant>,
    /// The earliest time the next bytes may leave (bandwidth, slicer).
    next_free: Instant,
}

impl State {
    fn new(slot: &Slot, now: Instant) -> Self {
        Self {
            generation: slot.generation,
            active: draw(slot.toxic.toxicity),
            since: now,
            bytes: 0,
            armed: None,
            next_free: now,
        }
    }
}

/// Toxiproxy's draw: the toxic acts when a uniform number in [0, 1) is below its toxicity.
fn draw(toxicity: f64) -> bool {
    rand::random::<f64>() < toxicity
}

/// A piece of work for the writer: bytes that have passed `next` toxics, or a close.
enum Work {
    Data {
        data: Bytes,
        at: Instant,
        next: usize,
    },
    Close,
}

pub(super) struct Writer<'a> {
    stream: Stream,
    dest: WriteHalf<'a>,
    rx: mpsc::Receiver<Read>,
    toxics: watch::Receiver<Toxics>,
    /// The toxic list as last seen.
    current: Toxics,
    states: HashMap<u64, State>,
}

impl<'a> Writer<'a> {
    pub(super) fn new(
        stream: Stream,
        dest: WriteHalf<'a>,
        rx: mpsc::Receiver<Read>,
        toxics: watch::Receiver<Toxics>,
    ) -> Self {
        Self {
            stream,
            dest,
            rx,
            toxics,
            current: std::sync::Arc::new(Vec::new()),
            states: HashMap::new(),
        }
    }

    pub(super) async fn run(&mut self) -> Outcome {
        loop {
            if let Some(outcome) = self.sync() {
                return outcome;
            }
            let deadline = self.deadline();
            let (at, on_deadline) = deadline.unwrap_or((Instant::now(), Outcome::Close));
            tokio::select! {
                biased;
                changed = self.toxics.changed() => {
                    if changed.is_err() {
                        return Outcome::Close;
                    }
                }
                () = sleep_until(at), if deadline.is_some() => return on_deadline,
                read = self.rx.recv() => match read {
                    Some(Read::Data { data, at }) => {
                        if let Some(outcome) = self.deliver(data, at).await {
                            return outcome;
                        }
                    }
                    Some(Read::Eof) => {
                        if let Some(outcome) = self.hold_end().await {
                            return outcome;
                        }
                        self.slow_close().await;
                        let _ = self.dest.shutdown().await;
                        return Outcome::Eof;
                    }
                    Some(Read::Failed) | None => return Outcome::Close,
                }
            }
        }
    }

    /// Brings the per-connection states in line with the proxy's toxics: a new toxic (or a new
    /// generation of one) draws its toxicity and starts its timers now. A timeout toxic that
    /// held this connection and is gone closes it (Toxiproxy's cleanup does the same).
    fn sync(&mut self) -> Option<Outcome> {
        let list = self.toxics.borrow_and_update().clone();
        let now = Instant::now();
        let stream = self.stream;
        let mut closing = false;
        self.states.retain(|id, state| {
            let kept = list.iter().any(|s| s.id == *id && s.toxic.stream == stream);
            if !kept && state.active {
                let was_timeout = self
                    .current
                    .iter()
                    .any(|s| s.id == *id && matches!(s.toxic.kind, ToxicKind::Timeout { .. }));
                closing |= was_timeout;
            }
            kept
        });
        for slot in list.iter().filter(|s| s.toxic.stream == stream) {
            let state = self
                .states
                .entry(slot.id)
                .or_insert_with(|| State::new(slot, now));
            if state.generation != slot.generation {
                let bytes = state.bytes;
                *state = State::new(slot, now);
                state.bytes = bytes;
            }
        }
        self.current = list;
        closing.then_some(Outcome::Close)
    }

    /// The toxics acting on this connection, in order.
    fn active(&self) -> Vec<Slot> {
        self.current
            .iter()
            .filter(|s| s.toxic.stream == self.stream)
            .filter(|s| self.states.get(&s.id).is_some_and(|st| st.active))
            .cloned()
            .collect()
    }

    /// The next timer that ends the connection: a timeout's close or a reset_peer's reset.
    fn deadline(&self) -> Option<(Instant, Outcome)> {
        self.active()
            .iter()
            .filter_map(|slot| {
                let state = self.states.get(&slot.id)?;
                match slot.toxic.kind {
                    ToxicKind::Timeout { timeout } if timeout > 0 => {
                        Some((state.since + ms(timeout), Outcome::Close))
                    }
                    ToxicKind::ResetPeer { timeout } => {
                        Some((state.armed? + ms(timeout), Outcome::Reset))
                    }
                    _ => None,
                }
            })
            .min_by_key(|(at, _)| *at)
    }

    /// Whether toxic `id` still acts on this connection (it may have been removed meanwhile).
    fn still_active(&self, id: u64) -> bool {
        self.toxics.borrow().iter().any(|s| s.id == id)
            && self.states.get(&id).is_some_and(|st| st.active)
    }

    /// Waits until `at`, or less if toxic `id` is removed meanwhile (its delay no longer
    /// applies: Toxiproxy passes a held chunk on at once when a toxic is interrupted).
    async fn wait(&mut self, id: u64, at: Instant) {
        loop {
            if !self.still_active(id) || Instant::now() >= at {
                return;
            }
            tokio::select! {
                () = sleep_until(at) => return,
                changed = self.toxics.changed() => if changed.is_err() { return },
            }
        }
    }

    /// Passes one chunk through the active toxics and writes what comes out.
    async fn deliver(&mut self, data: Bytes, at: Instant) -> Option<Outcome> {
        let toxics = self.active();
        let mut work = std::collections::VecDeque::from([Work::Data { data, at, next: 0 }]);
        while let Some(item) = work.pop_front() {
            let (data, at, next) = match item {
                Work::Close => return Some(Outcome::Close),
                Work::Data { data, at, next } => (data, at, next),
            };
            let Some(slot) = toxics.get(next) else {
                if self.dest.write_all(&data).await.is_err() {
                    return Some(Outcome::Close);
                }
                continue;
            };
            if !self.still_active(slot.id) {
                work.push_front(Work::Data {
                    data,
                    at,
                    next: next + 1,
                });
                continue;
            }
            let id = slot.id;
            let pass = |data: Bytes, at: Instant| Work::Data {
                data,
                at,
                next: next + 1,
            };
            match slot.toxic.kind {
                ToxicKind::Latency { latency, jitter } => {
                    let delay = jittered(latency, jitter);
                    self.wait(id, at + delay).await;
                    work.push_front(pass(data, at + delay));
                }
                ToxicKind::Bandwidth { rate: 0 } => work.push_front(pass(data, at)),
                ToxicKind::Bandwidth { rate } => {
                    // Pieces of at most 100 ms worth, as Toxiproxy sends them, each leaving when
                    // the rate allows: a budget kept as "next free time" does not drift.
                    let piece = usize::try_from(rate.saturating_mul(100)).unwrap_or(usize::MAX);
                    let (head, rest) = split(data, piece);
                    if let Some(rest) = rest {
                        work.push_front(Work::Data {
                            data: rest,
                            at,
                            next,
                        });
                    }
                    let cost = Duration::from_secs_f64(head.len() as f64 / (rate as f64 * 1000.0));
                    let due = self.with_state(id, |st| {
                        st.next_free = st.next_free.max(Instant::now()) + cost;
                        st.next_free
                    });
                    self.wait(id, due).await;
                    work.push_front(pass(head, at));
                }
                ToxicKind::Slicer {
                    average_size,
                    size_variation,
                    delay,
                } => {
                    let due = self.with_state(id, |st| st.next_free);
                    self.wait(id, due).await;
                    let size = slice_size(average_size, size_variation);
                    let (head, rest) = split(data, size);
                    if let Some(rest) = rest {
                        self.with_state(id, |st| {
                            st.next_free = Instant::now() + Duration::from_micros(delay)
                        });
                        work.push_front(Work::Data {
                            data: rest,
                            at,
                            next,
                        });
                    }
                    work.push_front(pass(head, at));
                }
                ToxicKind::LimitData { bytes } => {
                    let sent = self.with_state(id, |st| st.bytes);
                    let room = usize::try_from(bytes.saturating_sub(sent)).unwrap_or(usize::MAX);
                    let (head, rest) = split(data, room);
                    self.with_state(id, |st| st.bytes += head.len() as u64);
                    if rest.is_some() || sent + head.len() as u64 >= bytes {
                        work.clear();
                        work.push_front(Work::Close);
                    }
                    if !head.is_empty() {
                        work.push_front(pass(head, at));
                    }
                }
                ToxicKind::Timeout { .. } => {
                    // Dropped; the timer starts again, as Toxiproxy's does with each chunk.
                    self.with_state(id, |st| st.since = Instant::now());
                }
                ToxicKind::ResetPeer { .. } => {
                    // Dropped; the first chunk arms the reset (see `deadline`).
                    self.with_state(id, |st| {
                        st.armed.get_or_insert_with(Instant::now);
                    });
                }
                ToxicKind::SlowClose { .. } => work.push_front(pass(data, at)),
            }
        }
        None
    }

    /// The source ended while a timeout or reset_peer toxic acts on this stream: the end is
    /// one more input those toxics swallow, not a way around them. Toxiproxy's timeout never
    /// reads its input, so a peer's FIN cannot pass it: the connection is a black hole until
    /// the timer closes it (or, with timeout 0, until the toxic is removed, which closes it
    /// too); its reset_peer is woken by any input, the end included, and resets after its
    /// timeout. Without this, a server that answers and closes would hand the client a clean
    /// close where the fault promised silence or a reset. `None` when no such toxic acts (any
    /// more): the end is passed on.
    async fn hold_end(&mut self) -> Option<Outcome> {
        loop {
            if let Some(outcome) = self.sync() {
                return Some(outcome);
            }
            let holding: Vec<Slot> = self
                .active()
                .into_iter()
                .filter(|s| {
                    matches!(
                        s.toxic.kind,
                        ToxicKind::Timeout { .. } | ToxicKind::ResetPeer { .. }
                    )
                })
                .collect();
            if holding.is_empty() {
                return None;
            }
            for slot in &holding {
                if let ToxicKind::ResetPeer { .. } = slot.toxic.kind {
                    self.with_state(slot.id, |st| {
                        st.armed.get_or_insert_with(Instant::now);
                    });
                }
            }
            let deadline = self.deadline();
            let at = deadline.map_or_else(Instant::now, |(at, _)| at);
            tokio::select! {
                changed = self.toxics.changed() => {
                    if changed.is_err() {
                        return Some(Outcome::Close);
                    }
                }
                () = sleep_until(at), if deadline.is_some() => {
                    return deadline.map(|(_, outcome)| outcome);
                }
            }
        }
    }

    /// The end of stream waits for every active slow_close (removing one ends its wait).
    async fn slow_close(&mut self) {
        for slot in self.active() {
            if let ToxicKind::SlowClose { delay } = slot.toxic.kind {
                self.wait(slot.id, Instant::now() + ms(delay)).await;
            }
        }
    }

    fn with_state<T>(&mut self, id: u64, f: impl FnOnce(&mut State) -> T) -> T {
        let now = Instant::now();
        let state = self.states.entry(id).or_insert_with(|| State {
            generation: 0,
            active: true,
            since: now,
            bytes: 0,
            armed: None,
            next_free: now,
        });
        f(state)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `latency` ± a uniform draw of up to `jitter` ms, never below zero (Toxiproxy's delay).
fn jittered(latency: u64, jitter: u64) -> Duration {
    if jitter == 0 {
        return ms(latency);
    }
    let offset = rand::random_range(0..=2 * jitter) as i64 - jitter as i64;
    ms((latency as i64 + offset).max(0) as u64)
}

/// A slice length: `average` ± a uniform draw of up to `variation`, at least 1.
fn slice_size(average: u64, variation: u64) -> usize {
    let offset = if variation == 0 {
        0
    } else {
        rand::random_range(0..=2 * variation) as i64 - variation as i64
    };
    usize::try_from((average as i64 + offset).max(1)).unwrap_or(usize::MAX)
}

/// The first `n` bytes and the rest, if any.
fn split(mut data: Bytes, n: usize) -> (Bytes, Option<Bytes>) {
    if data.len() <= n {
        return (data, None);
    }
    let rest = data.split_off(n);
    (data, Some(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        for _ in 0..1000 {
            let d = jittered(100, 20);
            assert!(d >= ms(80) && d <= ms(120), "{d:?}");
        }
        assert!(jittered(5, 50) <= ms(55));
    }

    #[test]
    fn slices_are_never_empty() {
        for _ in 0..1000 {
            let s = slice_size(3, 10);
            assert!((1..=13).contains(&s));
        }
    }
}
