//! The server: an accept loop over a listener it is given ([`run`]), one
//! task per connection (`handler`), the storage contract ([`store`]) and
//! its SQLite implementation ([`sqlite`]), and the TLS material ([`tls`]).
//!
//! Shutdown follows mini-redis: when the shutdown future completes the loop
//! stops accepting and flips a watch channel; each connection finishes the
//! request it is serving, then drops its receiver; [`run`] returns once all
//! receivers are gone, so the caller can close the store cleanly.

mod connection;
mod handler;
mod mailbox;
pub mod sqlite;
pub mod store;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, info, info_span, warn};

pub use store::Store;

use crate::cli::ServeArgs;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may sit between requests (or stall mid-frame).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Room in a frame beyond the base64 envelope: JSON keys, names, quoting.
const FRAME_SLACK: u64 = 64 * 1024;

/// Pause after a failed `accept` (such as running out of file
/// descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The server's limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest envelope accepted, in bytes.
    pub max_message_bytes: u64,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Deadline for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Deadline for each read of a request and write of a response.
    pub idle_timeout: Duration,
}

impl Limits {
    /// Largest frame payload read: a base64-encoded maximal envelope plus
    /// JSON overhead, never beyond what a 32-bit length can announce.
    pub fn max_frame(&self) -> usize {
        let base64 = self.max_message_bytes.saturating_mul(4) / 3;
        let max = base64.saturating_add(FRAME_SLACK).min(u64::from(u32::MAX));
        usize::try_from(max).unwrap_or(usize::MAX)
    }
}

impl From<&ServeArgs> for Limits {
    fn from(args: &ServeArgs) -> Self {
        Self {
            max_message_bytes: args.max_message_bytes,
            session_ttl: Duration::from_secs(args.session_ttl),
            max_connections: args.max_connections,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Serve connections from `listener` until `shutdown` completes, then let
/// open connections finish their current request and return.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    store: Arc<dyn Store>,
    limits: Limits,
    shutdown: impl Future,
) {
    let permits = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(permits));
    let context = Arc::new(handler::Context {
        store,
        limits,
        acceptor: TlsAcceptor::from(tls),
        mailboxes: mailbox::Mailboxes::default(),
    });
    let (notify_shutdown, _) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot before accepting, so excess clients queue in
        // the kernel's backlog instead of holding sockets here.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
        };
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        // Requests and responses are single small writes; do not let
        // Nagle's algorithm hold them back.
        if let Err(error) = socket.set_nodelay(true) {
            warn!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let connection = handler::handle(socket, Arc::clone(&context), notify_shutdown.subscribe());
        tokio::spawn(
            async move {
                connection.await;
                drop(permit);
            }
            .instrument(info_span!("connection", %peer)),
        );
    }
    drop(listener);
    info!(
        open = notify_shutdown.receiver_count(),
        "no longer accepting; waiting for open connections to finish"
    );
    notify_shutdown.send_replace(true);
    notify_shutdown.closed().await;
}
