//! What the HTTP servers (`--metrics`, `--http`) share: a router served from a thread of its own,
//! on a one-thread tokio runtime, so that a slow client never slows the pipeline.

use std::net::SocketAddr;

use axum::Router;

/// An address that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("serving {what} on {addr}: {source}")]
pub struct ServeError {
    /// What was to be served.
    pub what: &'static str,
    /// The address.
    pub addr: SocketAddr,
    /// Why not.
    pub source: std::io::Error,
}

/// Serves `app` on `addr` for the rest of the process; returns the address bound (port 0 picks a
/// free one). `what` names the server in messages.
pub fn serve(addr: SocketAddr, app: Router, what: &'static str) -> Result<SocketAddr, ServeError> {
    let err = |source| ServeError { what, addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(err)?;
    std::thread::Builder::new()
        .name(what.into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => return eprintln!("edge-reid: {what}: {e}"),
                };
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("edge-reid: {what}: {e}");
                }
            })
        })
        .map_err(err)?;
    Ok(bound)
}
