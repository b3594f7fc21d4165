//! The client layer: everything a client needs to talk to a server safely,
//! built on the wire layer only.
//!
//! [`net`] is the connection (TLS and the server trust policy, framed and
//! pipelined requests), [`connect`] opens one under the user's pins; [`keyring`] the local state (identity key, prekeys,
//! pins, session token, shown ids); [`session`] logging in and
//! authenticating; [`directory`] other users' keys, checked and pinned;
//! [`prekeys`] keeping the account's prekeys on the server fresh;
//! [`rotation`] replacing the account's own identity key;
//! [`outbox`] sealing and queueing a message;
//! [`inbox`] reading the queue; [`settings`] flags, environment and
//! `config.toml` resolved; [`passphrase`] where a key's passphrase comes
//! from; [`interrupt`] stopping a waiting read gracefully. Failures are
//! [`error::ClientError`] values; the command line decides how they read
//! and which exit status they mean.

pub mod connect;
pub mod directory;
pub mod error;
pub mod inbox;
pub mod interrupt;
pub mod keyring;
pub mod net;
pub mod outbox;
pub mod passphrase;
pub mod prekeys;
pub mod rotation;
pub mod session;
pub mod settings;
