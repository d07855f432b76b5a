//! A scripted upstream: a `Transport` whose answer the test sets (a status, a refused
//! connection, a hang, a slow answer), counting the calls that reached it and how many were in
//! flight at once.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use flotilla_chassis::transport::{Transport, TransportError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::util::BoxCloneSyncService;

/// What the upstream does with the next calls.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Answers with this status at once.
    Status(u16),
    /// Refuses the connection.
    Refuse,
    /// Never answers.
    Hang,
    /// Answers 200 after this long.
    Slow(Duration),
}

pub struct Upstream {
    behaviour: Mutex<Behaviour>,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Upstream {
    pub fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour: Mutex::new(behaviour),
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        })
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("behaviour lock") = behaviour;
    }

    /// Calls that reached the upstream.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn transport(self: &Arc<Self>) -> Transport {
        let upstream = Arc::clone(self);
        BoxCloneSyncService::new(tower::service_fn(move |_: Request<Body>| {
            let upstream = Arc::clone(&upstream);
            async move { upstream.answer().await }
        }))
    }

    async fn answer(self: Arc<Self>) -> Result<Response<Body>, TransportError> {
        let behaviour = *self.behaviour.lock().expect("behaviour lock");
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let _leaving = Leaving(&self.in_flight);
        match behaviour {
            Behaviour::Status(status) => Ok(respond(status)),
            Behaviour::Refuse => Err(TransportError::Connect {
                service: "shipping".into(),
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            }),
            Behaviour::Hang => std::future::pending().await,
            Behaviour::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(respond(200))
            }
        }
    }
}

/// Counts a call out of the upstream however it ends (answered, or dropped by the caller).
struct Leaving<'a>(&'a AtomicUsize);

impl Drop for Leaving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn respond(status: u16) -> Response<Body> {
    let mut response = Response::new(Body::from("answer"));
    *response.status_mut() = StatusCode::from_u16(status).expect("a valid status");
    response
}

pub fn request() -> Request<Body> {
    Request::get("/quotes")
        .body(Body::empty())
        .expect("a request")
}
