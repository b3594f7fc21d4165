//! One client connection from accept to close: admission (TLS handshake,
//! `hello` and a free slot, bounded by the handshake timeout and by
//! eviction, see [`super::admission`]), then one response per request until
//! the peer leaves, stalls, breaks the framing or the server shuts down. A
//! bad request gets an error response and the connection stays usable.
//!
//! Logs name the peer, request types and outcomes, never tokens, keys or
//! envelope bytes.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::info;

use super::Context;
use super::admission::Pending;
use super::connection::{Connection, ConnectionError, Incoming};
use super::handler::Handler;
use crate::protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response};

/// How long the last words to a leaving peer (an error, close_notify) may
/// take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Serve one accepted socket to the end, logging how it ended.
pub async fn handle(
    socket: TcpStream,
    peer: SocketAddr,
    pending: Pending,
    context: Arc<Context>,
    shutdown: watch::Receiver<bool>,
) {
    info!("connection opened");
    match serve(socket, peer, pending, &context, shutdown).await {
        Ok(()) => info!("connection closed"),
        Err(error) => info!(%error, "connection closed"),
    }
}

async fn serve(
    socket: TcpStream,
    peer: SocketAddr,
    pending: Pending,
    context: &Context,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let limits = &context.limits;
    let mut gate = Gate {
        pending,
        shutdown: shutdown.clone(),
        deadline: Instant::now() + limits.handshake_timeout,
    };
    let Some(stream) = gate.pass(context.acceptor.accept(socket)).await? else {
        return Ok(());
    };
    let mut connection = Connection::new(
        stream.map_err(ConnectionError::Handshake)?,
        limits.max_frame(),
    );
    let result = converse(&mut connection, gate, context, peer, &mut shutdown).await;
    // Bounded: a peer that stopped reading must not hold the socket, nor
    // stall shutdown.
    let _ = timeout(FAREWELL_TIMEOUT, farewell(connection, &result)).await;
    result
}

/// Tell a peer that broke the framing why, then close (TLS close_notify).
async fn farewell<S: AsyncRead + AsyncWrite + Unpin>(
    mut connection: Connection<S>,
    result: &Result<(), ConnectionError>,
) {
    if let Err(ConnectionError::Frame(error)) = result {
        let response = Response::error(ErrorCode::TooLarge, format!("{error}; closing"));
        let _ = connection.write_response(&response).await;
    }
    connection.close().await;
}

/// Admission's bounds: eviction by newer connections, shutdown, and one
/// deadline for the handshake, the `hello` and a free slot together.
struct Gate {
    pending: Pending,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
}

impl Gate {
    /// Run one admission step within the bounds; `None` on shutdown.
    async fn pass<T>(
        &mut self,
        step: impl Future<Output = T>,
    ) -> Result<Option<T>, ConnectionError> {
        tokio::select! {
            biased;
            _ = self.shutdown.changed() => Ok(None),
            () = self.pending.evicted() => Err(ConnectionError::Evicted),
            done = timeout_at(self.deadline, step) => {
                done.map(Some).map_err(|_| ConnectionError::HandshakeTimeout)
            }
        }
    }
}

/// The `hello` exchange, then requests until the end.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    mut gate: Gate,
    context: &Context,
    peer: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let idle = context.limits.idle_timeout;
    let Some(first) = gate.pass(connection.read_request()).await? else {
        return Ok(());
    };
    let Some(first) = first? else {
        return Ok(());
    };
    let greeting = greet(first, context.limits.max_message_bytes);
    if !matches!(greeting, Response::Hello { .. }) {
        return send(connection, &greeting, idle).await;
    }
    let Some(_slot) = gate.pass(context.admission.slot()).await? else {
        return Ok(());
    };
    drop(gate);
    send(connection, &greeting, idle).await?;
    let mut handler = Handler::new(context, peer.ip(), shutdown.clone());
    while let Some(incoming) = next_request(connection, shutdown, idle).await? {
        let response = match incoming {
            Ok(request) => handler.respond(request).await,
            Err(error) => {
                info!("malformed request");
                Response::error(ErrorCode::BadRequest, format!("malformed request: {error}"))
            }
        };
        send(connection, &response, idle).await?;
    }
    Ok(())
}

/// The next request, or `None` once the peer has left or the server is
/// shutting down. Shutdown wins over a request that is already waiting.
async fn next_request<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    shutdown: &mut watch::Receiver<bool>,
    idle: Duration,
) -> Result<Option<Incoming>, ConnectionError> {
    tokio::select! {
        biased;
        _ = shutdown.changed() => Ok(None),
        read = timeout(idle, connection.read_request()) => read.map_err(|_| ConnectionError::Timeout)?,
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    response: &Response,
    idle: Duration,
) -> Result<(), ConnectionError> {
    timeout(idle, connection.write_response(response))
        .await
        .map_err(|_| ConnectionError::Timeout)?
        .map_err(ConnectionError::from)
}

/// The answer to the first frame: `hello` back, or why not.
fn greet(first: Incoming, max_envelope: u64) -> Response {
    match first {
        Ok(Request::Hello { version }) if version == PROTOCOL_VERSION => Response::Hello {
            version: PROTOCOL_VERSION,
            max_envelope,
        },
        Ok(Request::Hello { version }) => Response::error(
            ErrorCode::UnsupportedVersion,
            format!(
                "this server speaks protocol version {PROTOCOL_VERSION}, not {version}; \
                 use a matching version of msgr"
            ),
        ),
        _ => Response::error(ErrorCode::BadRequest, "the first request must be hello"),
    }
}
