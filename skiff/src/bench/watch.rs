//! Watch fan-out: W watchers on one ConfigMap list, E spaced updates, and the delay of every
//! (watcher, event) delivery.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::BenchError;
use super::api::expect;
use super::payload::watched_config_map;
use super::stats::Latency;

const NAMESPACE_CMS: &str = "/api/v1/namespaces/default/configmaps";
const CM_NAME: &str = "bench-watch";

/// How long all watchers may take to connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after the last write acknowledgement events may still arrive before a missing one
/// counts as lost.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);

/// The shape of the fan-out.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct FanOut {
    pub watchers: usize,
    pub events: usize,
    /// Pause between writes.
    pub spacing_ms: u64,
}

/// What the watchers saw.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    #[serde(flatten)]
    pub shape: FanOut,
    /// watchers × events.
    pub expected: usize,
    pub delivered: usize,
    /// Watchers that missed at least one event.
    pub incomplete_watchers: usize,
    /// Time until every watch stream was established.
    pub connect_seconds: f64,
    /// Write acknowledged (PUT answered) → event read by the watcher; zero when the event beat
    /// the acknowledgement. This is the figure the target applies to.
    pub from_ack: Latency,
    /// Write sent → event read by the watcher: includes the write's own round trip and commit.
    pub from_send: Latency,
}

impl WatchReport {
    pub fn complete(&self) -> bool {
        self.delivered == self.expected
    }
}

/// Runs the fan-out against the API server at `base`, writing through `writer`.
pub async fn fan_out(
    base: &str,
    writer: &reqwest::Client,
    shape: FanOut,
) -> Result<WatchReport, BenchError> {
    let collection = format!("{base}{NAMESPACE_CMS}");
    let item = format!("{collection}/{CM_NAME}");
    let created = expect(
        writer
            .post(&collection)
            .json(&watched_config_map(CM_NAME, -1, None)),
        StatusCode::CREATED,
        "creating the watched ConfigMap",
    )
    .await?;
    let mut rv = resource_version(&created)?;

    // One reqwest client per watcher, so each watch has its own TCP connection as separate
    // informers in separate processes would, rather than sharing a pool.
    let url = format!("{collection}?watch=1&resourceVersion={rv}");
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let connect_start = Instant::now();
    let mut watchers = JoinSet::new();
    for _ in 0..shape.watchers {
        watchers.spawn(watcher(
            url.clone(),
            shape.events,
            ready_tx.clone(),
            stop_rx.clone(),
        ));
    }
    drop(ready_tx);
    let all_ready = async {
        for _ in 0..shape.watchers {
            match ready_rx.recv().await {
                Some(Ok(())) => {}
                Some(Err(e)) => return Err(e),
                None => return Err(BenchError::new("a watcher ended before connecting")),
            }
        }
        Ok(())
    };
    tokio::time::timeout(CONNECT_TIMEOUT, all_ready)
        .await
        .map_err(|_| {
            BenchError::new(format!(
                "{} watchers not connected within {CONNECT_TIMEOUT:?}",
                shape.watchers
            ))
        })??;
    let connect_seconds = connect_start.elapsed().as_secs_f64();

    let mut writes = Vec::with_capacity(shape.events);
    let mut ticker = tokio::time::interval(Duration::from_millis(shape.spacing_ms.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 0..shape.events {
        ticker.tick().await;
        let sent = Instant::now();
        let body = watched_config_map(CM_NAME, seq as i64, Some(&rv));
        let updated = expect(
            writer.put(&item).json(&body),
            StatusCode::OK,
            "updating the watched ConfigMap",
        )
        .await?;
        writes.push((sent, Instant::now()));
        rv = resource_version(&updated)?;
    }

    // Collect; after the grace period tell the stragglers to stop and count what is missing.
    let deadline = tokio::time::Instant::now() + DELIVERY_GRACE;
    let mut arrivals = Vec::with_capacity(shape.watchers);
    loop {
        let next = tokio::time::timeout_at(deadline, watchers.join_next()).await;
        match next {
            Ok(Some(joined)) => arrivals.push(joined.map_err(|e| BenchError::new(e.to_string()))?),
            Ok(None) => break,
            Err(_) => {
                let _ = stop_tx.send(true);
                while let Some(joined) = watchers.join_next().await {
                    arrivals.push(joined.map_err(|e| BenchError::new(e.to_string()))?);
                }
                break;
            }
        }
    }

    let mut from_ack = Vec::with_capacity(shape.watchers * shape.events);
    let mut from_send = Vec::with_capacity(shape.watchers * shape.events);
    let mut incomplete_watchers = 0;
    for seen in &arrivals {
        if seen.iter().any(Option::is_none) {
            incomplete_watchers += 1;
        }
        for (arrived, (sent, acked)) in seen.iter().zip(&writes) {
            if let Some(at) = arrived {
                from_ack.push(at.saturating_duration_since(*acked));
                from_send.push(at.saturating_duration_since(*sent));
            }
        }
    }
    Ok(WatchReport {
        shape,
        expected: shape.watchers * shape.events,
        delivered: from_ack.len(),
        incomplete_watchers,
        connect_seconds,
        from_ack: Latency::from_samples(&mut from_ack),
        from_send: Latency::from_samples(&mut from_send),
    })
}

/// One watcher: connects, reports readiness, then records when each event `seq` (0..events)
/// arrived, until it has them all or is told to stop.
async fn watcher(
    url: String,
    events: usize,
    ready: mpsc::UnboundedSender<Result<(), BenchError>>,
    mut stop: watch::Receiver<bool>,
) -> Vec<Option<Instant>> {
    let mut arrivals = vec![None; events];
    let connected = async {
        let client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BenchError::new(format!("watch client: {e}")))?;
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| BenchError::new(format!("opening a watch: {e}")))?;
        if response.status() != StatusCode::OK {
            return Err(BenchError::new(format!(
                "opening a watch: got {}",
                response.status()
            )));
        }
        Ok(response)
    };
    let response = match connected.await {
        Ok(r) => {
            let _ = ready.send(Ok(()));
            r
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return arrivals;
        }
    };
    let mut stream = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut received = 0;
    while received < events {
        let chunk = tokio::select! {
            chunk = stream.next() => chunk,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let Some(Ok(chunk)) = chunk else { break };
        let now = Instant::now();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            if let Some(slot) = event_seq(&line).and_then(|seq| arrivals.get_mut(seq))
                && slot.is_none()
            {
                *slot = Some(now);
                received += 1;
            }
        }
    }
    arrivals
}

