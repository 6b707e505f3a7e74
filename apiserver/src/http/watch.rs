//! Streaming watch responses: one JSON event per line, chunked, from a cache subscription.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::filter::Filter;
use crate::printers;
use crate::resources::ResourceType;
use crate::watchcache::{CacheEvent, EventType, Polled, Subscription, WatchCache};

use super::negotiate::TableVersion;

/// How a watch stream is shaped.
pub struct WatchParams {
    pub table: Option<TableVersion>,
    pub include_object: String,
    pub bookmarks: bool,
    pub bookmark_interval: Duration,
    pub timeout: Duration,
    /// Flips to true when the server shuts down, so open watches end and shutdown completes.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The event type a selector watcher sees for a change, and whether it sees it at all: an object
/// moving into the selection is ADDED, moving out is DELETED.
pub fn visible_type(ev: &CacheEvent, filter: &Filter) -> Option<&'static str> {
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
    match (ev.event_type, before, now) {
        (EventType::Added, _, true) => Some("ADDED"),
        (EventType::Modified, true, true) => Some("MODIFIED"),
        (EventType::Modified, false, true) => Some("ADDED"),
        (EventType::Modified, true, false) => Some("DELETED"),
        (EventType::Deleted, b, n) if b || n => Some("DELETED"),
        _ => None,
    }
}

struct Encoder {
    rt: &'static ResourceType,
    params: WatchParams,
    sent_columns: bool,
}

impl Encoder {
    fn event(&mut self, event_type: &str, ev: &CacheEvent) -> Bytes {
        match self.params.table {
            None => {
                let obj = ev.object_json();
                let mut buf = BytesMut::with_capacity(obj.len() + 32);
                buf.put_slice(b"{\"type\":\"");
                buf.put_slice(event_type.as_bytes());
                buf.put_slice(b"\",\"object\":");
                buf.put_slice(obj);
                buf.put_slice(b"}\n");
                buf.freeze()
            }
            Some(TableVersion(v)) => {
                let mut table = printers::table(
                    self.rt.group,
                    self.rt.kind,
                    std::slice::from_ref(&*ev.object),
                    &ev.revision.to_string(),
                    !self.sent_columns,
                    &self.params.include_object,
                    jiff::Timestamp::now(),
                );
                table["apiVersion"] = json!(format!("meta.k8s.io/{v}"));
                self.sent_columns = true;
                line(&json!({"type": event_type, "object": table}))
            }
        }
    }

    fn bookmark(&self, revision: i64) -> Bytes {
        let object = match self.params.table {
            None => json!({
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version(),
                "metadata": {"resourceVersion": revision.to_string(), "creationTimestamp": null},
            }),
            Some(TableVersion(v)) => json!({
                "kind": "Table",
                "apiVersion": format!("meta.k8s.io/{v}"),
                "metadata": {"resourceVersion": revision.to_string()},
                "columnDefinitions": null,
                "rows": null,
            }),
        };
        line(&json!({"type": "BOOKMARK", "object": object}))
    }
}

fn line(v: &Value) -> Bytes {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// Builds the streaming response; the stream ends on timeout, when the client goes away, or when
/// the watcher falls too far behind (the client then resumes from its last revision).
pub fn respond(
    rt: &'static ResourceType,
    cache: Arc<WatchCache>,
    sub: Subscription,
    filter: Filter,
    params: WatchParams,
    on_close: impl FnOnce() + Send + 'static,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let content_type = if params.table.is_some() {
        "application/json;as=Table;g=meta.k8s.io;v=v1"
    } else {
        "application/json"
    };
    tokio::spawn(async move {
        pump(rt, cache, sub, filter, params, tx).await;
        on_close();
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("cache-control", "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

async fn pump(
    rt: &'static ResourceType,
    cache: Arc<WatchCache>,
    mut sub: Subscription,
    filter: Filter,
    params: WatchParams,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let deadline = tokio::time::Instant::now() + params.timeout;
    let bookmarks = params.bookmarks;
    let mut shutdown = params.shutdown.clone();
    let mut ticker = tokio::time::interval(params.bookmark_interval);
    ticker.tick().await;
    let mut enc = Encoder {
        rt,
        params,
        sent_columns: false,
    };
    let mut last_revision = 0i64;
    for ev in std::mem::take(&mut sub.initial) {
        last_revision = last_revision.max(ev.revision);
        if let Some(t) = visible_type(&ev, &filter)
            && tx.send(Ok(enc.event(t, &ev))).await.is_err()
        {
            return;
        }
    }
    loop {
        tokio::select! {
            received = sub.next() => match received {
                Some(ev) => {
                    last_revision = last_revision.max(ev.revision);
                    if let Some(t) = visible_type(&ev, &filter)
                        && tx.send(Ok(enc.event(t, &ev))).await.is_err() {
                            return;
                        }
                }
                None => return,
            },
            _ = ticker.tick(), if bookmarks => {
                // Read the cache revision first: once the feed is drained, every event up to it
                // has been seen, so the bookmark never skips one.
                let revision = if sub.is_cache_backed() { cache.revision() } else { 0 };
                loop {
                    match sub.try_next() {
                        Polled::Event(ev) => {
                            last_revision = last_revision.max(ev.revision);
                            if let Some(t) = visible_type(&ev, &filter)
                                && tx.send(Ok(enc.event(t, &ev))).await.is_err() {
                                    return;
                                }
                        }
                        Polled::Empty => break,
                        Polled::Ended => return,
                    }
                }
                last_revision = last_revision.max(revision);
                if tx.send(Ok(enc.bookmark(last_revision))).await.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep_until(deadline) => return,
            _ = tx.closed() => return,
            _ = async { let _ = shutdown.wait_for(|down| *down).await; } => return,
        }
    }
}
