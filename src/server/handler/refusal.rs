//! Why a request is refused: the [`Refusal`] every check returns, the
//! checks that need no state of the connection (names, envelopes at
//! `send`, prekeys), and the response a result becomes ([`answer`], which
//! counts it for the operator's metrics).

use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::server::metrics::Metrics;
use crate::server::store::Prekeys;
use crate::server::store::{StoreError, Usage};
use crate::wire::crypto::PublicKey;
use crate::wire::envelope;
use crate::wire::protocol::{ErrorCode, MAX_ONE_TIME_PREKEYS, MAX_RETRY_AFTER, Response, UserName};
use crate::wire::signing::PrekeyKind;

/// A request refused with an error response.
#[derive(Debug)]
pub(super) struct Refusal {
    /// The error code the client gets.
    pub(super) code: ErrorCode,
    /// The sentence the client gets: what failed. What to do about it
    /// is the client's to say, from the code.
    pub(super) message: String,
    /// Seconds to wait before the request can succeed (`rate_limited`).
    pub(super) retry_after: Option<u64>,
}

impl Refusal {
    pub(super) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Too many requests of this kind from the peer: `what` is refused
    /// for the next `wait` (at least a second, at most
    /// [`MAX_RETRY_AFTER`]).
    pub(super) fn rate_limited(what: &str, wait: Duration) -> Self {
        // Rounded up: after the wait said, the request succeeds.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after: Some(seconds.clamp(1, MAX_RETRY_AFTER)),
            ..Self::new(
                ErrorCode::RateLimited,
                format!("too many {what} requests from your address"),
            )
        }
    }

    /// The server is at fault; details go to the log, not the client.
    pub(super) fn internal(what: &dyn std::fmt::Display) -> Self {
        error!(error = %what, "request failed inside the server");
        Self::new(
            ErrorCode::Internal,
            "the server failed internally and did nothing",
        )
    }
}

/// Seconds a client is told to wait while the database cannot be reached.
const UNAVAILABLE_RETRY_AFTER: u64 = 2;

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Self {
        if !error.is_unavailable() {
            return Self::internal(&error);
        }
        warn!(%error, "request refused: the database cannot be reached");
        Self {
            retry_after: Some(UNAVAILABLE_RETRY_AFTER),
            ..Self::new(
                ErrorCode::Busy,
                "the server cannot reach its database now and did nothing",
            )
        }
    }
}

/// The response to a `kind` request read at `started`: its result, or its
/// refusal as an error response; counted in `metrics` either way.
pub(super) fn answer(
    metrics: &Metrics,
    kind: &'static str,
    started: Instant,
    result: Result<Response, Refusal>,
) -> Response {
    let refused = result.as_ref().err().map(|refusal| refusal.code);
    metrics.answered(kind, refused, started.elapsed());
    result.unwrap_or_else(|refusal| {
        info!(
            request = kind,
            code = refusal.code.as_str(),
            "request refused"
        );
        Response::Error {
            code: refusal.code,
            message: refusal.message,
            retry_after: refusal.retry_after,
        }
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

/// Every prekey must be signed by `owner`'s identity key as its kind, and
/// no more one-time prekeys may come at once than a pool holds.
pub(super) fn check_prekeys(
    prekeys: &Prekeys,
    owner: &UserName,
    key: &PublicKey,
) -> Result<(), Refusal> {
    if prekeys.one_time.len() > MAX_ONE_TIME_PREKEYS as usize {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!("at most {MAX_ONE_TIME_PREKEYS} one-time prekeys at once"),
        ));
    }
    let signed = prekeys.signed.iter().map(|p| (PrekeyKind::Signed, p));
    let one_time = prekeys.one_time.iter().map(|p| (PrekeyKind::OneTime, p));
    for (kind, prekey) in signed.chain(one_time) {
        if prekey.verify(kind, owner, key).is_none() {
            return Err(Refusal::new(
                ErrorCode::BadRequest,
                format!(
                    "{} prekey {} is not a 32-byte X25519 key signed by the account's key as one",
                    match kind {
                        PrekeyKind::Signed => "the signed",
                        PrekeyKind::OneTime => "one-time",
                    },
                    prekey.id
                ),
            ));
        }
    }
    Ok(())
}

/// The refusal for a `send` whose recipient's queue is at its quota, or
/// (`senders`) whose sender's messages queued for them, as `usage` counts
/// them, take all of that sender's share of it.
pub(super) fn mailbox_full(recipient: &str, usage: Usage, senders: bool) -> Refusal {
    info!(
        recipient,
        queued = usage.messages,
        bytes = usage.bytes,
        senders,
        "mailbox full"
    );
    let full = match senders {
        false => format!("{recipient}'s mailbox on this server is full"),
        true => format!(
            "your {} messages waiting for {recipient} take all of your share of their mailbox \
             on this server",
            usage.messages
        ),
    };
    Refusal::new(
        ErrorCode::MailboxFull,
        format!("{full}, so the message was not sent"),
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
