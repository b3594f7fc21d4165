//! Why a request is refused: the [`Refusal`] every check returns, the
//! checks that need no state of the connection (names, envelopes at
//! `send`, prekeys), and the error response a refusal becomes.

use tracing::{error, info};

use crate::server::store::{StoreError, Usage};
use crate::wire::crypto::PublicKey;
use crate::wire::envelope;
use crate::wire::protocol::{ErrorCode, Response, SignedPrekey, UserName};

/// A request refused with an error response.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The error code the client gets.
    pub(super) code: ErrorCode,
    /// The sentence the client gets.
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The server is at fault; details go to the log, not the client.
    pub(super) fn internal(what: &dyn std::fmt::Display) -> Self {
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

/// The response to a `kind` request: its result, or its refusal as an
/// error response.
pub(super) fn answer(kind: &'static str, result: Result<Response, Refusal>) -> Response {
    result.unwrap_or_else(|refusal| {
        info!(
            request = kind,
            code = refusal.code.as_str(),
            "request refused"
        );
        Response::error(refusal.code, refusal.message)
    })
}

/// The envelope must parse, name the authenticated sender exactly as
/// registered and the requested recipient, and carry the sender's
/// signature, so nobody can queue mail that claims another sender, sits in
/// the wrong queue, or is junk that only takes mailbox space. (Recipients
/// check all of it again: this check protects the queues, not the trust.)
pub(super) fn check_envelope(
    envelope: &[u8],
    name: &UserName,
    key: &PublicKey,
    recipient: &UserName,
) -> Result<(), Refusal> {
    let bad = |message: String| Refusal::new(ErrorCode::BadRequest, message);
    let parsed = envelope::parse(envelope).map_err(|error| bad(error.to_string()))?;
    let header = &parsed.header;
    if header.sender != *name {
        return Err(bad(format!(
            "the envelope names {} as its sender, but this connection acts for {name}",
            header.sender
        )));
    }
    if !recipient.is(header.recipient.as_str()) {
        return Err(bad(format!(
            "the envelope is addressed to {}, not to {recipient}",
            header.recipient
        )));
    }
    if !parsed.is_signed_by(key) {
        return Err(bad(format!(
            "the envelope is not signed by {name}'s registered key"
        )));
    }
    Ok(())
}

/// A prekey must be signed by `owner`'s identity key.
pub(super) fn check_prekey(
    prekey: &SignedPrekey,
    owner: &UserName,
    key: &PublicKey,
) -> Result<(), Refusal> {
    match prekey.verify(owner, key) {
        Some(_) => Ok(()),
        None => Err(Refusal::new(
            ErrorCode::BadRequest,
            "the signed prekey is not a 32-byte X25519 key signed by the account's key",
        )),
    }
}

/// The refusal for a recipient whose queue is at its quota.
pub(super) fn mailbox_full(recipient: &str, usage: Usage) -> Refusal {
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

pub(super) fn unknown_user() -> Refusal {
    Refusal::new(ErrorCode::UnknownUser, "no such user on this server")
}

/// `name` as a [`UserName`], or `invalid_name` saying which rule it broke.
pub(super) fn check_name(name: String) -> Result<UserName, Refusal> {
    UserName::try_from(name)
        .map_err(|error| Refusal::new(ErrorCode::InvalidName, error.to_string()))
}
