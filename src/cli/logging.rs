//! Logging to stderr through `tracing`, for the server and the client
//! alike. The level is chosen as every other setting is: `-v`/`-q` on the
//! command line, else `RUST_LOG`, else the default (`info` for `serve`,
//! `warn` for client commands). Each `-v` is one level louder, `-q` one
//! level quieter. The server may log JSON instead of text
//! (`--log-format json`: one object per line with `timestamp`, `level`,
//! `target`, `fields` and the spans). Logs never contain tokens, keys or
//! message bodies.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::cli::output::color_enabled;

/// The PostgreSQL driver's module, which logs at most at [`DRIVER_LEVEL`].
const DRIVER: &str = "tokio_postgres";

/// The loudest the PostgreSQL driver may log, whatever the level asked
/// for.
const DRIVER_LEVEL: LevelFilter = LevelFilter::INFO;

/// The levels from quietest to loudest.
const LEVELS: [LevelFilter; 5] = [
    LevelFilter::ERROR,
    LevelFilter::WARN,
    LevelFilter::INFO,
    LevelFilter::DEBUG,
    LevelFilter::TRACE,
];

/// How the server writes its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Lines for people to read.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Install the stderr logger: the server's (`serving`, in its format) or
/// a client command's; `verbose` counts `-v`, `quiet` is `-q`.
pub fn init(serving: Option<LogFormat>, verbose: u8, quiet: bool) {
    let default = match serving {
        Some(_) => LevelFilter::INFO,
        None => LevelFilter::WARN,
    };
    let filter = if verbose > 0 || quiet {
        EnvFilter::new(shifted(default, verbose, quiet).to_string())
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default.to_string()))
    };
    // The PostgreSQL driver logs every statement with its parameters at
    // debug level: session token hashes, envelopes, the certificate's key.
    // Below that it logs the database's notices, which a command quieter
    // than info (`msgr admin --database`) does not show either.
    let driver = filter
        .max_level_hint()
        .unwrap_or(DRIVER_LEVEL)
        .min(DRIVER_LEVEL);
    let filter = filter.add_directive(
        format!("{DRIVER}={driver}")
            .parse()
            .expect("a valid directive"),
    );
    let stderr = std::io::stderr();
    let ansi = color_enabled(&stderr);
    let logger = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    // A subscriber installed earlier (by an embedding program) wins.
    let _ = match serving {
        Some(LogFormat::Json) => logger.json().try_init(),
        _ => logger.with_ansi(ansi).try_init(),
    };
}

/// `default` moved `verbose` levels louder, or one quieter for `quiet`.
fn shifted(default: LevelFilter, verbose: u8, quiet: bool) -> LevelFilter {
    let start = LEVELS
        .iter()
        .position(|level| *level == default)
        .expect("defaults are listed levels");
    let index = if quiet {
        start.saturating_sub(1)
    } else {
        (start + usize::from(verbose)).min(LEVELS.len() - 1)
    };
    LEVELS[index]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_flag_moves_one_level() {
        assert_eq!(shifted(LevelFilter::WARN, 1, false), LevelFilter::INFO);
        assert_eq!(shifted(LevelFilter::WARN, 2, false), LevelFilter::DEBUG);
        assert_eq!(shifted(LevelFilter::INFO, 9, false), LevelFilter::TRACE);
        assert_eq!(shifted(LevelFilter::INFO, 0, true), LevelFilter::WARN);
        assert_eq!(shifted(LevelFilter::WARN, 0, true), LevelFilter::ERROR);
    }
}
