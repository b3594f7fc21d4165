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
//! Refusals, and the checks that need no state of the connection, are in
//! `refusal`. Logs name request types and outcomes, never tokens, keys or
//! envelope bytes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::Context;
use super::ratelimit::RateLimiter;
use super::store::{
    Authenticated, Enqueued, Page, Prekeys, RegisterOutcome, RotateOutcome, Store, StoreError,
    TokenHash, User, UserId,
};
use crate::wire::crypto::{PublicKey, random_bytes, sha256};
use crate::wire::protocol::{
    Base64Bytes, CLOCK_SLACK, ErrorCode, FETCH_PAGE, KeyRotation, LOGIN_NONCE_LEN, MAX_PAGE_BYTES,
    MAX_WAIT_MS, QueuedMessage, Request, Response, TOKEN_LEN, UserName,
};
use crate::wire::signing::{self, CertificateDigest};

mod refusal;

use refusal::{
    Refusal, answer, check_envelope, check_name, check_prekeys, mailbox_full, unknown_user,
};

/// `prekeys` once [`check_prekeys`] passed them, run on a blocking thread:
/// a full pool is 201 RSA signature checks, which would hold up every
/// connection served by this runtime thread meanwhile.
async fn verified(prekeys: Prekeys, owner: UserName, key: PublicKey) -> Result<Prekeys, Refusal> {
    tokio::task::spawn_blocking(move || check_prekeys(&prekeys, &owner, &key).map(|()| prekeys))
        .await
        .unwrap_or_else(|error| Err(Refusal::internal(&error)))
}

/// The response to a `send` handed to the store, ready once its write is
/// durable (or at once, if the `send` was refused before that).
pub type Answer<'a> = Pin<Box<dyn Future<Output = Response> + Send + 'a>>;

/// The account a connection acts for after `authenticate`.
struct Identity {
    user: User,
    /// The account's identity key, which every envelope it sends must be
    /// signed with.
    key: PublicKey,
    /// The session's token hash, for `logout`.
    token_hash: TokenHash,
    /// When the presented session expires.
    expires_at: u64,
    /// `SessionEnds::now` when the connection authenticated (or asked
    /// for its login challenge): a later ending of the account's sessions
    /// (a logout, a key rotation) ends its right to act until it
    /// authenticates again.
    since: u64,
}

/// A login challenge waiting for its answer: the account as it was when
/// the challenge was made, the nonce, and `SessionEnds::now` then.
struct Challenge {
    user: User,
    nonce: [u8; LOGIN_NONCE_LEN],
    since: u64,
}

/// Per-connection request state.
pub struct Handler<'a> {
    context: &'a Context,
    /// The peer's address, charged for rate-limited requests.
    peer: IpAddr,
    /// SHA-256 of the certificate this connection was accepted with,
    /// which login and registration statements must name.
    presented: CertificateDigest,
    identity: Option<Identity>,
    /// The account and nonce of the last `login`, until a `login_proof`
    /// answers it (once).
    challenge: Option<Challenge>,
    /// Ends a waiting `fetch` early when the server shuts down.
    shutdown: watch::Receiver<bool>,
}

