//! One client connection: TLS handshake, the `hello` exchange, then one
//! response per request until the peer leaves, stalls, breaks the framing
//! or the server shuts down. A bad request gets an error response and the
//! connection stays usable; storage runs on blocking threads.
//!
//! Logs name the peer, request types and outcomes, never tokens, keys or
//! envelope bytes.

use std::sync::Arc;

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{error, info};

use super::connection::{Connection, ConnectionError, Incoming};
use super::mailbox::Mailboxes;
use super::store::{Page, RegisterOutcome, Store, StoreError, TokenHash, User};
use super::{Limits, unix_now};
use crate::crypto::PublicKey;
use crate::envelope;
use crate::protocol::{
    Base64Bytes, ErrorCode, FETCH_PAGE, MAX_WAIT_MS, PROTOCOL_VERSION, QueuedMessage, Request,
    Response, canonical_name, registration_proof_message, validate_username,
};

/// A fetched page stops growing once its envelopes would exceed this many
/// bytes, keeping responses well below the client's frame limit.
const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Bytes of a session token.
const TOKEN_LEN: usize = 32;

/// What every connection shares.
pub struct Context {
    /// The accounts, sessions and queues.
    pub store: Arc<dyn Store>,
    /// Sizes and timeouts.
    pub limits: Limits,
    /// Performs the TLS handshake.
    pub acceptor: TlsAcceptor,
    /// Wakes readers waiting for new messages.
    pub mailboxes: Mailboxes,
}

/// Serve one accepted socket to the end, logging how it ended.
pub async fn handle(socket: TcpStream, context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    info!("connection opened");
    match serve(socket, &context, &mut shutdown).await {
        Ok(()) => info!("connection closed"),
        Err(error) => info!(%error, "connection closed"),
    }
}

async fn serve(
    socket: TcpStream,
    context: &Context,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let limits = &context.limits;
    let stream = tokio::select! {
        biased;
        _ = shutdown.changed() => return Ok(()),
        stream = timeout(limits.handshake_timeout, context.acceptor.accept(socket)) => {
            stream.map_err(|_| ConnectionError::HandshakeTimeout)?.map_err(ConnectionError::Handshake)?
        }
    };
    let mut connection = Connection::new(stream, limits.max_frame());
    let mut handler = Handler {
        context,
        identity: None,
        shutdown: shutdown.clone(),
    };
    let result = converse(&mut connection, &mut handler, shutdown).await;
    if let Err(ConnectionError::Frame(error)) = &result {
        let response = Response::error(ErrorCode::TooLarge, format!("{error}; closing"));
        let _ = timeout(limits.idle_timeout, connection.write_response(&response)).await;
    }
    // Bounded too: a peer that stopped reading must not stall shutdown.
    let _ = timeout(limits.idle_timeout, connection.close()).await;
    result
}

/// The `hello` exchange, then requests until the end.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    connection: &mut Connection<S>,
    handler: &mut Handler<'_>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    let idle = handler.context.limits.idle_timeout;
    let Some(first) = next_request(connection, shutdown, idle).await? else {
        return Ok(());
    };
    let greeting = greet(first, handler.context.limits.max_message_bytes);
    let greeted = matches!(greeting, Response::Hello { .. });
    send(connection, &greeting, idle).await?;
    if !greeted {
        return Ok(());
    }
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
    idle: std::time::Duration,
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
    idle: std::time::Duration,
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

/// A request refused with an error response.
#[derive(Debug)]
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The server is at fault; details go to the log, not the client.
    fn internal(what: &dyn std::fmt::Display) -> Self {
        error!(error = %what, "request failed inside the server");
        Self::new(
            ErrorCode::Internal,
            "the server failed internally and did nothing; try again later",
        )
    }
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        Self::internal(&error)
    }
}

/// The account a connection acts for after `authenticate`.
struct Identity {
    user: User,
    /// The session's token hash, for `logout`.
    token_hash: TokenHash,
    /// When the presented session expires.
    expires_at: u64,
}

/// Per-connection request state.
struct Handler<'a> {
    context: &'a Context,
    identity: Option<Identity>,
    /// Ends a waiting `fetch` early when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

