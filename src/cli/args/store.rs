//! Where a server keeps its state, as `msgr serve` and `msgr admin` are
//! told it: a data directory or a PostgreSQL database, each from its flag
//! or its environment variable. A flag wins over the other one's variable
//! ([`StoreArgs::settle`]), so that a variable set for the usual server
//! does not stand in the way of a command line that names the other kind.

use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args};

/// `--data-dir` or `--database`.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// The server's data directory: its SQLite database and its generated
    /// certificate [default: the platform data dir].
    #[arg(long, env = "MSGR_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The PostgreSQL database that servers share, in place of a data
    /// directory (nothing is then kept on disk):
    /// postgresql://USER@HOST:PORT/DATABASE (a password is better given in
    /// MSGR_DATABASE_URL, which `ps` does not show).
    #[arg(
        long,
        env = "MSGR_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,
}

/// Where the server's state is, once [`StoreArgs::settle`] has kept one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreLocation<'a> {
    /// A PostgreSQL database, by URL.
    Database(&'a str),
    /// A data directory: the one given, else the platform's.
    DataDir(Option<&'a Path>),
}

impl StoreArgs {
    /// Where the server's state is: the database if one was given, else
    /// the data directory.
    pub fn location(&self) -> StoreLocation<'_> {
        debug_assert!(
            self.data_dir.is_none() || self.database.is_none(),
            "settled before use"
        );
        match &self.database {
            Some(url) => StoreLocation::Database(url),
            None => StoreLocation::DataDir(self.data_dir.as_deref()),
        }
    }

    /// Keep one of the two if both were given, as `matches` (those of the
    /// subcommand `command`) says where each came from: the flag given
    /// over the other's environment variable. Both flags, or both
    /// variables, are refused with the usage of `msgr COMMAND`: which one
    /// was meant cannot be told.
    pub fn settle(&mut self, command: &str, matches: &ArgMatches) -> Result<(), clap::Error> {
        use ValueSource::{CommandLine, EnvVariable};
        if self.data_dir.is_none() || self.database.is_none() {
            return Ok(());
        }
        match (
            matches.value_source("data_dir"),
            matches.value_source("database"),
        ) {
            (Some(CommandLine), Some(EnvVariable)) => self.database = None,
            (Some(EnvVariable), Some(CommandLine)) => self.data_dir = None,
            (Some(EnvVariable), Some(EnvVariable)) => {
                return Err(conflict(
                    command,
                    "MSGR_DATA_DIR and MSGR_DATABASE_URL are both set; unset one, or choose with --data-dir or --database",
                ));
            }
            _ => {
                return Err(conflict(
                    command,
                    "--data-dir and --database cannot be used together; a server keeps its state in one place",
                ));
            }
        }
        Ok(())
    }
}

/// A usage error of `msgr COMMAND` saying `message`.
fn conflict(command: &str, message: &str) -> clap::Error {
    use clap::CommandFactory;
    let mut cli = super::Cli::command();
    cli.build();
    let usage = cli
        .find_subcommand_mut(command)
        .expect("a subcommand of msgr");
    clap::Error::raw(ErrorKind::ArgumentConflict, message).format(usage)
}
