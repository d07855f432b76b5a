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
//!
//! Kept memory is released after [`IDLE_RELEASE`] without a hash (issue 10: `flotilla run` stayed
//! at 75 MB for good after one login, against 34 MB before). The buffers live in one shared pool
//! rather than in each thread, so whichever thread is waiting for work can empty the pool when
//! it has been idle long enough. Each buffer is reserved a little larger than glibc's largest
//! mmap threshold (32 MiB), so it is always a mapping of its own, which freeing returns to the
//! system (otherwise the first free raises the threshold and the next 19 MiB comes from an arena
//! that never shrinks); only the pages Argon2 touches, 19 MiB, become resident.

use argon2::password_hash::Error as HashError;
use argon2::password_hash::phc::{self, Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

use crate::domain::{Password, PasswordHash};

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

/// How long Argon2's working memory is kept after the last hash: long enough that a burst of
/// logins reuses it, short enough that an idle shop gives it back.
pub const IDLE_RELEASE: Duration = Duration::from_secs(30);

/// Blocks reserved per buffer: one more than glibc's `DEFAULT_MMAP_THRESHOLD_MAX` (32 MiB on
/// 64-bit), so every buffer is its own mapping and freeing it unmaps it (see the module docs).
const RESERVED_BLOCKS: usize = 32 * 1024 + 1;

/// Argon2's working memory, kept between hashes until the pool has been idle for `idle`.
struct MemoryPool {
    idle: Duration,
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Buffers not in use.
    free: Vec<Vec<Block>>,
    /// When a buffer was last handed back.
    last_used: Instant,
}

impl MemoryPool {
    fn new(idle: Duration) -> Self {
        Self {
            idle,
            state: Mutex::new(PoolState {
                free: Vec::new(),
                last_used: Instant::now(),
            }),
        }
    }

    /// The pool's state; a panic while it was held (it never hashes under the lock) left it
    /// consistent, so poisoning is ignored.
    fn state(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A buffer of at least `blocks` blocks: a kept one, or a new mapping.
    fn take(&self, blocks: usize) -> Vec<Block> {
        let mut memory = self.state().free.pop().unwrap_or_default();
        if memory.len() < blocks {
            memory.reserve_exact(blocks.max(RESERVED_BLOCKS) - memory.len());
            memory.resize(blocks, Block::default());
        }
        memory
    }

    /// Hands `memory` back for the next hash.
    fn put(&self, memory: Vec<Block>) {
        let mut state = self.state();
        state.free.push(memory);
        state.last_used = Instant::now();
    }

    /// Frees every kept buffer if no hash has finished for `idle`. Returns how long to wait
    /// before asking again: until the kept memory has been idle long enough, or one idle period
    /// when nothing is kept (a hash on another thread may put some back meanwhile; the next
    /// check then waits out the rest, so memory goes `idle` after its last use).
    fn release_if_idle(&self) -> Duration {
        let mut state = self.state();
        let idle_for = state.last_used.elapsed();
        if state.free.is_empty() || idle_for >= self.idle {
            state.free = Vec::new();
            return self.idle;
        }
        self.idle - idle_for
    }

    /// Buffers kept right now.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.state().free.len()
    }
}

/// Hashes and verifies passwords on threads of their own. Cheap to clone; the threads end when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Passwords {
    dummy: PasswordHash,
    jobs: mpsc::Sender<Job>,
    pool: Arc<MemoryPool>,
}

impl Passwords {
    /// Starts one hashing thread per core and prepares the dummy hash unknown users are checked
    /// against. Working memory is released after [`IDLE_RELEASE`] without a hash.
    pub async fn new() -> Result<Self, PasswordError> {
        Self::with_idle_release(IDLE_RELEASE).await
    }

