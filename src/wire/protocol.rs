//! The wire protocol shared by client and server: length-prefixed frames,
//! the protocol version, typed requests and responses, and user-name rules.
//!
//! Every frame is a 4-byte big-endian payload length followed by that many
//! bytes of UTF-8 JSON. Lengths are checked against a maximum before any
//! buffer is sized for the payload. The byte-level description lives in
//! `docs/PROTOCOL.md`.

use serde::{Deserialize, Serialize};

mod bytes;
mod frame;
mod names;
mod prekey;
mod rotation;
mod text;

pub use bytes::{Base64Bytes, hex};
pub use frame::{FRAME_HEADER_LEN, FrameError, decode_frame, encode_frame};
#[cfg(test)]
pub use names::username;
pub use names::{MAX_NAME_LEN, NameError, UserName, canonical_name};
pub use prekey::SignedPrekey;
pub use rotation::{KeyRotation, Replaced, follow, history};
pub use text::printable;

/// The protocol version this build speaks; exchanged in the first frame.
pub const PROTOCOL_VERSION: u32 = 3;

/// Bytes of the nonce in a login challenge.
pub const LOGIN_NONCE_LEN: usize = 32;

/// Bytes of a session token.
pub const TOKEN_LEN: usize = 32;

/// Largest frame a client accepts from a server (responses carry pages of
/// messages, so they may be larger than any single request).
pub const CLIENT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Most messages a client asks for in one `fetch` page.
pub const FETCH_PAGE: u32 = 256;

/// Most bytes of envelopes in one `fetch` page; a page always holds at
/// least one message, so a larger single envelope still arrives alone.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Longest wait one `fetch` may ask for; longer waits repeat the request.
pub const MAX_WAIT_MS: u64 = 30_000;

/// Most one-time prekeys a server holds for one account.
pub const MAX_ONE_TIME_PREKEYS: u32 = 200;

/// How far apart two machines' clocks may be, in seconds: the slack every
/// comparison of a time one side signed with the other's clock allows.
pub const CLOCK_SLACK: u64 = 60 * 60;

/// How long a message may wait for its recipient, in seconds (30 days):
/// servers expire queued messages older than this by default, and clients
/// refuse messages sent longer ago.
pub const MAX_MESSAGE_AGE: u64 = 30 * 24 * 60 * 60;

/// How long after it was made a one-time prekey is used, in seconds (14
/// days): senders refuse an older one, and servers drop it from the pool
/// (so its owner tops the pool up with fresh ones).
pub const ONE_TIME_PREKEY_USABLE: u64 = 14 * 24 * 60 * 60;

/// The latest time the wire carries, in milliseconds since the Unix
/// epoch: the last millisecond of the year 9999, the end of what RFC 3339
/// can write. Envelopes stamped later are malformed.
pub const MAX_TIME_MS: u64 = 253_402_300_799_999;

/// The longest wait, in seconds, a `rate_limited` error response may ask
/// for in `retry_after` (an hour, the refill period of the slowest rate
/// limit); clients read a longer one as this.
pub const MAX_RETRY_AFTER: u64 = 60 * 60;

