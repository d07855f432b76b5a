//! The shared buckets: the GCRA step of `gcra.rs`, run inside Redis as one Lua script, so that
//! every gateway replica draws from the same bucket and no two can both take its last token
//! (a script runs atomically). Redis's own clock (`TIME`) is the only clock, so replicas whose
//! clocks disagree still agree on the buckets. A key lives only as long as its bucket is not
//! full again (`PEXPIRE`), so Redis holds nothing for clients that went quiet.
//!
//! The connection is made lazily and remade after a failure by redis-rs's `ConnectionManager`;
//! each call is bounded by a response timeout, so a Redis that hangs costs a request at most
//! that long before the limiter's failure mode (open or closed) decides.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

use super::gcra::{Rate, Verdict};

/// `KEYS[1]` the bucket; `ARGV` the interval (µs) and the burst. Returns `{1, 0}` when admitted,
/// `{0, µs until the next admission}` when refused: `gcra::step`, line for line.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

/// Buckets in one Redis, under `prefix`.
#[derive(Clone)]
pub struct RedisBuckets {
    connection: ConnectionManager,
    script: std::sync::Arc<redis::Script>,
    prefix: String,
}

impl RedisBuckets {
    /// Buckets on the Redis at `url` (`redis://host:port/db`), keys under `prefix`; each call
    /// gives up after `timeout`. Connects on first use.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection is redis-rs's; a request never waits for more than one try.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self {
            connection,
            script: std::sync::Arc::new(redis::Script::new(GCRA_LUA)),
            prefix: prefix.to_owned(),
        })
    }

    /// The verdict for one request on `key`'s bucket.
    pub async fn check(&self, key: &str, rate: Rate) -> redis::RedisResult<Verdict> {
        let mut connection = self.connection.clone();
        let (admitted, retry_after_us): (i64, i64) = self
            .script
            .key(format!("{}:{key}", self.prefix))
            .arg(rate.interval_us)
            .arg(rate.burst)
            .invoke_async(&mut connection)
            .await?;
        Ok(if admitted == 1 {
            Verdict::Admit
        } else {
            Verdict::Refuse {
                retry_after_us: u64::try_from(retry_after_us).unwrap_or(0),
            }
        })
    }
}
