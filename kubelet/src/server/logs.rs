//! `GET /containerLogs/{namespace}/{pod}/{container}`.

use std::path::Path as FsPath;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{ApiError, KubeletApi};
use crate::cri::ContainerState;
use crate::logs::{self, LogOptions, OptionsError};

/// How often a follower waits for a log file the shim has not created yet.
const FILE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

pub(super) async fn container_logs(
    State(api): State<KubeletApi>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let span =
        tracing::info_span!("containerLogs", pod = %format!("{namespace}/{pod}"), %container);
    match open(&api, &namespace, &pod, &container, query.as_deref())
        .instrument(span.clone())
        .await
    {
        Ok(body) => ([("content-type", "text/plain; charset=utf-8")], body).into_response(),
        Err(e) => {
            span.in_scope(|| tracing::debug!(message = %e.message, "containerLogs refused"));
            e.into_response()
        }
    }
}

/// Checks the request and starts streaming; failures before the first byte are `Status`es.
async fn open(
    api: &KubeletApi,
    namespace: &str,
    pod: &str,
    container: &str,
    query: Option<&str>,
) -> Result<Body, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let opts = LogOptions::from_query(&pairs).map_err(|e| match e {
        OptionsError::Malformed(m) => ApiError::bad_request(m),
        OptionsError::Invalid(causes) => ApiError::invalid("PodLogOptions", pod, &causes),
    })?;
    let found = api.find(namespace, pod, container).await?;
    let previous_missing = || {
        ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{pod}\" not found"
        ))
    };
    let path = logs::file_to_read(&found.log_dir, found.attempt, opts.previous)
        .ok_or_else(previous_missing)?;
    if opts.previous && !path.exists() {
        return Err(previous_missing());
    }
    let runtime = api.runtime.clone();
    let id = found.container_id.clone();
    // The previous attempt has exited by definition; only the newest one is asked about.
    let follows_live = !opts.previous;
    let mut running = move || {
        follows_live
            && matches!(
                runtime.container_status(&id).map(|c| c.state),
                Ok(ContainerState::Running { .. } | ContainerState::Created)
            )
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let now = jiff::Timestamp::now();
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let mut sink = |chunk: Vec<u8>| {
            if chunk.is_empty() {
                !tx.is_closed()
            } else {
                tx.blocking_send(Bytes::from(chunk)).is_ok()
            }
        };
        if !wait_for_file(&path, opts.follow, &mut running, &mut sink) {
            return;
        }
        if let Err(e) = logs::stream_log(&path, &opts, now, &mut running, &mut sink) {
            tracing::warn!(error = %e, "reading container log failed");
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok(Body::from_stream(stream))
}

/// A container's log file appears when its shim starts; until then there is nothing to read
/// (an empty answer), or, when following, something to wait for while the container runs.
fn wait_for_file(
    path: &FsPath,
    follow: bool,
    running: &mut dyn FnMut() -> bool,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> bool {
    loop {
        if path.exists() {
            return true;
        }
        if !follow || !running() || !sink(Vec::new()) {
            return false;
        }
        std::thread::sleep(FILE_WAIT);
    }
}
