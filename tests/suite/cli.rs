//! The client commands end to end: accounts, bodies, configuration, every
//! error's words, exit statuses, help texts, JSON output, passphrases,
//! several recipients, shell integration and waiting reads.

mod account;
mod bodies;
mod config;
mod errors;
mod exit_codes;
mod help;
mod json;
mod passphrase;
mod recipients;
mod session;
mod shell;
mod timeout;
mod wait;
