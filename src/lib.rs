//! msgr: an end-to-end encrypted message server and one-shot, scriptable
//! client in one binary.
//!
//! Layout: [`cli`] parses arguments, [`commands`] holds one module per
//! subcommand, [`protocol`] is the wire format shared by both sides,
//! [`crypto`] and [`envelope`] are the keys and the sealed message format,
//! [`keyring`] is the client's local state, [`net`] the client connection,
//! and [`server`] the listener, handler and storage. The wire and envelope
//! formats are specified in `docs/PROTOCOL.md`.

pub mod cli;
pub mod commands;
pub mod context;
pub mod crypto;
pub mod directory;
pub mod envelope;
pub mod error;
pub mod keyring;
pub mod net;
pub mod protocol;
pub mod server;
pub mod session;
