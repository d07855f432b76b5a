//! Password hashing with Argon2id (RustCrypto's `argon2`, PHC strings, the crate's default
//! parameters: m=19 MiB, t=2, p=1, OWASP's first recommended setting).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on a few threads of its own (one
//! per core), never on an async worker: a burst of logins queues (and times out as a 503)
//! instead of taking all CPU and memory. Dedicated threads rather than tokio's blocking pool
//! because each 19 MiB block is allocated on the thread that hashes: glibc serves it from that
//! thread's arena and keeps it there once freed, so hashes spread over a pool of up to 512
//! blocking threads left up to one block per arena behind (identity's RSS grew from 20 MB to
//! 380 MB after a few hundred logins); a fixed set of threads reuses the same few blocks.
//! Unknown users are "verified" against a dummy hash made at start, so a login for an address
//! that has no account costs the same time as one with a wrong password and timing does not
//! reveal which addresses exist.

use argon2::Argon2;
use argon2::password_hash::{Error as HashError, PasswordHasher, PasswordVerifier};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

use crate::domain::Password;

/// A PHC-format Argon2 hash, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`. `Debug` is redacted:
/// a hash is not a password, but it is what an offline guessing attack starts from.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// A hash read back from storage.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// Why hashing or verifying failed (never "wrong password": that is `Ok(false)`).
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Argon2 refused its input (a corrupt stored hash, for instance).
    #[error("argon2: {0}")]
    Argon2(HashError),
    /// The hashing threads could not be started.
    #[error("cannot start the password hashing threads: {0}")]
    Threads(std::io::Error),
    /// The hashing threads are gone (the service is shutting down, or a hash panicked).
    #[error("password hashing is shutting down")]
    Closed,
}

/// One hash or verification, run on a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on threads of their own. Cheap to clone; the threads end when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    dummy: PasswordHash,
    jobs: mpsc::Sender<Job>,
}

impl Passwords {
    /// Starts one hashing thread per core and prepares the dummy hash unknown users are checked
    /// against.
    pub async fn new() -> Result<Self, PasswordError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        // The lock is held only while waiting for the next job, not while hashing.
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .map_err(PasswordError::Threads)?;
        }
        let seed: [u8; 32] = rand::random();
        let dummy = hash_on(&jobs, seed.to_vec()).await?;
        Ok(Self { dummy, jobs })
    }

    /// Hashes `password` with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        hash_on(&self.jobs, password.as_bytes().to_vec()).await
    }

    /// True when `password` matches `hash`. With no hash (unknown user) it checks against the
    /// dummy hash, taking the same time, and answers false.
    pub async fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let phc = hash.unwrap_or(&self.dummy).0.clone();
        let bytes = password.as_bytes().to_vec();
        let matched = run(&self.jobs, move || {
            match Argon2::default().verify_password(&bytes, phc.as_str()) {
                Ok(()) => Ok(true),
                Err(HashError::PasswordInvalid) => Ok(false),
                Err(e) => Err(PasswordError::Argon2(e)),
            }
        })
        .await??;
        Ok(known && matched)
    }
}

/// Hashes `password` on a hashing thread.
async fn hash_on(
    jobs: &mpsc::Sender<Job>,
    password: Vec<u8>,
) -> Result<PasswordHash, PasswordError> {
    run(jobs, move || {
        Argon2::default()
            .hash_password(&password)
            .map(|h| PasswordHash(h.to_string()))
            .map_err(PasswordError::Argon2)
    })
    .await?
}

/// Runs `work` on the next free hashing thread and waits for its answer (in queue order).
async fn run<T: Send + 'static>(
    jobs: &mpsc::Sender<Job>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let (reply, answer) = oneshot::channel();
    jobs.send(Box::new(move || {
        // The caller may have given up (its request timed out); then nobody needs the answer.
        let _ = reply.send(work());
    }))
    .map_err(|_| PasswordError::Closed)?;
    answer.await.map_err(|_| PasswordError::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords::new().await.expect("dummy hash");
        let right = Password::unchecked("correct horse".into());
        let wrong = Password::unchecked("correct horsf".into());
        let hash = passwords.hash(&right).await.expect("hash");
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(passwords.verify(&right, Some(&hash)).await.expect("verify"));
        assert!(!passwords.verify(&wrong, Some(&hash)).await.expect("verify"));
    }

    #[tokio::test]
    async fn unknown_users_never_match() {
        let passwords = Passwords::new().await.expect("dummy hash");
        let any = Password::unchecked(String::new());
        assert!(!passwords.verify(&any, None).await.expect("verify"));
    }

    #[tokio::test]
    async fn a_corrupt_hash_is_an_error_not_a_mismatch() {
        let passwords = Passwords::new().await.expect("dummy hash");
        let corrupt = PasswordHash::from_stored("not a phc string".into());
        let any = Password::unchecked("whatever1".into());
        assert!(passwords.verify(&any, Some(&corrupt)).await.is_err());
    }
}
