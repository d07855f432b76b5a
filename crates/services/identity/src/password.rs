//! Password hashing with Argon2id (RustCrypto's `argon2`, PHC strings, the crate's default
//! parameters: m=19 MiB, t=2, p=1, OWASP's first recommended setting).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on tokio's blocking pool, never on
//! an async worker, and a semaphore caps how many hashes run at once: a burst of logins queues
//! (and times out as a 503) instead of taking all memory. Unknown users are "verified" against a
//! dummy hash made at start, so a login for an address that has no account costs the same time
//! as one with a wrong password and timing does not reveal which addresses exist.

use argon2::Argon2;
use argon2::password_hash::{Error as HashError, PasswordHasher, PasswordVerifier};
use std::sync::Arc;
use tokio::sync::Semaphore;

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
    /// The blocking task did not complete.
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The concurrency limit was closed (the service is shutting down).
    #[error("password hashing is shutting down")]
    Closed,
}

/// Hashes and verifies passwords off the async workers.
#[derive(Clone)]
pub struct Passwords {
    dummy: PasswordHash,
    permits: Arc<Semaphore>,
}

impl Passwords {
    /// Prepares the dummy hash unknown users are checked against.
    pub async fn new() -> Result<Self, PasswordError> {
        // At most one hash per core: more would only queue inside the blocking pool while
        // holding 19 MiB each.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let permits = Arc::new(Semaphore::new(cores));
        let seed: [u8; 32] = rand::random();
        let dummy = hash_blocking(&permits, seed.to_vec()).await?;
        Ok(Self { dummy, permits })
    }

    /// Hashes `password` with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        hash_blocking(&self.permits, password.as_bytes().to_vec()).await
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
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Closed)?;
        let matched = tokio::task::spawn_blocking(move || {
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

/// Hashes on the blocking pool, within the concurrency limit.
async fn hash_blocking(
    permits: &Semaphore,
    password: Vec<u8>,
) -> Result<PasswordHash, PasswordError> {
    let _permit = permits.acquire().await.map_err(|_| PasswordError::Closed)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(&password)
            .map(|h| PasswordHash(h.to_string()))
            .map_err(PasswordError::Argon2)
    })
    .await?
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