impl Handler<'_> {
    /// Answer one request; refusals become error responses.
    async fn respond(&mut self, request: Request) -> Response {
        let kind = request_kind(&request);
        info!(request = kind, "request");
        let result = match request {
            Request::Hello { .. } => Err(Refusal::new(
                ErrorCode::BadRequest,
                "hello was already exchanged on this connection",
            )),
            Request::Register {
                user,
                public_key,
                proof,
            } => self.register(user, public_key.0, &proof.0).await,
            Request::Login { user } => self.login(user).await,
            Request::Authenticate { user, token } => self.authenticate(user, &token.0).await,
            Request::GetKey { user } => self.get_key(user).await,
            Request::Send {
                recipient,
                envelope,
            } => self.send(recipient, envelope.0).await,
            Request::Fetch {
                after,
                limit,
                wait_ms,
            } => self.fetch(after, limit, wait_ms).await,
            Request::Ack { ids } => self.ack(ids).await,
            Request::Logout => self.logout().await,
        };
        result.unwrap_or_else(|refusal| {
            info!(
                request = kind,
                code = refusal.code.as_str(),
                "request refused"
            );
            Response::error(refusal.code, refusal.message)
        })
    }

    /// Run a storage operation on a blocking thread.
    async fn with_store<T, F>(&self, operation: F) -> Result<T, Refusal>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.context.store);
        match tokio::task::spawn_blocking(move || operation(store.as_ref())).await {
            Ok(result) => result.map_err(Refusal::from),
            Err(join_error) => Err(Refusal::internal(&join_error)),
        }
    }

    /// The named account, or `unknown_user`.
    async fn known_user(&self, name: String) -> Result<User, Refusal> {
        check_name(&name)?;
        let user = self.with_store(move |store| store.find_user(&name)).await?;
        user.ok_or_else(|| Refusal::new(ErrorCode::UnknownUser, "no such user on this server"))
    }

    /// The authenticated account, or `auth_required`/`auth_failed`.
    fn identity(&self) -> Result<&User, Refusal> {
        let identity = self.identity.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::AuthRequired,
                "this request needs an authenticated connection; log in first",
            )
        })?;
        if identity.expires_at <= unix_now() {
            return Err(Refusal::new(
                ErrorCode::AuthFailed,
                "the session has expired; log in again",
            ));
        }
        Ok(&identity.user)
    }

    async fn register(
        &self,
        name: String,
        der: Vec<u8>,
        proof: &[u8],
    ) -> Result<Response, Refusal> {
        check_name(&name)?;
        let key = PublicKey::from_der(&der).map_err(|error| {
            Refusal::new(
                ErrorCode::BadRequest,
                format!("unusable public key: {error}"),
            )
        })?;
        if !key.verify(&registration_proof_message(&name, &der), proof) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the registration proof is not a signature by the given key",
            ));
        }
        let der = key.to_der();
        let outcome = self
            .with_store(move |store| store.register(&name, &der))
            .await?;
        match outcome {
            RegisterOutcome::Created(user) | RegisterOutcome::AlreadyRegisteredSameKey(user) => {
                info!(user = %user.name, "registered");
                Ok(Response::Registered { user: user.name })
            }
            RegisterOutcome::NameTaken => Err(Refusal::new(
                ErrorCode::NameTaken,
                "that name is registered already (letter case does not matter); choose another",
            )),
        }
    }

    async fn login(&self, name: String) -> Result<Response, Refusal> {
        let user = self.known_user(name).await?;
        let key = PublicKey::from_der(&user.public_key).map_err(|e| Refusal::internal(&e))?;
        let mut token = zeroize::Zeroizing::new([0u8; TOKEN_LEN]);
        OsRng.fill_bytes(token.as_mut());
        let wrapped = key
            .wrap(token.as_ref())
            .map_err(|e| Refusal::internal(&e))?;
        let hash = token_hash(token.as_ref());
        let now = unix_now();
        let expires_at = now.saturating_add(self.context.limits.session_ttl.as_secs());
        self.with_store(move |store| store.create_session(user.id, &hash, expires_at, now))
            .await?;
        Ok(Response::LoginChallenge {
            wrapped_token: Base64Bytes(wrapped),
            expires_at,
        })
    }

    async fn authenticate(&mut self, name: String, token: &[u8]) -> Result<Response, Refusal> {
        self.identity = None;
        let failed = || {
            Refusal::new(
                ErrorCode::AuthFailed,
                "the session token is unknown, expired or not this user's; log in again",
            )
        };
        if token.len() != TOKEN_LEN {
            return Err(failed());
        }
        let hash = token_hash(token);
        let now = unix_now();
        let (user, session) = self
            .with_store(move |store| Ok((store.find_user(&name)?, store.find_session(&hash, now)?)))
            .await?;
        let (Some(user), Some(session)) = (user, session) else {
            return Err(failed());
        };
        if session.user_id != user.id {
            return Err(failed());
        }
        info!(user = %user.name, "authenticated");
        let response = Response::Authenticated {
            user: user.name.clone(),
            expires_at: session.expires_at,
        };
        self.identity = Some(Identity {
            user,
            token_hash: hash,
            expires_at: session.expires_at,
        });
        Ok(response)
    }

    async fn get_key(&self, name: String) -> Result<Response, Refusal> {
        let user = self.known_user(name).await?;
        Ok(Response::Key {
            user: user.name,
            public_key: Base64Bytes(user.public_key),
        })
    }

    async fn send(&self, recipient: String, envelope: Vec<u8>) -> Result<Response, Refusal> {
        let sender = self.identity()?;
        let max = self.context.limits.max_message_bytes;
        if envelope.len() as u64 > max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!(
                    "the message is {} bytes; this server accepts at most {max}",
                    envelope.len()
                ),
            ));
        }
        let recipient = self.known_user(recipient).await?;
        check_addressing(&envelope, sender, &recipient)?;
        let (recipient_id, sender_id, bytes) = (recipient.id, sender.id, envelope.len());
        let id = self
            .with_store(move |store| store.enqueue(recipient_id, sender_id, &envelope))
            .await?;
        info!(id, recipient = %recipient.name, bytes, "message queued");
        self.context.mailboxes.notify(recipient_id);
        Ok(Response::Sent { id })
    }

    /// A page of messages; with `wait_ms`, an empty queue is watched until
    /// a message is stored, the wait ends, or the server shuts down.
    async fn fetch(&self, after: u64, limit: u32, wait_ms: u64) -> Result<Response, Refusal> {
        let user_id = self.identity()?.id;
        let page = Page {
            after,
            limit: limit.min(FETCH_PAGE),
            max_bytes: MAX_PAGE_BYTES,
        };
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(wait_ms.min(MAX_WAIT_MS));
        let mut shutdown = self.shutdown.clone();
        let stored = loop {
            let signal = self.context.mailboxes.subscribe(user_id);
            let (stored, woken) = {
                // Listen before looking, so a message stored in between
                // still wakes this reader.
                let notified = signal.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let stored = self
                    .with_store(move |store| store.fetch(user_id, page))
                    .await;
                let woken = match &stored {
                    Ok(messages) if messages.is_empty() => tokio::select! {
                        _ = &mut notified => true,
                        _ = tokio::time::sleep_until(deadline) => false,
                        _ = shutdown.changed() => false,
                    },
                    _ => false,
                };
                (stored, woken)
            };
            self.context.mailboxes.release(user_id, signal);
            if !woken {
                break stored?;
            }
        };
        let messages = stored
            .into_iter()
            .map(|message| QueuedMessage {
                id: message.id,
                sender: message.sender,
                envelope: Base64Bytes(message.envelope),
            })
            .collect();
        Ok(Response::Messages { messages })
    }

    async fn logout(&mut self) -> Result<Response, Refusal> {
        self.identity()?;
        let identity = self.identity.take().expect("checked above");
        let hash = identity.token_hash;
        self.with_store(move |store| store.delete_session(&hash))
            .await?;
        info!(user = %identity.user.name, "logged out");
        Ok(Response::LoggedOut)
    }

    async fn ack(&self, ids: Vec<u64>) -> Result<Response, Refusal> {
        let user_id = self.identity()?.id;
        let count = self
            .with_store(move |store| store.ack(user_id, &ids))
            .await?;
        Ok(Response::Acked { count })
    }
}

