//! An in-process API server on loopback and the HTTP calls the benchmark makes to it.

use std::sync::Arc;
use std::time::Duration;

use apiserver::storage::Store;
use apiserver::{ApiServer, ServerConfig};
use bytes::Bytes;
use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::BenchError;

/// How long a graceful shutdown may take before the benchmark gives up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The real HTTP stack (axum, routing, negotiation, registry, watch cache) over a fresh store,
/// served on `127.0.0.1:<ephemeral>` inside this process: the benchmark measures the server, not
/// process start-up, and nothing is reachable from outside the machine.
pub struct InProcessApi {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl InProcessApi {
    pub async fn start(store: Arc<dyn Store>) -> Result<Self, BenchError> {
        let server = ApiServer::new(store, ServerConfig::default())
            .await
            .map_err(|e| BenchError::new(format!("starting the API server: {e}")))?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| BenchError::new(format!("binding 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::new(format!("listener address: {e}")))?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            base: format!("http://{addr}"),
            shutdown: Some(shutdown),
            task,
        })
    }

    /// Shuts the server down (open watches end) and waits for it.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(STOP_TIMEOUT, &mut self.task).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(BenchError::new(format!("API server failed: {e}"))),
            Ok(Err(e)) => Err(BenchError::new(format!("API server task: {e}"))),
            Err(_) => {
                self.task.abort();
                Err(BenchError::new(format!(
                    "API server did not stop within {STOP_TIMEOUT:?}"
                )))
            }
        }
    }
}

/// Sends `request` and returns the body if the status is `want`; anything else (including a
/// transport error) is an error naming `what`, with the server's answer.
pub async fn expect(
    request: reqwest::RequestBuilder,
    want: StatusCode,
    what: &str,
) -> Result<Bytes, BenchError> {
    let response = request
        .send()
        .await
        .map_err(|e| BenchError::new(format!("{what}: {e}")))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| BenchError::new(format!("{what}: reading the body: {e}")))?;
    if status != want {
        let text = String::from_utf8_lossy(&body[..body.len().min(500)]).into_owned();
        return Err(BenchError::new(format!(
            "{what}: got {status}, wanted {want}: {text}"
        )));
    }
    Ok(body)
}

/// The client for throughput phases: HTTP/1.1 keep-alive with a pool big enough that each of
/// the `concurrency` workers keeps its own connection.
pub fn pooled_client(concurrency: usize) -> Result<reqwest::Client, BenchError> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| BenchError::new(format!("building the HTTP client: {e}")))
}
