//! The wire layer: what client and server must agree on, byte for byte,
//! and nothing else — it depends on no other layer of the crate.
//!
//! [`protocol`] holds the frames, the protocol version, the typed requests
//! and responses, user-name rules and signed prekeys; [`envelope`] the
//! sealed message format (one reader, one writer); [`crypto`] the
//! primitives (RSA identity keys that only sign, X25519, SHA-256,
//! fingerprints, random bytes); [`signing`] every statement an identity
//! key signs, each with its own context. All of it is specified in
//! `docs/PROTOCOL.md`.

pub mod crypto;
pub mod envelope;
pub mod protocol;
pub mod signing;