/// Seconds since the Unix epoch, the unit of every expiry on the wire
/// (`expires_at`); both sides compare expiries against it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A request from client to server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First frame of every connection: the client's protocol version.
    Hello {
        /// Protocol version the client speaks.
        version: u32,
    },
    /// Create an account: name, identity key, its first signed prekey, and
    /// an RSA-PSS signature over [`crate::wire::signing::registration`].
    Register {
        /// Requested user name.
        user: String,
        /// The account's RSA identity key (SubjectPublicKeyInfo, DER).
        public_key: Base64Bytes,
        /// The prekey messages to the account are encrypted to.
        signed_prekey: SignedPrekey,
        /// The first one-time prekeys, each for one message.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        one_time_prekeys: Vec<SignedPrekey>,
        /// Proof of possession of the identity key, bound to this server.
        proof: Base64Bytes,
    },
    /// Start a login: the server answers with a challenge for this
    /// connection.
    Login {
        /// The account to log in as.
        user: String,
    },
    /// Answer the challenge with an RSA-PSS signature over
    /// [`crate::wire::signing::login`]; on success the connection acts for the
    /// user and the answer carries a new session token.
    LoginProof {
        /// The signature.
        signature: Base64Bytes,
    },
    /// Bind this connection to a user by presenting a session token.
    Authenticate {
        /// The account the token belongs to.
        user: String,
        /// The 32-byte session token obtained through `login`.
        token: Base64Bytes,
    },
    /// Fetch a user's registered public key and signed prekey.
    GetKey {
        /// Whose key to fetch.
        user: String,
        /// Also hand out one of the user's one-time prekeys, which the
        /// server deletes as it does (a sender about to seal asks this).
        #[serde(default, skip_serializing_if = "is_false")]
        claim: bool,
    },
    /// Replace the account's signed prekey, add one-time prekeys, or both
    /// (needs authentication).
    PublishPrekeys {
        /// The new signed prekey, signed by the account's identity key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signed_prekey: Option<SignedPrekey>,
        /// One-time prekeys to add to the account's pool, each signed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        one_time_prekeys: Vec<SignedPrekey>,
        /// Drop the pool first: the client's keyring lacks its private
        /// halves (it was made anew, or restored without them).
        #[serde(default, skip_serializing_if = "is_false")]
        replace_one_time_prekeys: bool,
    },
    /// Replace the account's identity key (needs authentication): the
    /// rotation, signed by the current key and the new one, with a signed
    /// prekey and one-time prekeys signed by the new key, which replace
    /// the account's.
    RotateKey {
        /// The rotation from the account's current key.
        rotation: KeyRotation,
        /// The new signed prekey, signed by the new key.
        signed_prekey: SignedPrekey,
        /// A new pool of one-time prekeys, signed by the new key.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        one_time_prekeys: Vec<SignedPrekey>,
    },
    /// Queue a sealed envelope for a recipient (needs authentication).
    Send {
        /// The recipient's user name.
        recipient: String,
        /// The envelope bytes (see `docs/PROTOCOL.md`).
        envelope: Base64Bytes,
    },
    /// Fetch queued messages with ids greater than `after`, oldest first
    /// (needs authentication).
    Fetch {
        /// Return only messages with an id above this one.
        after: u64,
        /// At most this many messages.
        limit: u32,
        /// If nothing is queued, wait up to this many milliseconds (capped
        /// at [`MAX_WAIT_MS`]) for a message to arrive; 0 or absent answers
        /// at once.
        #[serde(default, skip_serializing_if = "is_zero")]
        wait_ms: u64,
    },
    /// Delete delivered messages from the queue (needs authentication).
    Ack {
        /// Server ids of the messages to delete.
        ids: Vec<u64>,
    },
    /// End the session whose token authenticated this connection (needs
    /// authentication); the token is useless afterwards.
    Logout,
    /// End every session of the authenticated account, this one included
    /// (needs authentication): every token made for it is useless
    /// afterwards.
    LogoutAll,
    /// Delete the authenticated account: its queue, sessions, prekeys and
    /// key; the name is free afterwards.
    Unregister,
}

/// A response from server to client; exactly one per request, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to `hello`: the server's version and its size limit.
    Hello {
        /// Protocol version the server speaks.
        version: u32,
        /// Largest envelope, in bytes, the server accepts.
        max_envelope: u64,
    },
    /// The account exists now (or already existed with the same key).
    Registered {
        /// The name as the server stores it.
        user: String,
    },
    /// The challenge a `login_proof` must sign.
    LoginChallenge {
        /// 32 random bytes, good for one answer on this connection.
        nonce: Base64Bytes,
    },
    /// The login succeeded: the connection acts for the user, and the
    /// token authenticates later connections until it expires.
    LoggedIn {
        /// The name as the server stores it.
        user: String,
        /// The 32-byte session token.
        token: Base64Bytes,
        /// Expiry, seconds since the Unix epoch.
        expires_at: u64,
        /// How many one-time prekeys the server holds for the account.
        one_time_prekeys: u32,
    },
    /// The connection now acts for this user.
    Authenticated {
        /// The name as the server stores it.
        user: String,
        /// When the presented token expires, seconds since the Unix epoch.
        expires_at: u64,
        /// How many one-time prekeys the server holds for the account.
        one_time_prekeys: u32,
    },
    /// A user's keys.
    Key {
        /// The name as the server stores it.
        user: String,
        /// The identity key, SubjectPublicKeyInfo DER.
        public_key: Base64Bytes,
        /// The prekey to encrypt to; absent if the account has published
        /// none yet.
        signed_prekey: Option<SignedPrekey>,
        /// A one-time prekey, handed out to this request only, when one
        /// was claimed and the account's pool was not empty.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        one_time_prekey: Option<SignedPrekey>,
        /// The account's key rotations, oldest first: the chain from any
        /// earlier identity key to `public_key`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        rotations: Vec<KeyRotation>,
    },
    /// The prekeys are stored.
    PrekeysPublished {
        /// How many one-time prekeys the server holds for the account now.
        one_time_prekeys: u32,
    },
    /// The identity key is replaced, and the prekeys with it.
    KeyRotated {
        /// How many one-time prekeys the server holds for the account now.
        one_time_prekeys: u32,
    },
    /// The envelope is stored durably under this server id.
    Sent {
        /// Server-assigned, increasing message id.
        id: u64,
    },
    /// A page of queued messages, oldest first.
    Messages {
        /// The messages; empty when the queue holds nothing more.
        messages: Vec<QueuedMessage>,
    },
    /// How many of the acknowledged ids were removed.
    Acked {
        /// Number of messages deleted.
        count: u64,
    },
    /// The session is ended.
    LoggedOut,
    /// The account is deleted.
    Unregistered {
        /// The name the account had, as the server stored it.
        user: String,
    },
    /// The request failed; the connection stays usable unless the frame
    /// itself was malformed.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// One human sentence stating what failed (what to do about it is
        /// the client's to say, from the code).
        message: String,
        /// With `rate_limited`: how many seconds to wait before the request
        /// can succeed (1 to [`MAX_RETRY_AFTER`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