/// The `seq` of a MODIFIED event for the watched ConfigMap, if `line` is one.
fn event_seq(line: &[u8]) -> Option<usize> {
    let event: Value = serde_json::from_slice(line).ok()?;
    if event["type"] != "MODIFIED" || event["object"]["metadata"]["name"] != CM_NAME {
        return None;
    }
    event["object"]["data"]["seq"].as_str()?.parse().ok()
}

fn resource_version(body: &[u8]) -> Result<String, BenchError> {
    let object: Value = serde_json::from_slice(body)
        .map_err(|e| BenchError::new(format!("ConfigMap answer is not JSON: {e}")))?;
    object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| BenchError::new("ConfigMap answer without resourceVersion"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_seq_of_modified_events_only() {
        let line = |ty: &str, name: &str, seq: &str| {
            serde_json::to_vec(&serde_json::json!({
                "type": ty,
                "object": {"metadata": {"name": name}, "data": {"seq": seq}},
            }))
            .unwrap()
        };
        assert_eq!(event_seq(&line("MODIFIED", CM_NAME, "7")), Some(7));
        assert_eq!(event_seq(&line("ADDED", CM_NAME, "7")), None);
        assert_eq!(event_seq(&line("MODIFIED", "other", "7")), None);
        assert_eq!(event_seq(&line("MODIFIED", CM_NAME, "-1")), None);
        assert_eq!(event_seq(b"not json"), None);
    }
}
