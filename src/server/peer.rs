//! One client connection from accept to close: admission (TLS handshake,
//! `hello` and a free slot, bounded by the handshake timeout and by
//! eviction, see [`super::admission`]), then one response per request, in
//! request order, until the peer leaves, stalls, breaks the framing or the
//! server shuts down. A bad request gets an error response and the
//! connection stays usable.
//!
//! A waiting `fetch` is answered as soon as the next request starts to
//! arrive, with what it has then (possibly nothing).
//!
//! Pipelined `send`s are read ahead: each is handed to the store as soon as
//! it arrives, so that sends waiting for their commit share it with the
//! ones read after them, up to [`MAX_SENDS_IN_FLIGHT`] sends and
//! [`MAX_BYTES_IN_FLIGHT`] envelope bytes per connection. Any other request
//! is handled only once every `send` before it has been answered, so it
//! sees their effects exactly as if they had come one at a time.
//!
//! Logs name the peer, request types and outcomes, never tokens, keys or
//! envelope bytes.

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tracing::info;

use super::Context;
use super::admission::Pending;
use super::connection::{Connection, ConnectionError, Incoming};
use super::handler::{Answer, Handler};
use super::limits::{ANONYMOUS_MAX_FRAME, HELLO_MAX_FRAME};
use crate::wire::protocol::{ErrorCode, PROTOCOL_VERSION, Request, Response};
use crate::wire::signing::CertificateDigest;

/// How long the last words to a leaving peer (an error, close_notify) may
/// take.
const FAREWELL_TIMEOUT: Duration = Duration::from_secs(2);

/// Most `send`s of one connection handed to the store and not yet
/// answered; the next waits, and reading stops, until the oldest is
/// answered.
const MAX_SENDS_IN_FLIGHT: usize = 64;

/// Most envelope bytes in the `send`s of one connection handed to the
/// store and not yet answered; a `send` that would exceed it waits, and
/// reading stops, until enough older ones are answered. A `send` with none
/// before it always goes, so a single message of the largest size does.
const MAX_BYTES_IN_FLIGHT: usize = 16 * 1024 * 1024;

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
    let accepting = context.tls.now();
    let Some(stream) = gate.pass(accepting.acceptor.accept(socket)).await? else {
        return Ok(());
    };
    let mut connection =
        Connection::new(stream.map_err(ConnectionError::Handshake)?, HELLO_MAX_FRAME)
            .with_budget(Arc::clone(&context.frame_budget));
    let presented = accepting.certificate_digest;
    let result = converse(
        &mut connection,
        gate,
        context,
        peer,
        presented,
        &mut shutdown,
    )
    .await;
    if let Err(ConnectionError::Frame(_)) = &result {
        context.metrics.refused(ErrorCode::TooLarge);
    }
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
        let response = Response::error(
            ErrorCode::TooLarge,
            format!("{error}, so the connection is closed"),
        );
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
    presented: CertificateDigest,
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
    // Told rather than dropped, so that a client can say the server is
    // busy instead of reporting a broken connection.
    let busy = |why: &str| {
        context.metrics.refused(ErrorCode::Busy);
        Response::error(ErrorCode::Busy, format!("the server is busy: {why}"))
    };
    let Some(_share) = context.admission.share(peer.ip()) else {
        let why = "your address has as many connections open as it may";
        return send(connection, &busy(why), idle).await;
    };
    let _slot = match gate.pass(context.admission.slot()).await {
        Ok(Some(slot)) => slot,
        Ok(None) => return Ok(()),
        Err(ConnectionError::HandshakeTimeout) => {
            let why = "no connection slot came free in time";
            return send(connection, &busy(why), idle).await;
        }
        Err(other) => return Err(other),
    };
    drop(gate);
    send(connection, &greeting, idle).await?;
    connection.set_max_frame(ANONYMOUS_MAX_FRAME);
    // Until it logs in, a connection may idle only as long as a handshake.
    let anonymous_idle = idle.min(context.limits.handshake_timeout);
    Conversation {
        connection,
        handler: Handler::new(context, peer.ip(), presented, shutdown.clone()),
        in_flight: InFlight::default(),
        idle,
        anonymous_idle,
        max_frame: context.limits.max_frame(),
        idle_deadline: Instant::now() + anonymous_idle,
    }
    .run(shutdown)
    .await
}

/// The requests of a greeted connection and their responses.
struct Conversation<'c, 'a, S> {
    connection: &'c mut Connection<S>,
    handler: Handler<'a>,
    /// `send`s handed to the store and not yet answered.
    in_flight: InFlight<'a>,
    /// How long a request may take to arrive, and a response to be taken.
    idle: Duration,
    /// How long the next request may take to arrive while the connection
    /// acts for nobody.
    anonymous_idle: Duration,
    /// Largest frame read once the connection acts for an account.
    max_frame: usize,
    /// When to stop waiting for the next request if no `send` is in flight
    /// by then: the idle timeout after the last response was written.
    idle_deadline: Instant,
}

