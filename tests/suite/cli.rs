//! The client commands end to end: accounts, bodies, configuration, exit
//! statuses, help texts, JSON output, passphrases, several recipients, shell
//! integration and waiting reads.

mod account;
mod bodies;
mod config;
mod exit_codes;
mod help;
mod json;
mod passphrase;
mod recipients;
mod shell;
mod wait;