    /// [`Passwords::new`] releasing working memory after `idle` without a hash.
    pub async fn with_idle_release(idle: Duration) -> Result<Self, PasswordError> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let pool = Arc::new(MemoryPool::new(idle));
        for n in 0..threads {
            let queue = queue.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || work(&queue, &pool))
                .map_err(PasswordError::Threads)?;
        }
        let seed: [u8; 32] = rand::random();
        let hashing = pool.clone();
        // The memory this first hash used goes back to the system at once: a service nobody
        // logs in to keeps none.
        let dummy = run(&jobs, move || {
            let hash = hash_phc(&hashing, &seed);
            hashing.state().free = Vec::new();
            hash
        })
        .await?
        .map(PasswordHash::from_phc)
        .map_err(PasswordError::Argon2)?;
        Ok(Self { dummy, jobs, pool })
    }

    /// Hashes `password` with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, PasswordError> {
        hash_on(&self.jobs, self.pool.clone(), password.as_bytes().to_vec()).await
    }

    /// True when `password` matches `hash`. With no hash (unknown user) it checks against the
    /// dummy hash, taking the same time, and answers false.
    pub async fn verify(
        &self,
        password: &Password,
        hash: Option<&PasswordHash>,
    ) -> Result<bool, PasswordError> {
        let known = hash.is_some();
        let phc = hash.unwrap_or(&self.dummy).as_str().to_owned();
        let bytes = password.as_bytes().to_vec();
        let pool = self.pool.clone();
        let matched = run(&self.jobs, move || match verify_phc(&pool, &bytes, &phc) {
            Ok(matched) => Ok(matched),
            Err(HashError::PasswordInvalid) => Ok(false),
            Err(e) => Err(PasswordError::Argon2(e)),
        })
        .await??;
        Ok(known && matched)
    }
}

/// A hashing thread: runs jobs in queue order; while waiting, frees the pool's memory once it
/// has been idle long enough.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, pool: &MemoryPool) {
    loop {
        // The lock is held only while waiting for the next job, not while hashing; the thread
        // holding it is the one that watches the pool's idle time.
        let job = {
            let Ok(queue) = queue.lock() else { return };
            loop {
                match queue.recv_timeout(pool.release_if_idle()) {
                    Ok(job) => break Some(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                }
            }
        };
        match job {
            Some(job) => job(),
            None => return,
        }
    }
}

/// Hashes `password` on a hashing thread.
async fn hash_on(
    jobs: &mpsc::Sender<Job>,
    pool: Arc<MemoryPool>,
    password: Vec<u8>,
) -> Result<PasswordHash, PasswordError> {
    run(jobs, move || {
        hash_phc(&pool, &password)
            .map(PasswordHash::from_phc)
            .map_err(PasswordError::Argon2)
    })
    .await?
}

/// The Argon2 output of `password` and `salt` under `argon` (whose parameters are `params`),
/// computed in a buffer of `pool`.
fn compute(
    pool: &MemoryPool,
    argon: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
) -> Result<Output, HashError> {
    let len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let out = buffer.get_mut(..len).ok_or(HashError::OutputSize)?;
    let blocks = params.block_count();
    let mut memory = pool.take(blocks);
    let hashed = argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks]);
    pool.put(memory);
    hashed?;
    Ok(Output::new(out)?)
}

/// A PHC string for `password` with a fresh random salt and the default parameters, as
/// `PasswordHasher::hash_password` writes it.
fn hash_phc(pool: &MemoryPool, password: &[u8]) -> Result<String, HashError> {
    let params = Params::default();
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt: [u8; Salt::RECOMMENDED_LENGTH] = rand::random();
    let output = compute(pool, &argon, &params, password, &salt)?;
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
fn verify_phc(pool: &MemoryPool, password: &[u8], stored: &str) -> Result<bool, HashError> {
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
    let computed = compute(pool, &argon, &params, password, salt.as_ref())?;
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
            let stored = PasswordHash::from_phc(stored);
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
    async fn working_memory_is_kept_for_a_burst_and_released_when_idle() {
        // The dummy hash's memory is released at once.
        let passwords = Passwords::with_idle_release(Duration::from_millis(200))
            .await
            .expect("dummy hash");
        assert_eq!(passwords.pool.kept(), 0);
        let password = Password::unchecked("correct horse".into());
        let hash = passwords.hash(&password).await.expect("hash");
        // Kept right after a hash, for the next one.
        assert_eq!(passwords.pool.kept(), 1);
        assert!(
            passwords
                .verify(&password, Some(&hash))
                .await
                .expect("verify")
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while passwords.pool.kept() > 0 {
            assert!(
                Instant::now() < deadline,
                "memory still kept after 10 s idle"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And taken again (a fresh mapping) by the next hash.
        assert!(
            passwords
                .verify(&password, Some(&hash))
                .await
                .expect("verify")
        );
        assert_eq!(passwords.pool.kept(), 1);
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
        let corrupt = PasswordHash::from_phc("not a phc string".into());
        let any = Password::unchecked("whatever1".into());
        assert!(passwords.verify(&any, Some(&corrupt)).await.is_err());
    }
}
