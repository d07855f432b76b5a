//! Password hashing with Argon2id (RustCrypto's `argon2`, PHC strings, the crate's default
//! parameters: m=19 MiB, t=2, p=1, OWASP's first recommended setting).
//!
//! Hashing is deliberately slow and memory-hungry, so it runs on a few threads of its own (one
//! per core), never on an async worker: a burst of logins queues (and times out as a 503)
//! instead of taking all CPU and memory. Each thread keeps Argon2's 19 MiB of working memory
//! and reuses it for every hash, which is why this module calls
//! `hash_password_into_with_memory` and writes the PHC string itself rather than calling
//! `PasswordHasher`: that API allocates the memory per hash, glibc keeps the freed 19 MiB in the
//! arena of whichever thread hashed, and identity's RSS grew to 725 MB after 300 logins spread
//! over tokio's blocking pool. Unknown users are "verified" against a dummy hash made at start,
//! so a login for an address that has no account costs the same time as one with a wrong
//! password and timing does not reveal which addresses exist.

use argon2::password_hash::Error as HashError;
use argon2::password_hash::phc::{self, Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::cell::RefCell;
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
        // The memory this first hash used goes back to the system: a service nobody logs in to
        // keeps none (its first allocation was a mapping of its own, which a free unmaps).
        let dummy = run(&jobs, move || {
            let hash = hash_phc(&seed);
            MEMORY.with(|memory| *memory.borrow_mut() = Vec::new());
            hash
        })
        .await?
        .map(PasswordHash)
        .map_err(PasswordError::Argon2)?;
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
        let matched = run(&self.jobs, move || match verify_phc(&bytes, &phc) {
            Ok(matched) => Ok(matched),
            Err(HashError::PasswordInvalid) => Ok(false),
            Err(e) => Err(PasswordError::Argon2(e)),
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
        hash_phc(&password)
            .map(PasswordHash)
            .map_err(PasswordError::Argon2)
    })
    .await?
}

thread_local! {
    /// Argon2's working memory on this hashing thread, kept from one hash to the next.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The Argon2 output of `password` and `salt` under `argon` (whose parameters are `params`),
/// computed in this thread's kept memory.
fn compute(
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
) -> Result<Output, HashError> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer.get_mut(..len).ok_or(HashError::OutputSize)?;
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        let blocks = params.block_count();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })?;
    Ok(Output::new(out)?)
}

/// A PHC string for `password` with a fresh random salt and the default parameters, as
/// `PasswordHasher::hash_password` writes it.
fn hash_phc(password: &[u8]) -> Result<String, HashError> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt: [u8; Salt::RECOMMENDED_LENGTH] = rand::random();
    let output = compute(&argon, &params, password, &salt)?;
    let phc = phc::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(Salt::new(&salt)?),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, under the algorithm, version and
/// parameters it names (so hashes made with other parameters still verify).
fn verify_phc(password: &[u8], stored: &str) -> Result<bool, HashError> {
    let stored = phc::PasswordHash::new(stored)?;
    let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
        return Err(HashError::EncodingInvalid);
    };
    let algorithm = Algorithm::try_from(stored.algorithm.as_str())?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&stored)?;
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = compute(&argon, &params, password, salt.as_ref())?;
    // `Output`'s equality is constant-time.
    Ok(&computed == expected)
}

/// Runs `work` on the next free hashing thread and waits for its answer (in queue order).
async fn run<T: Send + 'static>(
    jobs: &mpsc::Sender<Job>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    let (reply, answer) = oneshot::channel();
    jobs.send(Box::new(move || {
        // A caller that gave up while the job queued (its request timed out in a burst of
        // logins) needs no answer: skip the 19 MiB hash rather than queue the next one behind it.
        if !reply.is_closed() {
            let _ = reply.send(work());
        }
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
    async fn hashes_are_those_of_the_crates_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let passwords = Passwords::new().await.expect("dummy hash");
        let right = Password::unchecked("correct horse".into());
        let wrong = Password::unchecked("correct horsf".into());
        // Ours, checked by argon2's verifier.
        let ours = passwords.hash(&right).await.expect("hash");
        assert!(ours.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let argon = Argon2::default();
        assert!(
            argon
                .verify_password(b"correct horse", ours.as_str())
                .is_ok()
        );
        assert!(
            argon
                .verify_password(b"correct horsf", ours.as_str())
                .is_err()
        );
        // argon2's, with other parameters too, checked by ours.
        let theirs = argon
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        let small = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, Some(24)).expect("params"),
        );
        let other = small
            .hash_password(b"correct horse")
            .expect("hash")
            .to_string();
        for stored in [theirs, other] {
            let stored = PasswordHash::from_stored(stored);
            assert!(
                passwords
                    .verify(&right, Some(&stored))
                    .await
                    .expect("verify")
            );
            assert!(
                !passwords
                    .verify(&wrong, Some(&stored))
                    .await
                    .expect("verify")
            );
        }
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
