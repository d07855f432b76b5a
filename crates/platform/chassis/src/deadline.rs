//! One deadline for a call to something outside the process (a peer's HTTP answer, a DNS lookup,
//! an etcd call, a broker connection): a call that does not end in time fails like the call
//! itself failing, with the caller's own error, so that a dead peer never hangs its caller.
//! Written once here instead of a `tokio::time::timeout` match at every such call.

use std::future::Future;
use std::time::Duration;

/// Runs `call` for at most `limit`. Its own error passes through unchanged; running out of time
/// is the error `late(limit)` makes.
pub async fn within<T, E>(
    limit: Duration,
    call: impl Future<Output = Result<T, E>>,
    late: impl FnOnce(Duration) -> E,
) -> Result<T, E> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(late(limit)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_ends_in_time_keeps_its_result_and_a_late_one_fails() {
        let quick = within(Duration::from_secs(1), async { Ok::<_, String>(7) }, |_| {
            "late".to_owned()
        });
        assert_eq!(quick.await, Ok(7));

        let failing = within(
            Duration::from_secs(1),
            async { Err::<u8, _>("refused".to_owned()) },
            |_| "late".to_owned(),
        );
        assert_eq!(failing.await, Err("refused".to_owned()));

        let slow = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<u8, String>(1)
        };
        let late = within(Duration::from_secs(1), slow, |limit| {
            format!("no answer in {limit:?}")
        });
        assert_eq!(late.await, Err("no answer in 1s".to_owned()));
    }
}