impl<'a> Handler<'a> {
    /// A handler for a newly greeted connection from `peer`, accepted
    /// presenting the certificate whose digest is `presented`.
    pub fn new(
        context: &'a Context,
        peer: IpAddr,
        presented: CertificateDigest,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            context,
            peer,
            presented,
            identity: None,
            challenge: None,
            shutdown,
        }
    }

    /// Answer one request; refusals become error responses.
    pub async fn respond(&mut self, request: Request) -> Response {
        self.respond_until(request, std::future::pending()).await
    }

    /// [`Handler::respond`], a waiting `fetch` answered as soon as
    /// `arrival` completes (another request has arrived), with what it
    /// has then.
    pub async fn respond_until(
        &mut self,
        request: Request,
        arrival: impl Future<Output = ()>,
    ) -> Response {
        let started = Instant::now();
        let kind = request.kind();
        debug!(request = kind, "request");
        let result = match request {
            Request::Hello { .. } => Err(Refusal::new(
                ErrorCode::BadRequest,
                "hello was already exchanged on this connection",
            )),
            Request::Register {
                user,
                public_key,
                signed_prekey,
                one_time_prekeys,
                proof,
            } => {
                // A registration's pool is the client's whole pool (a retry
                // sends the same prekeys again).
                let prekeys = Prekeys {
                    signed: Some(signed_prekey),
                    one_time: one_time_prekeys,
                    replace_one_time: true,
                };
                self.register(user, public_key.0, prekeys, &proof.0).await
            }
            Request::Login { user } => self.login(user).await,
            Request::LoginProof { signature } => self.login_proof(&signature.0).await,
            Request::Authenticate { user, token } => self.authenticate(user, &token.0).await,
            Request::GetKey { user, claim } => self.get_key(user, claim).await,
            Request::PublishPrekeys {
                signed_prekey,
                one_time_prekeys,
                replace_one_time_prekeys,
            } => {
                let prekeys = Prekeys {
                    signed: signed_prekey,
                    one_time: one_time_prekeys,
                    replace_one_time: replace_one_time_prekeys,
                };
                self.publish_prekeys(prekeys).await
            }
            Request::RotateKey {
                rotation,
                signed_prekey,
                one_time_prekeys,
            } => {
                let prekeys = Prekeys {
                    signed: Some(signed_prekey),
                    one_time: one_time_prekeys,
                    replace_one_time: true,
                };
                self.rotate_key(rotation, prekeys).await
            }
            Request::Send {
                recipient,
                envelope,
            } => self.submit(recipient, envelope.0).await,
            Request::Fetch {
                after,
                limit,
                wait_ms,
            } => self.fetch(after, limit, wait_ms, arrival).await,
            Request::Ack { ids } => self.ack(ids).await,
            Request::Logout => self.logout(false).await,
            Request::LogoutAll => self.logout(true).await,
            Request::Unregister => self.unregister().await,
        };
        answer(&self.context.metrics, kind, started, result)
    }

    /// Check a `send` and hand it to the store at once, so that it joins
    /// the next group commit while the caller reads on. The returned future
    /// yields the response once the write is durable, or at once if a check
    /// refused the `send`; it borrows the shared context, not this handler.
    pub fn send(&self, recipient: String, envelope: Vec<u8>) -> Answer<'a> {
        let started = Instant::now();
        debug!(request = "send", "request");
        let outcome = self.submit(recipient, envelope);
        let metrics = &self.context.metrics;
        Box::pin(async move { answer(metrics, "send", started, outcome.await) })
    }

    /// Spend one of the peer's tokens for `what`, or refuse.
    fn charge(&self, limiter: &RateLimiter, what: &str) -> Result<(), Refusal> {
        limiter
            .check(self.peer, Instant::now())
            .map_err(|wait| Refusal::rate_limited(what, wait))
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
        let name = check_name(name)?;
        let user = self
            .with_store(move |store| store.find_user(name.as_str()))
            .await?;
        user.ok_or_else(unknown_user)
    }

    /// Whether the connection acts for an account (whose session may
    /// have expired since).
    pub fn is_authenticated(&self) -> bool {
        self.identity.is_some()
    }

    /// The authenticated account, or `auth_required`/`auth_failed`.
    fn identity(&self) -> Result<&User, Refusal> {
        self.session().map(|identity| &identity.user)
    }

    /// The authenticated session, or `auth_required`/`auth_failed`.
    fn session(&self) -> Result<&Identity, Refusal> {
        let identity = self.identity.as_ref().ok_or_else(|| {
            Refusal::new(
                ErrorCode::AuthRequired,
                "this request needs an authenticated connection",
            )
        })?;
        if identity.expires_at <= self.context.clock.now() {
            return Err(Refusal::new(
                ErrorCode::AuthFailed,
                "the session has expired",
            ));
        }
        if self.context.session_ends.ended_since(
            identity.user.id,
            &identity.token_hash,
            identity.since,
        ) {
            return Err(Refusal::new(
                ErrorCode::AuthFailed,
                "the session this connection acts with has ended (a logout or a key \
                 rotation)",
            ));
        }
        Ok(identity)
    }

    async fn register(
        &self,
        name: String,
        der: Vec<u8>,
        prekeys: Prekeys,
        proof: &[u8],
    ) -> Result<Response, Refusal> {
        let name = check_name(name)?;
        self.charge(&self.context.registrations, "register")?;
        let key = PublicKey::from_der(&der).map_err(|error| {
            Refusal::new(
                ErrorCode::BadRequest,
                format!("unusable public key: {error}"),
            )
        })?;
        let statement = signing::registration(&self.presented, &name, &der);
        if !key.verify(&statement, proof) {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the registration proof is not a signature by the given key for this server and name",
            ));
        }
        let prekeys = verified(prekeys, name.clone(), key.clone()).await?;
        let der = key.to_der();
        let max_per_key = self.context.limits.max_accounts_per_key;
        let outcome = self
            .with_store(move |store| store.register(&name, &der, &prekeys, max_per_key))
            .await?;
        match outcome {
            RegisterOutcome::Created(user) | RegisterOutcome::AlreadyRegisteredSameKey(user) => {
                info!(user = %user.name, "registered");
                Ok(Response::Registered {
                    user: user.name.into(),
                })
            }
            RegisterOutcome::KeyInUse => Err(Refusal::new(
                ErrorCode::KeyInUse,
                format!(
                    "this key is registered under {max_per_key} account(s) on this server \
                     already"
                ),
            )),
            RegisterOutcome::NameTaken => Err(Refusal::new(
                ErrorCode::NameTaken,
                "that name is registered already (letter case does not matter)",
            )),
        }
    }

    /// Answer a `login` with a fresh challenge for this connection.
    async fn login(&mut self, name: String) -> Result<Response, Refusal> {
        self.challenge = None;
        self.charge(&self.context.logins, "login")?;
        let since = self.context.session_ends.now();
        let user = self.known_user(name).await?;
        let nonce = random_bytes();
        self.challenge = Some(Challenge { user, nonce, since });
        Ok(Response::LoginChallenge {
            nonce: Base64Bytes(nonce.to_vec()),
        })
    }

    /// Check the answer to this connection's challenge; if it is the
    /// account's signature, start a session and act for the account.
    async fn login_proof(&mut self, signature: &[u8]) -> Result<Response, Refusal> {
        let Challenge { user, nonce, since } = self.challenge.take().ok_or_else(|| {
            Refusal::new(
                ErrorCode::BadRequest,
                "there is no login challenge to answer on this connection; send login first",
            )
        })?;
        self.identity = None;
        let key = PublicKey::from_der(&user.public_key).map_err(|e| Refusal::internal(&e))?;
        let statement = signing::login(&self.presented, &user.name, &nonce);
        if !key.verify(&statement, signature) {
            return Err(Refusal::new(
                ErrorCode::AuthFailed,
                "the login proof is not a signature by this account's key",
            ));
        }
        let token: zeroize::Zeroizing<[u8; TOKEN_LEN]> = zeroize::Zeroizing::new(random_bytes());
        let hash = sha256(token.as_ref());
        let now = self.context.clock.now();
        let expires_at = now.saturating_add(self.context.limits.session_ttl.as_secs());
        let (user_id, checked_key) = (user.id, user.public_key.clone());
        let created = self
            .with_store(move |store| {
                let Some(ended) =
                    store.create_session(user_id, &checked_key, &hash, expires_at, now)?
                else {
                    return Ok(None);
                };
                // The cap bounds rows, it revokes nothing: connections
                // authenticated with an evicted session act on as before.
                if ended > 0 {
                    debug!(ended, "ended the account's oldest sessions");
                }
                store.one_time_prekeys(user_id).map(Some)
            })
            .await?;
        // The key was replaced between the challenge and the proof.
        let Some(one_time_prekeys) = created else {
            return Err(Refusal::new(
                ErrorCode::AuthFailed,
                "the account's key was replaced during this login",
            ));
        };
        info!(user = %user.name, "logged in");
        let response = Response::LoggedIn {
            user: user.name.to_string(),
            token: Base64Bytes(token.to_vec()),
            expires_at,
            one_time_prekeys,
        };
        self.identity = Some(Identity {
            user,
            key,
            token_hash: hash,
            expires_at,
            since,
        });
        Ok(response)
    }

    async fn authenticate(&mut self, name: String, token: &[u8]) -> Result<Response, Refusal> {
        self.identity = None;
        let failed = || {
            Refusal::new(
                ErrorCode::AuthFailed,
                "the session token is unknown, expired or not this user's",
            )
        };
        // A name no account can have (one holding a NUL byte, which
        // PostgreSQL refuses in text) has no session either.
        let (Ok(name), TOKEN_LEN) = (UserName::try_from(name), token.len()) else {
            return Err(failed());
        };
        let hash = sha256(token);
        let now = self.context.clock.now();
        let since = self.context.session_ends.now();
        let found = Arc::clone(&self.context.store)
            .authenticate_for(name.into(), hash, now)
            .await?;
        let Some(Authenticated {
            user,
            session,
            one_time_prekeys,
        }) = found
        else {
            return Err(failed());
        };
        let key = PublicKey::from_der(&user.public_key).map_err(|e| Refusal::internal(&e))?;
        info!(user = %user.name, "authenticated");
        let response = Response::Authenticated {
            user: user.name.to_string(),
            expires_at: session.expires_at,
            one_time_prekeys,
        };
        self.identity = Some(Identity {
            user,
            key,
            token_hash: hash,
            expires_at: session.expires_at,
            since,
        });
        Ok(response)
    }

    /// The named account's keys; with `claim`, one of its one-time
    /// prekeys too, handed out to this request only.
    async fn get_key(&self, name: String, claim: bool) -> Result<Response, Refusal> {
        // Claims use up another account's pool: only an account may make
        // them, so that nobody can empty pools anonymously.
        if claim {
            self.session()?;
        }
        // Looking names up without an account is limited per source, so
        // that the accounts of a server cannot be listed quickly.
        if self.identity.is_none() {
            self.charge(&self.context.lookups, "key lookup")?;
        }
        let name = check_name(name)?;
        let bundle = Arc::clone(&self.context.store)
            .key_bundle_for(name.into(), claim)
            .await?
            .ok_or_else(unknown_user)?;
        Ok(Response::Key {
            user: bundle.user.name.into(),
            public_key: Base64Bytes(bundle.user.public_key),
            signed_prekey: bundle.signed_prekey,
            one_time_prekey: bundle.one_time_prekey,
            rotations: bundle.rotations,
        })
    }

    /// Replace the authenticated account's identity key: `rotation` must
    /// be signed by both keys, start from the account's key and be dated
    /// by this server's clock (within the clock slack), and `prekeys` must
    /// be signed by the new key. The connection acts with the new key
    /// afterwards.
    async fn rotate_key(
        &mut self,
        rotation: KeyRotation,
        prekeys: Prekeys,
    ) -> Result<Response, Refusal> {
        let identity = self.session()?;
        let name = identity.user.name.clone();
        let Some((_, new_key)) = rotation.verify(&name) else {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the key rotation is not signed by both keys, or a key is unusable",
            ));
        };
        // Pins and chains compare keys by their DER bytes.
        if new_key.to_der() != rotation.new_key.0 {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the new key is not in canonical DER (SubjectPublicKeyInfo)",
            ));
        }
        let now = self.context.clock.now();
        if rotation.rotated_at.abs_diff(now) > CLOCK_SLACK {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                "the key rotation is dated more than an hour from the server's clock",
            ));
        }
        let (user_id, keep) = (identity.user.id, identity.token_hash);
        let prekeys = verified(prekeys, name, new_key.clone()).await?;
        let new_der = rotation.new_key.0.clone();
        let outcome = self
            .with_store(move |store| store.rotate_key(user_id, &rotation, &prekeys, &keep))
            .await?;
        let one_time_prekeys = match outcome {
            RotateOutcome::Rotated(one_time_prekeys) => one_time_prekeys,
            RotateOutcome::NotFromCurrentKey => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    "the key rotation does not start from the account's current key",
                ));
            }
            RotateOutcome::EarlierThanLast => {
                return Err(Refusal::new(
                    ErrorCode::BadRequest,
                    "the key rotation is dated before the account's last one",
                ));
            }
        };
        let since = self.context.session_ends.ended_all(user_id);
        if let Some(identity) = self.identity.as_mut() {
            identity.key = new_key;
            identity.user.public_key = new_der;
            identity.since = since;
        }
        Ok(Response::KeyRotated { one_time_prekeys })
    }

    async fn publish_prekeys(&self, prekeys: Prekeys) -> Result<Response, Refusal> {
        let identity = self.session()?;
        let (owner, key) = (identity.user.name.clone(), identity.key.clone());
        let user_id = identity.user.id;
        let prekeys = verified(prekeys, owner, key).await?;
        let one_time_prekeys = self
            .with_store(move |store| store.publish_prekeys(user_id, &prekeys))
            .await?;
        Ok(Response::PrekeysPublished { one_time_prekeys })
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
        let queued = self
            .check_send(recipient, &envelope)
            .map(|(sender, recipient)| {
                Arc::clone(&context.store).enqueue_for(
                    recipient.into(),
                    sender,
                    envelope,
                    context.limits.mailbox,
                )
            });
        async move {
            let queued = queued?.await?.ok_or_else(unknown_user)?;
            match queued {
                (recipient, Enqueued::Queued(id)) => {
                    debug!(id, recipient = %recipient.name, bytes, "message queued");
                    context.metrics.message_stored();
                    context.mailboxes.notify(recipient.id);
                    Ok(Response::Sent { id })
                }
                (recipient, Enqueued::MailboxFull(usage)) => {
                    Err(mailbox_full(recipient.name.as_str(), usage, false))
                }
                (recipient, Enqueued::SenderShareFull(usage)) => {
                    Err(mailbox_full(recipient.name.as_str(), usage, true))
                }
            }
        }
    }

    /// The sender and the recipient of a `send` of `envelope` to
    /// `recipient`, if the connection may send it.
    fn check_send(
        &self,
        recipient: String,
        envelope: &[u8],
    ) -> Result<(UserId, UserName), Refusal> {
        let sender = self.session()?;
        let max = self.context.limits.max_message_bytes;
        if envelope.len() as u64 > max {
            return Err(Refusal::new(
                ErrorCode::TooLarge,
                format!(
                    "the message is {} bytes, more than the {max} this server accepts",
                    envelope.len()
                ),
            ));
        }
        let recipient = check_name(recipient)?;
        check_envelope(envelope, &sender.user.name, &sender.key, &recipient)?;
        let reserve = self.context.limits.min_free_disk;
        if let Some(free) = self.context.store.free_space()
            && free < reserve.saturating_add(envelope.len() as u64)
        {
            warn!(
                free,
                reserve, "refusing messages: the data volume is nearly full"
            );
            return Err(Refusal::new(
                ErrorCode::StorageFull,
                "the server is running out of disk space and takes no messages now",
            ));
        }
        Ok((sender.user.id, recipient))
    }

    /// A page of messages; with `wait_ms`, an empty queue is watched until
    /// a message is stored, the wait ends, another request arrives on the
    /// connection (`arrival`), or the server shuts down (and looked at
    /// again every [`Context::recheck`], if set).
    async fn fetch(
        &self,
        after: u64,
        limit: u32,
        wait_ms: u64,
        arrival: impl Future<Output = ()>,
    ) -> Result<Response, Refusal> {
        let user_id = self.identity()?.id;
        let page = Page {
            after,
            limit: limit.min(FETCH_PAGE),
            max_bytes: MAX_PAGE_BYTES,
        };
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(wait_ms.min(MAX_WAIT_MS));
        let mut shutdown = self.shutdown.clone();
        tokio::pin!(arrival);
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
                let recheck = async {
                    match self.context.recheck {
                        Some(every) => tokio::time::sleep(every).await,
                        None => std::future::pending().await,
                    }
                };
                let woken = match &stored {
                    Ok(messages) if messages.is_empty() => tokio::select! {
                        _ = &mut notified => true,
                        _ = recheck => true,
                        _ = tokio::time::sleep_until(deadline) => false,
                        _ = shutdown.changed() => false,
                        () = &mut arrival => false,
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

    /// End this connection's session, or with `all` every session of
    /// the account; other connections acting with an ended session stop.
    async fn logout(&mut self, all: bool) -> Result<Response, Refusal> {
        self.identity()?;
        let identity = self.identity.take().expect("checked above");
        let (hash, user_id) = (identity.token_hash, identity.user.id);
        self.with_store(move |store| match all {
            true => store.delete_sessions(user_id).map(|_| ()),
            false => store.delete_session(&hash).map(|_| ()),
        })
        .await?;
        let ends = &self.context.session_ends;
        match all {
            true => {
                ends.ended_all(user_id);
            }
            false => ends.ended_one(hash, identity.expires_at, self.context.clock.now()),
        }
        info!(user = %identity.user.name, all, "logged out");
        Ok(Response::LoggedOut)
    }

    /// Delete the authenticated account; every connection acting for it
    /// stops, as after `logout_all`.
    async fn unregister(&mut self) -> Result<Response, Refusal> {
        let user_id = self.identity()?.id;
        self.with_store(move |store| store.unregister(user_id))
            .await?;
        let identity = self.identity.take().expect("checked above");
        self.context.session_ends.ended_all(user_id);
        info!(user = %identity.user.name, "unregistered");
        Ok(Response::Unregistered {
            user: identity.user.name.to_string(),
        })
    }

    /// Delete acknowledged messages: at most a page's worth at once, so
    /// that no `ack` holds the writer long.
    async fn ack(&self, ids: Vec<u64>) -> Result<Response, Refusal> {
        let user_id = self.identity()?.id;
        if ids.len() > FETCH_PAGE as usize {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!("at most {FETCH_PAGE} ids per ack, a fetch page's worth"),
            ));
        }
        let count = self
            .with_store(move |store| store.ack(user_id, &ids))
            .await?;
        self.context.metrics.messages_delivered(count);
        Ok(Response::Acked { count })
    }
}
