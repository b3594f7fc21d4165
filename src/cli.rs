//! The command-line layer: [`args`] (the clap definitions), one module per
//! subcommand in [`commands`], what the client commands share once the
//! settings are resolved ([`context`]), the output in human and JSON form
//! ([`output`]), the failures only the command line meets ([`failure`]),
//! the user-facing error and the one table of exit statuses and hints
//! ([`error`]), the logging set-up ([`logging`]), and the reference
//! tables the README and the manual page share ([`reference`](mod@reference)).

pub mod args;
pub mod commands;
pub mod context;
pub mod error;
pub mod failure;
pub mod logging;
pub mod output;
pub mod reference;
