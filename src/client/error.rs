//! What can go wrong on the client side, as values: each variant carries
//! what a person needs to understand it, and its `Display` is the one
//! sentence that says what failed. What to do about it and which exit
//! status it means are the command line's business (`crate::cli::error`
//! holds that table, the only one).

use std::path::PathBuf;

use thiserror::Error;

use crate::client::keyring::KeyringError;
use crate::client::net::NetError;
use crate::client::net::trust::ServerPin;
use crate::wire::crypto::CryptoError;
use crate::wire::envelope::EnvelopeError;

/// A failure of a client operation.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Talking to the server failed, or the server refused.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The keyring could not be read or written.
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    /// The server knows no account of this name to log in as, though
    /// this keyring registered it there.
    #[error("{server} does not know {user}, though this keyring registered it there")]
    NotRegistered {
        /// The account.
        user: String,
        /// The server as given.
        server: String,
    },
    /// The server refused the login signature of this keyring's key.
    #[error("the server refused this keyring's key as {user}'s")]
    KeyRefused {
        /// The account.
        user: String,
    },
    /// The server answered acting for another account.
    #[error("acting as {user}, the server answered for {answered:?}")]
    NotOwnName {
        /// The local account.
        user: String,
        /// The name the server gave, made printable.
        answered: String,
    },
    /// The user asked about does not exist on the server.
    #[error("there is no user named {name} on this server")]
    UnknownUser {
        /// The name asked for.
        name: String,
    },
    /// The server answered a key request with another account's keys.
    #[error(
        "asked for the key of {asked}, the server answered with the key of {answered:?}; nothing was sent or pinned"
    )]
    OtherAccount {
        /// The name asked for.
        asked: String,
        /// The name the server gave, made printable.
        answered: String,
    },
    /// The server sent a key that cannot be used.
    #[error("the server sent an unusable key for {name}: {source}")]
    UnusableKey {
        /// Whose key.
        name: String,
        /// Why it cannot be used.
        source: CryptoError,
    },
    /// The prekey offered is not signed by the user's identity key.
    #[error(
        "the server offers a prekey for {name} that {name}'s key {fingerprint} did not sign; nothing was sent or pinned"
    )]
    ForeignPrekey {
        /// Whose prekey.
        name: String,
        /// The identity key it should be signed by.
        fingerprint: String,
    },
    /// The key offered is not the one the user said to expect.
    #[error(
        "the server offers the key {offered} for {name}, not the expected {expected}; nothing was pinned"
    )]
    UnexpectedKey {
        /// Whose key.
        name: String,
        /// The fingerprint offered.
        offered: String,
        /// The fingerprint expected.
        expected: String,
    },
    /// The key offered differs from the pinned one.
    #[error(
        "the key the server offers for {name} does not match the pinned one: pinned fingerprint {pinned}, offered fingerprint {offered}"
    )]
    KeyChanged {
        /// Whose key.
        name: String,
        /// The pinned fingerprint.
        pinned: String,
        /// The fingerprint offered.
        offered: String,
    },
    /// A user seen for the first time under the explicit pin policy.
    #[error("{name}'s key is not pinned, and the pin policy is explicit")]
    NotPinned {
        /// Whose key.
        name: String,
    },
    /// The server's certificate does not match its pin.
    #[error(
        "the certificate of {server} does not match the pinned one: {pinned}, presented fingerprint {presented}"
    )]
    PinMismatch {
        /// The server as given.
        server: String,
        /// The pin on record.
        pinned: ServerPin,
        /// What the server presented: a fingerprint, or that the system's
        /// roots vouch for it.
        presented: String,
        /// The file holding the pins.
        known: PathBuf,
    },
    /// The `--ca-cert` file is unusable.
    #[error("cannot use --ca-cert {}: {detail}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The server refused to register a name others have.
    #[error("the name {user} is already taken on {server}")]
    NameTaken {
        /// The name.
        user: String,
        /// The server as given.
        server: String,
    },
    /// The server refused to register a name, saying why.
    #[error("{message}")]
    NameRefused {
        /// The server's sentence, made printable.
        message: String,
    },
    /// The recipient has no signed prekey to encrypt to.
    #[error("{name} has not published an encryption key on this server yet, so nothing was sent")]
    NoPrekey {
        /// The recipient.
        name: String,
    },
    /// The message is larger than the server takes.
    #[error("the message is {size} bytes; the largest this server takes is {largest} bytes")]
    TooLarge {
        /// The body's size in bytes.
        size: u64,
        /// The largest body that fits in the server's largest envelope.
        largest: u64,
    },
    /// Sealing the message failed.
    #[error("cannot seal the message: {0}")]
    Seal(EnvelopeError),
    /// A key operation on this machine failed.
    #[error("cannot {doing}: {source}")]
    Crypto {
        /// What was being done, such as "sign the login".
        doing: &'static str,
        /// The failure.
        source: CryptoError,
    },
    /// A new passphrase was empty.
    #[error("the passphrase is empty")]
    EmptyPassphrase,
    /// A new passphrase was typed differently the second time.
    #[error("the two passphrases differ")]
    PassphrasesDiffer,
    /// The passphrase file could not be read.
    #[error("cannot read the passphrase file {}: {source}", path.display())]
    PassphraseFile {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The passphrase file may be read by group or others.
    #[error("the passphrase file {} is accessible by other users (mode {mode:o})", path.display())]
    PassphraseFileOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// No configuration directory could be found for this user.
    #[error("cannot find a configuration directory for this user")]
    NoConfigDir,
    /// `config.toml` exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ConfigUnreadable {
        /// The file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// `config.toml` is not valid.
    #[error("{} is not valid: {detail}", path.display())]
    ConfigInvalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The signal handlers that end a waiting read could not be set up.
    #[error("cannot catch signals: {0}")]
    Signals(std::io::Error),
    /// A following read lost its connection and could not connect again
    /// in the time allowed.
    #[error("could not reconnect to {server} within {}: {last}", crate::client::net::seconds(*.within))]
    ReconnectFailed {
        /// The server as given.
        server: String,
        /// The time allowed.
        within: std::time::Duration,
        /// Why the last attempt failed.
        last: Box<ClientError>,
    },
    /// A passphrase is needed and nobody can be asked.
    #[error("the private key needs a passphrase and there is no terminal to ask for it")]
    NoTerminal,
}

/// Result of client operations.
pub type ClientResult<T> = Result<T, ClientError>;
