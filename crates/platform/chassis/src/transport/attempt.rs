//! The attempt of a call that the retry layer (`crate::resilience::retry`) is handing to the
//! transport beneath it: which attempt it is and the instances the call's attempts went to. It
//! lives here, with the transports that read it (a balancer prefers an instance not tried yet;
//! the faulted transport carries it across an injected delay), so that the transport layer does
//! not depend on the resilience layer above it.

use std::sync::Arc;

/// The attempt of a call the retry layer may repeat that is being handed to the transport
/// beneath ([`Self::current`]): which attempt this is (0 for the first, 1 for the first retry)
/// and the instances the call's attempts went to. A balancer that can tell instances apart
/// adds the one it picks to [`Self::tried`] and prefers one not listed yet, so that a retry
/// goes elsewhere when it can.
#[derive(Debug, Clone)]
pub struct RetryAttempt {
    number: u32,
    tried: TriedInstances,
}

tokio::task_local! {
    /// The attempt being handed on, scoped around that hand-over only (see the module's doc).
    static ATTEMPT: RetryAttempt;
}

impl RetryAttempt {
    /// Attempt `number` (0 for the first) of a call whose attempts went to `tried`.
    pub(crate) fn new(number: u32, tried: TriedInstances) -> Self {
        Self { number, tried }
    }

    /// Which attempt of its call this is: 0 for the first, 1 for the first retry.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// The instances the call's attempts were sent to, shared by every attempt of the call.
    pub fn tried(&self) -> &TriedInstances {
        &self.tried
    }

    /// The attempt a retry layer above is handing on now, if any: read by a transport in its
    /// `Service::call` (its future runs outside the scope).
    pub fn current() -> Option<RetryAttempt> {
        ATTEMPT.try_with(RetryAttempt::clone).ok()
    }

    /// Runs `call` (a transport's `Service::call`) with `attempt` in scope: for a layer that
    /// hands a request on after its own `call` returned, with the attempt it read then.
    pub fn scope<R>(attempt: Option<RetryAttempt>, call: impl FnOnce() -> R) -> R {
        match attempt {
            Some(attempt) => ATTEMPT.sync_scope(attempt, call),
            None => call(),
        }
    }
}

/// The instances (base URLs) the attempts of one call were sent to, shared by every attempt of
/// the call (see [`RetryAttempt::tried`]).
#[derive(Debug, Clone, Default)]
pub struct TriedInstances(Arc<std::sync::Mutex<Tried>>);

/// The first instance kept inline: most calls make one attempt, and then the list costs no
/// allocation beyond its `Arc` (a small vector written here rather than a dependency for it).
#[derive(Debug, Default)]
struct Tried {
    first: Option<Arc<str>>,
    more: Vec<Arc<str>>,
}

impl TriedInstances {
    fn lock(&self) -> std::sync::MutexGuard<'_, Tried> {
        // A list of strings, pushed to in one statement: usable whatever happened elsewhere.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether no attempt of this call has been sent anywhere yet.
    pub fn is_empty(&self) -> bool {
        self.lock().first.is_none()
    }

    /// Whether an attempt of this call went to `instance` already.
    pub fn contains(&self, instance: &str) -> bool {
        let tried = self.lock();
        tried.first.as_deref() == Some(instance) || tried.more.iter().any(|i| &**i == instance)
    }

    /// Notes that an attempt goes to `instance`.
    pub fn push(&self, instance: &Arc<str>) {
        let mut tried = self.lock();
        if tried.first.is_none() {
            tried.first = Some(Arc::clone(instance));
        } else {
            tried.more.push(Arc::clone(instance));
        }
    }
}
