//! Serving HTTP/1.1 over TLS (rustls, ring provider) by hand, since `axum::serve` has no TLS:
//! the API server and the kubelet API both use it.
//!
//! HTTP/1.1 only (ALPN `http/1.1`): exec, attach and port-forward upgrade the connection
//! (WebSocket or SPDY), which HTTP/2 cannot carry, and clients then stay on HTTP/1.1.

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// The rustls server configuration for a PEM certificate chain (leaf first) and its key.
/// With `client_ca` (PEM), every client must present a certificate signed by it: how the
/// kubelet API admits only the API server.
pub fn server_config(
    chain_pem: &str,
    key_pem: &str,
    client_ca: Option<&[u8]>,
) -> Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("serving certificate is not valid PEM: {e}")))?;
    if chain.is_empty() {
        return Err(Error::Config(
            "serving certificate holds no certificate".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| Error::Config(format!("serving key is not a valid PEM key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert =
                    cert.map_err(|e| Error::Config(format!("client CA is not valid PEM: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| Error::Config(format!("unusable client CA: {e}")))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Config(format!("cannot verify clients: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| Error::Config(format!("unusable serving certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What happens to open connections at shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    /// Finish in-flight requests (idle keep-alive connections close) before returning, like
    /// `axum::serve(..).with_graceful_shutdown(..)`.
    Wait,
    /// Return at once; open connections end with their clients.
    Detach,
}

/// Serves `app` over TLS on `listener` until `shutdown` completes, then stops accepting and
/// drains or detaches the open connections.
pub async fn serve<S, B>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: S,
    shutdown: impl Future<Output = ()> + Send,
    drain: Drain,
) -> std::io::Result<()>
where
    S: tower::Service<hyper::Request<hyper::body::Incoming>, Response = hyper::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving once it passes.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let (acceptor, app, mut stopping) = (acceptor.clone(), app.clone(), stopping.clone());
        connections.spawn(async move {
            // A client that never finishes its handshake must not hold a task forever.
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let stop_requested = async move {
                let _ = stopping.wait_for(|s| *s).await;
            };
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stop_requested => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    match drain {
        Drain::Wait => while connections.join_next().await.is_some() {},
        Drain::Detach => connections.detach_all(),
    }
    Ok(())
}
