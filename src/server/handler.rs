//! Requests on a greeted connection: each gets one response, refusals
//! become error responses, and storage runs on blocking threads or the
//! store's writer. A `send` is answered in two steps, so that the
//! connection can read on while its write commits: [`Handler::send`]
//! checks it and hands it to the store at once, and the future it returns
//! yields the response once the write is durable. Every other request is
//! answered whole by [`Handler::respond`]. Unauthenticated requests that
//! cost a disk write (`login`, `register`) are rate-limited per source
//! address.
//!
//! Logs name request types and outcomes, never tokens, keys or envelope
//! bytes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{debug, error, info};

use super::Context;
use super::ratelimit::RateLimiter;
use super::store::{
    Enqueued, Page, RegisterOutcome, Store, StoreError, TokenHash, Usage, User, UserId,
};
use crate::crypto::PublicKey;
use crate::envelope;
use crate::protocol::unix_now;
use crate::protocol::{
    Base64Bytes, ErrorCode, FETCH_PAGE, MAX_PAGE_BYTES, MAX_WAIT_MS, QueuedMessage, Request,
    Response, canonical_name, registration_proof_message, validate_username,
};

/// Bytes of a session token.
const TOKEN_LEN: usize = 32;

/// The response to a `send` handed to the store, ready once its write is
/// durable (or at once, if the `send` was refused before that).
pub type Answer<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

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
pub struct Handler<'a> {
    context: &'a Context,
    /// The peer's address, charged for rate-limited requests.
    peer: IpAddr,
    identity: Option<Identity>,
    /// Ends a waiting `fetch` early when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

impl<'a> Handler<'a> {
    /// A handler for a newly greeted connection from `peer`.
    pub fn new(context: &'a Context, peer: IpAddr, shutdown: watch::Receiver<bool>) -> Self {
        Self {
            context,
            peer,
            identity: None,
            shutdown,
        }
    }

    /// Answer one request; refusals become error responses.
    pub async fn respond(&mut self, request: Request) -> Response {
        let kind = request_kind(&request);
        debug!(request = kind, "request");
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
            } => self.submit(recipient, envelope.0).await,
            Request::Fetch {
                after,
                limit,
                wait_ms,
            } => self.fetch(after, limit, wait_ms).await,
            Request::Ack { ids } => self.ack(ids).await,
            Request::Logout => self.logout().await,
        };
        answer(kind, result)
    }

    /// Check a `send` and hand it to the store at once, so that it joins
    /// the next group commit while the caller reads on. The returned future
    /// yields the response once the write is durable, or at once if a check
    /// refused the `send`; it borrows the shared context, not this handler.
    pub fn send(&self, recipient: String, envelope: Vec<u8>) -> Answer<'a> {
        debug!(request = "send", "request");
        let outcome = self.submit(recipient, envelope);
        Box::pin(async move { answer("send", outcome.await) })
    }

    /// Spend one of the peer's tokens for `what`, or refuse.
    fn charge(&self, limiter: &RateLimiter, what: &str) -> Result<(), Refusal> {
        limiter.check(self.peer, Instant::now()).map_err(|wait| {
            Refusal::new(
                ErrorCode::RateLimited,
                format!(
                    "too many {what} requests from your address; try again in {} seconds",
                    wait.as_secs().max(1)
                ),
            )
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
        self.charge(&self.context.registrations, "register")?;
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
        self.charge(&self.context.logins, "login")?;
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

    /// The synchronous part of a `send`: its checks, then the hand-off to
    /// the store. The future finishes it once the write is durable.
    fn submit(
        &self,
        recipient: String,
        envelope: Vec<u8>,
    ) -> impl Future<Output = Result<Response, Refusal>> + Send + use<'a> {
        let context = self.context;
        let bytes = envelope.len();
        let queued = self.check_send(&recipient, &envelope).map(|sender| {
            Arc::clone(&context.store).enqueue_for(
                recipient,
                sender,
                envelope,
                context.limits.mailbox,
            )
        });
        async move {
            let queued = queued?.await?.ok_or_else(|| {
                Refusal::new(ErrorCode::UnknownUser, "no such user on this server")
            })?;
            match queued {
                (recipient, Enqueued::Queued(id)) => {
                    debug!(id, recipient = %recipient.name, bytes, "message queued");
                    context.mailboxes.notify(recipient.id);
                    Ok(Response::Sent { id })
                }
                (recipient, Enqueued::MailboxFull(usage)) => {
                    Err(mailbox_full(&recipient.name, usage))
                }
            }
        }
    }

    /// The sender of a `send` of `envelope` to `recipient`, if the
    /// connection may send it.
    fn check_send(&self, recipient: &str, envelope: &[u8]) -> Result<UserId, Refusal> {
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
        check_name(recipient)?;
        check_addressing(envelope, &sender.name, recipient)?;
        Ok(sender.id)
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

/// The response to a `kind` request: its result, or its refusal as an
/// error response.
fn answer(kind: &'static str, result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(|refusal| {
        info!(
            request = kind,
            code = refusal.code.as_str(),
            "request refused"
        );
        Response::error(refusal.code, refusal.message)
    })
}

/// The envelope must parse and name the authenticated sender and the
/// requested recipient, so nobody can queue mail that claims another
/// sender or sits in the wrong queue.
fn check_addressing(envelope: &[u8], sender: &str, recipient: &str) -> Result<(), Refusal> {
    let bad = |message: String| Refusal::new(ErrorCode::BadRequest, message);
    let header = envelope::parse(envelope)
        .map_err(|error| bad(error.to_string()))?
        .header;
    if canonical_name(&header.sender) != canonical_name(sender) {
        return Err(bad(format!(
            "the envelope names {} as its sender, but this connection acts for {sender}",
            header.sender
        )));
    }
    if canonical_name(&header.recipient) != canonical_name(recipient) {
        return Err(bad(format!(
            "the envelope is addressed to {}, not to {recipient}",
            header.recipient
        )));
    }
    Ok(())
}

/// The refusal for a recipient whose queue is at its quota.
fn mailbox_full(recipient: &str, usage: Usage) -> Refusal {
    info!(
        recipient,
        queued = usage.messages,
        bytes = usage.bytes,
        "mailbox full"
    );
    Refusal::new(
        ErrorCode::MailboxFull,
        format!(
            "{recipient}'s mailbox on this server is full, so the message was not sent; \
             try again after {recipient} has read their messages"
        ),
    )
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
