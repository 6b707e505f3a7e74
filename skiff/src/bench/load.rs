//! The closed-loop load driver every throughput phase shares.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::BenchError;
use super::stats::{Throughput, process_cpu_time};

/// Runs `op(0..total)` from `concurrency` tasks, each starting its next operation as soon as
/// its previous one finished (closed loop: the offered load adapts to the server, so the rate
/// measured is the rate it sustains at that concurrency, not a queue building up). Fails on the
/// first failed operation, or if the whole phase exceeds `limit`, so a broken or stuck server
/// ends the run instead of hanging it.
pub async fn closed_loop<F, Fut>(
    what: &str,
    total: usize,
    concurrency: usize,
    limit: Duration,
    op: F,
) -> Result<Throughput, BenchError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BenchError>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = concurrency.clamp(1, total.max(1));
    let cpu_start = process_cpu_time();
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let op = Arc::clone(&op);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(total / workers + 1);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, BenchError>(latencies);
                }
                let t0 = Instant::now();
                op(i).await?;
                latencies.push(t0.elapsed());
            }
        });
    }
    let collect = async {
        let mut all = Vec::with_capacity(total);
        while let Some(joined) = tasks.join_next().await {
            let latencies = joined.map_err(|e| BenchError::new(format!("{what}: task: {e}")))??;
            all.extend(latencies);
        }
        Ok::<_, BenchError>(all)
    };
    let all = tokio::time::timeout(limit, collect)
        .await
        .map_err(|_| BenchError::new(format!("{what}: did not finish within {limit:?}")))??;
    let wall = start.elapsed();
    Ok(Throughput::new(
        all,
        wall,
        process_cpu_time().saturating_sub(cpu_start),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_every_index_once() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let t = closed_loop("t", 100, 7, Duration::from_secs(5), move |i| {
            let s = Arc::clone(&s);
            async move {
                s.lock().unwrap().push(i);
                Ok(())
            }
        })
        .await
        .unwrap();
        assert_eq!(t.ops, 100);
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn first_failure_fails_the_phase() {
        let r = closed_loop("t", 10, 2, Duration::from_secs(5), |i| async move {
            if i == 3 {
                Err(BenchError::new("boom"))
            } else {
                Ok(())
            }
        })
        .await;
        assert!(r.unwrap_err().to_string().contains("boom"));
    }
}
