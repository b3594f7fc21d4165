//! The client commands end to end: accounts, bodies, configuration, exit
//! statuses, JSON output, passphrases, several recipients, shell
//! integration and waiting reads.

mod account;
mod bodies;
mod config;
mod exit_codes;
mod json;
mod passphrase;
mod recipients;
mod shell;
mod wait;