/// The envelope must parse and name the authenticated sender and the
/// requested recipient, so nobody can queue mail that claims another
/// sender or sits in the wrong queue.
fn check_addressing(envelope: &[u8], sender: &User, recipient: &User) -> Result<(), Refusal> {
    let bad = |message: String| Refusal::new(ErrorCode::BadRequest, message);
    let header = envelope::parse(envelope)
        .map_err(|error| bad(error.to_string()))?
        .header;
    if canonical_name(&header.sender) != canonical_name(&sender.name) {
        return Err(bad(format!(
            "the envelope names {} as its sender, but this connection acts for {}",
            header.sender, sender.name
        )));
    }
    if canonical_name(&header.recipient) != canonical_name(&recipient.name) {
        return Err(bad(format!(
            "the envelope is addressed to {}, not to {}",
            header.recipient, recipient.name
        )));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), Refusal> {
    validate_username(name).map_err(|error| Refusal::new(ErrorCode::InvalidName, error.to_string()))
}

fn token_hash(token: &[u8]) -> TokenHash {
    Sha256::digest(token).into()
}

/// The request's wire name, for logs that must not show its fields.
fn request_kind(request: &Request) -> &'static str {
    match request {
        Request::Hello { .. } => "hello",
        Request::Register { .. } => "register",
        Request::Login { .. } => "login",
        Request::Authenticate { .. } => "authenticate",
        Request::GetKey { .. } => "get_key",
        Request::Send { .. } => "send",
        Request::Fetch { .. } => "fetch",
        Request::Ack { .. } => "ack",
        Request::Logout => "logout",
    }
}