/// One queued message as delivered by `fetch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuedMessage {
    /// Server-assigned id, used to acknowledge.
    pub id: u64,
    /// The authenticated sender, as the server recorded it (clients trust
    /// only the signed envelope, and check that the two agree).
    pub sender: String,
    /// The envelope bytes, exactly as sent.
    pub envelope: Base64Bytes,
}

/// Machine-readable error codes carried by [`Response::Error`]. Their wire
/// spelling is [`ErrorCode::as_str`], which serde uses too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum ErrorCode {
    /// The frame or its fields are malformed.
    BadRequest,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// A user name breaks the naming rules.
    InvalidName,
    /// The name is registered already (in some letter case).
    NameTaken,
    /// The key is registered under as many accounts as one key may be.
    KeyInUse,
    /// No such user.
    UnknownUser,
    /// The request needs an authenticated connection.
    AuthRequired,
    /// The token is unknown, expired or belongs to someone else.
    AuthFailed,
    /// The envelope or frame exceeds the server's limit.
    TooLarge,
    /// The server's disk is nearly full: it takes no messages now.
    StorageFull,
    /// The server has no room for this connection now: every slot is
    /// taken, or the source address holds its share of them.
    Busy,
    /// The recipient's queue is full.
    MailboxFull,
    /// Too many attempts from this address; retry later.
    RateLimited,
    /// The server failed internally; the request had no effect.
    Internal,
}

impl ErrorCode {
    /// Every code.
    pub const ALL: [ErrorCode; 14] = [
        Self::BadRequest,
        Self::UnsupportedVersion,
        Self::InvalidName,
        Self::NameTaken,
        Self::KeyInUse,
        Self::UnknownUser,
        Self::AuthRequired,
        Self::AuthFailed,
        Self::TooLarge,
        Self::Busy,
        Self::StorageFull,
        Self::MailboxFull,
        Self::RateLimited,
        Self::Internal,
    ];

    /// The code's wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnsupportedVersion => "unsupported_version",
            Self::InvalidName => "invalid_name",
            Self::NameTaken => "name_taken",
            Self::KeyInUse => "key_in_use",
            Self::UnknownUser => "unknown_user",
            Self::AuthRequired => "auth_required",
            Self::AuthFailed => "auth_failed",
            Self::TooLarge => "too_large",
            Self::Busy => "busy",
            Self::StorageFull => "storage_full",
            Self::MailboxFull => "mailbox_full",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
        }
    }
}

impl From<ErrorCode> for &'static str {
    fn from(code: ErrorCode) -> Self {
        code.as_str()
    }
}

impl TryFrom<String> for ErrorCode {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|code| code.as_str() == name)
            .ok_or_else(|| format!("unknown error code {name:?}"))
    }
}

impl Request {
    /// The request's wire name, for logs that must not show its fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Register { .. } => "register",
            Self::Login { .. } => "login",
            Self::LoginProof { .. } => "login_proof",
            Self::Authenticate { .. } => "authenticate",
            Self::GetKey { .. } => "get_key",
            Self::PublishPrekeys { .. } => "publish_prekeys",
            Self::RotateKey { .. } => "rotate_key",
            Self::Send { .. } => "send",
            Self::Fetch { .. } => "fetch",
            Self::Ack { .. } => "ack",
            Self::Logout => "logout",
            Self::LogoutAll => "logout_all",
            Self::Unregister => "unregister",
        }
    }

    /// Serialise into one complete frame.
    pub fn to_frame(&self) -> Vec<u8> {
        to_frame(self)
    }

    /// Parse a frame payload.
    pub fn from_payload(payload: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(payload)
    }
}

impl Response {
    /// The response's wire name, for messages that must not show its
    /// fields.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Registered { .. } => "registered",
            Self::LoginChallenge { .. } => "login_challenge",
            Self::LoggedIn { .. } => "logged_in",
            Self::Authenticated { .. } => "authenticated",
            Self::Key { .. } => "key",
            Self::PrekeysPublished { .. } => "prekeys_published",
            Self::KeyRotated { .. } => "key_rotated",
            Self::Sent { .. } => "sent",
            Self::Messages { .. } => "messages",
            Self::Acked { .. } => "acked",
            Self::LoggedOut => "logged_out",
            Self::Unregistered { .. } => "unregistered",
            Self::Error { .. } => "error",
        }
    }

    /// Serialise into one complete frame.
    pub fn to_frame(&self) -> Vec<u8> {
        to_frame(self)
    }

    /// Parse a frame payload.
    pub fn from_payload(payload: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(payload)
    }

    /// Shorthand for an error response.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

fn to_frame<T: Serialize>(value: &T) -> Vec<u8> {
    let payload = serde_json::to_vec(value).expect("protocol types always serialise");
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    encode_frame(&payload, &mut frame);
    frame
}

#[cfg(test)]
pub(crate) mod tests;
