//! msgr: an end-to-end encrypted message server and one-shot, scriptable
//! client in one binary.
//!
//! Four layers, each a folder, dependencies pointing one way, over one
//! module they all may use:
//!
//! - [`files`]: owner-only files — modes 0600 and 0700, atomic writes,
//!   durable appends, locks, PEM certificate chains; it depends on nothing
//!   else in the crate.
//! - [`wire`]: frames, protocol types, user names, the envelope, the
//!   crypto primitives and the signed statements — what both sides share;
//!   it depends on nothing else in the crate.
//! - [`client`]: the connection and its trust policy, the keyring, logging
//!   in and registering, other users' keys, sending and reading messages,
//!   settings and passphrases, and their typed errors; it uses the wire
//!   layer and [`files`].
//! - [`server`]: the accept loop, admission, the per-connection state
//!   machine, the request handler, the storage contract and its SQLite
//!   backend, TLS material and limits; it uses the wire layer and
//!   [`files`].
//! - [`cli`]: the clap definitions, one module per command, output (human
//!   and JSON) and the error that decides the exit status; it uses the
//!   other three.
//!
//! The wire and envelope formats are specified in `docs/PROTOCOL.md`.

pub mod cli;
pub mod client;
pub mod files;
pub mod server;
pub mod wire;
