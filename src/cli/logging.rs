//! Logging to stderr through `tracing`, for the server and the client
//! alike. The level is chosen as every other setting is: `-v`/`-q` on the
//! command line, else `RUST_LOG`, else the default (`info` for `serve`,
//! `warn` for client commands). Each `-v` is one level louder, `-q` one
//! level quieter. Logs never contain tokens, keys or message bodies.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use crate::cli::output::color_enabled;

/// The levels from quietest to loudest.
const LEVELS: [LevelFilter; 5] = [
    LevelFilter::ERROR,
    LevelFilter::WARN,
    LevelFilter::INFO,
    LevelFilter::DEBUG,
    LevelFilter::TRACE,
];

/// Install the stderr logger. `serving` selects the server's default
/// level; `verbose` counts `-v`, `quiet` is `-q`.
pub fn init(serving: bool, verbose: u8, quiet: bool) {
    let default = if serving {
        LevelFilter::INFO
    } else {
        LevelFilter::WARN
    };
    let filter = if verbose > 0 || quiet {
        EnvFilter::new(shifted(default, verbose, quiet).to_string())
    } else {
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default.to_string()))
    };
    let stderr = std::io::stderr();
    let ansi = color_enabled(&stderr);
    // A subscriber installed earlier (by an embedding program) wins.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .try_init();
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