impl<'a, S: AsyncRead + AsyncWrite + Unpin> Conversation<'_, 'a, S> {
    /// Serve requests until the peer leaves, stalls or breaks the framing,
    /// or the server shuts down; then answer the `send`s in flight (they
    /// will be committed) before returning why the conversation ended.
    async fn run(mut self, shutdown: &mut watch::Receiver<bool>) -> Result<(), ConnectionError> {
        let ended = loop {
            tokio::select! {
                biased;
                // Shutdown wins over a request that is already waiting.
                _ = shutdown.changed() => break Ok(()),
                response = self.in_flight.oldest() => self.answered(response).await?,
                read = self.connection.read_request() => match read {
                    Ok(Some(incoming)) => self.start(incoming).await?,
                    ended => break ended.map(|_| ()),
                },
                () = sleep_until(self.idle_deadline), if self.in_flight.is_empty() => {
                    break Err(ConnectionError::Timeout);
                }
            }
        };
        self.answer_all().await?;
        ended
    }

    /// Take on a request that has arrived: a `send` goes to the store at
    /// once and is answered later; anything else is answered once every
    /// `send` before it has been.
    async fn start(&mut self, incoming: Incoming) -> Result<(), ConnectionError> {
        let incoming = match incoming {
            Ok(Request::Send {
                recipient,
                envelope,
            }) => {
                let bytes = envelope.0.len();
                while !self.in_flight.has_room(bytes) {
                    let response = self.in_flight.oldest().await;
                    self.answered(response).await?;
                }
                let answer = self.handler.send(recipient, envelope.0);
                // The frame's grant from the budget lasts as long as the
                // envelope is held, until the send is answered.
                let grant = self.connection.take_grant();
                self.in_flight.push(answer, bytes, grant);
                return Ok(());
            }
            other => other,
        };
        self.answer_all().await?;
        let response = match incoming {
            // A waiting fetch ends when the next request arrives, so that
            // one connection can wait for messages between other requests.
            Ok(request @ Request::Fetch { wait_ms: 1.., .. }) => {
                let arrival = self.connection.arrival();
                self.handler.respond_until(request, arrival).await
            }
            Ok(request) => self.handler.respond(request).await,
            Err(error) => {
                info!("malformed request");
                Response::error(ErrorCode::BadRequest, format!("malformed request: {error}"))
            }
        };
        // Only an account may send frames as large as a message.
        self.connection
            .set_max_frame(match self.handler.is_authenticated() {
                true => self.max_frame,
                false => ANONYMOUS_MAX_FRAME,
            });
        self.connection.queue_response(&response);
        self.flush().await
    }

    /// Answer every `send` in flight, oldest first.
    async fn answer_all(&mut self) -> Result<(), ConnectionError> {
        while !self.in_flight.is_empty() {
            let response = self.in_flight.oldest().await;
            self.answered(response).await?;
        }
        Ok(())
    }

    /// Write `response`, the oldest `send`'s, and with it the responses of
    /// the following `send`s that are ready as well; flush once.
    async fn answered(&mut self, response: Response) -> Result<(), ConnectionError> {
        self.connection.queue_response(&response);
        while let Some(response) = self.in_flight.ready().await {
            self.connection.queue_response(&response);
        }
        self.flush().await
    }

    /// Write the queued responses within the idle timeout, which then
    /// starts afresh for the next request.
    async fn flush(&mut self) -> Result<(), ConnectionError> {
        timeout(self.idle, self.connection.flush())
            .await
            .map_err(|_| ConnectionError::Timeout)??;
        let wait = match self.handler.is_authenticated() {
            true => self.idle,
            false => self.anonymous_idle,
        };
        self.idle_deadline = Instant::now() + wait;
        Ok(())
    }
}

/// The `send`s of a connection handed to the store and not yet answered,
/// oldest first, with their envelope sizes and their frames' grants from
/// the budget. Their writes make progress without being polled; only the
/// oldest is waited for.
#[derive(Default)]
struct InFlight<'a> {
    answers: VecDeque<(Answer<'a>, usize, Option<OwnedSemaphorePermit>)>,
    /// The envelope bytes of `answers`.
    bytes: usize,
}

impl<'a> InFlight<'a> {
    fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Whether a `send` of `bytes` envelope bytes may join now.
    fn has_room(&self, bytes: usize) -> bool {
        self.answers.is_empty()
            || (self.answers.len() < MAX_SENDS_IN_FLIGHT
                && self.bytes + bytes <= MAX_BYTES_IN_FLIGHT)
    }

    fn push(&mut self, answer: Answer<'a>, bytes: usize, grant: Option<OwnedSemaphorePermit>) {
        self.answers.push_back((answer, bytes, grant));
        self.bytes += bytes;
    }

    /// The oldest `send`'s response once it is ready, that `send` then
    /// removed; never, while none is in flight. Cancel-safe: a `send` is
    /// removed only together with its response.
    async fn oldest(&mut self) -> Response {
        let Some((answer, bytes, _)) = self.answers.front_mut() else {
            return std::future::pending().await;
        };
        let (response, bytes) = (answer.await, *bytes);
        self.answers.pop_front();
        self.bytes -= bytes;
        response
    }

    /// The oldest `send`'s response if it is ready now, as
    /// [`InFlight::oldest`].
    async fn ready(&mut self) -> Option<Response> {
        tokio::select! {
            biased;
            response = self.oldest() => Some(response),
            () = std::future::ready(()) => None,
        }
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
            format!("this server speaks protocol version {PROTOCOL_VERSION}, not {version}"),
        ),
        _ => Response::error(ErrorCode::BadRequest, "the first request must be hello"),
    }
}
