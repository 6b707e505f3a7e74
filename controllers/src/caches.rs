//! Start-up of a controller's term: waiting for its informers' first lists.

/// Waits until the informers created so far have listed, retrying past slow starts.
pub async fn wait_for_caches(ctx: &crate::Context, controller: &str) {
    loop {
        match ctx
            .informers
            .wait_for_sync(crate::manager::SYNC_TIMEOUT)
            .await
        {
            Err(e @ runtime::Error::Timeout(_)) => {
                tracing::warn!(controller, error = %e, "caches not synced yet");
            }
            _ => return,
        }
    }
}
