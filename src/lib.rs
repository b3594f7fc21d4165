//! msgr: an end-to-end encrypted message server and one-shot, scriptable
//! client in one binary.
//!
//! Layout: [`cli`] parses arguments, [`commands`] holds one module per
//! subcommand, [`protocol`] is the wire format shared by both sides,
//! [`crypto`] and [`envelope`] are the keys and the sealed message format,
//! [`keyring`] is the client's local state, [`net`] the client connection,
//! and [`server`] the listener, handler and storage. On the client side,
//! [`settings`] resolves flags, environment and `config.toml`, [`context`]
//! opens the account and the connection, [`inbox`] reads the queue,
//! [`output`] renders results as text or JSON, [`logging`] sets up
//! `tracing`, [`passphrase`] finds a key's passphrase and [`interrupt`]
//! stops waiting reads gracefully. The wire and envelope formats are
//! specified in `docs/PROTOCOL.md`.

pub mod cli;
pub mod commands;
pub mod context;
pub mod crypto;
pub mod directory;
pub mod envelope;
pub mod error;
pub mod inbox;
pub mod interrupt;
pub mod keyring;
pub mod logging;
pub mod net;
pub mod output;
pub mod passphrase;
pub mod protocol;
pub mod server;
pub mod session;
pub mod settings;
pub mod signing;
