//! The test suite, one binary: the real `msgr` binary against real
//! servers on port 0 (`cli`, `accounts`, `end_to_end`, `trust`,
//! `tls_failures`), a proxy that plays a malicious server operator
//! (`malicious_server`), the server spoken to frame by frame (`server`),
//! and hostile input, limits, crashes and concurrency (`hardening`).
//! `common` holds the shared helpers: the server, the hermetic command
//! builder, the raw protocol client and the proxy.

mod accounts;
mod cli;
mod common;
mod end_to_end;
mod forward_secrecy;
mod hardening;
mod malicious_server;
mod message_age;
mod rotation;
mod server;
mod tls_failures;
mod trust;
