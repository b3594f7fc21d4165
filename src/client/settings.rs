//! Client settings: each one from its flag or environment variable (the
//! command line gathers those two as [`Overrides`]), else its key in
//! `config.toml` in the config dir, else its default — the precedence
//! `git config` users expect. Relative paths in `config.toml` are relative
//! to the config dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::client::directory::PinPolicy;
use crate::client::error::{ClientError, ClientResult};
use crate::client::net::DEFAULT_TIMEOUT;
use crate::client::passphrase::{self, PassphraseSource};

/// Name of the settings file in the config dir.
pub const CONFIG_FILE: &str = "config.toml";

/// `config.toml`: defaults for the global options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    user: Option<String>,
    ca_cert: Option<PathBuf>,
    json: Option<bool>,
    passphrase_file: Option<PathBuf>,
    pin_policy: Option<PinPolicy>,
    timeout: Option<f64>,
}

/// The settings given as flags or environment variables, which win over
/// `config.toml`.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// The config dir, if not the platform's.
    pub config_dir: Option<PathBuf>,
    /// `HOST:PORT`.
    pub server: Option<String>,
    /// The account name.
    pub user: Option<String>,
    /// CA or certificate file to verify the server with.
    pub ca_cert: Option<PathBuf>,
    /// Whether output is JSON.
    pub json: Option<bool>,
    /// The file whose first line is the passphrase.
    pub passphrase_file: Option<PathBuf>,
    /// Whether `create` and `read` may pin keys on first contact.
    pub pin_policy: Option<PinPolicy>,
    /// How long connecting and each response may take.
    pub timeout: Option<Duration>,
}

/// The resolved global options.
#[derive(Debug)]
pub struct Settings {
    /// The config dir.
    pub config_dir: PathBuf,
    /// `HOST:PORT`, not yet validated.
    pub server: Option<String>,
    /// The account name, not yet validated.
    pub user: Option<String>,
    /// CA or certificate file to verify the server with.
    pub ca_cert: Option<PathBuf>,
    /// Whether output is JSON.
    pub json: bool,
    /// Where the passphrase of a protected key comes from.
    pub passphrase: PassphraseSource,
    /// Whether `create` and `read` may pin keys on first contact.
    pub pin_policy: PinPolicy,
    /// How long connecting and each response may take.
    pub timeout: Duration,
}

impl Settings {
    /// Apply `config.toml` under the command line and environment.
    pub fn load(args: &Overrides) -> ClientResult<Self> {
        let config_dir = match &args.config_dir {
            Some(dir) => dir.clone(),
            None => default_config_dir()?,
        };
        let file = load_config(&config_dir.join(CONFIG_FILE))?;
        let in_dir = |path: PathBuf| config_dir.join(path);
        let passphrase = match (&args.passphrase_file, passphrase::from_environment()) {
            (Some(path), _) => PassphraseSource::File(path.clone()),
            (None, Some(passphrase)) => PassphraseSource::Environment(passphrase),
            (None, None) => match file.passphrase_file {
                Some(path) => PassphraseSource::File(in_dir(path)),
                None => PassphraseSource::Prompt,
            },
        };
        let timeout = match (args.timeout, file.timeout) {
            (Some(timeout), _) => timeout,
            (None, Some(seconds)) => {
                timeout_from_seconds(seconds).map_err(|detail| ClientError::ConfigInvalid {
                    path: config_dir.join(CONFIG_FILE),
                    detail: format!("timeout: {detail}"),
                })?
            }
            (None, None) => DEFAULT_TIMEOUT,
        };
        Ok(Self {
            server: args.server.clone().or(file.server),
            user: args.user.clone().or(file.user),
            ca_cert: args.ca_cert.clone().or(file.ca_cert.map(in_dir)),
            json: args.json.or(file.json).unwrap_or(false),
            passphrase,
            pin_policy: args.pin_policy.or(file.pin_policy).unwrap_or_default(),
            timeout,
            config_dir,
        })
    }
}

/// The longest timeout accepted: a day.
const MAX_TIMEOUT_SECONDS: f64 = 86_400.0;

/// A timeout given in seconds (`--timeout`, `MSGR_TIMEOUT`, `timeout` in
/// `config.toml`): more than zero, at most a day, fractions allowed.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    timeout_from_seconds(seconds)
}

fn timeout_from_seconds(seconds: f64) -> Result<Duration, String> {
    if seconds > 0.0 && seconds <= MAX_TIMEOUT_SECONDS {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!(
            "the timeout must be more than 0 and at most {MAX_TIMEOUT_SECONDS} seconds"
        ))
    }
}

fn default_config_dir() -> ClientResult<PathBuf> {
    directories::ProjectDirs::from("", "", "msgr")
        .map(|dirs| dirs.config_dir().to_owned())
        .ok_or(ClientError::NoConfigDir)
}

fn load_config(path: &Path) -> ClientResult<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(source) => {
            return Err(ClientError::ConfigUnreadable {
                path: path.to_owned(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|e| ClientError::ConfigInvalid {
        path: path.to_owned(),
        detail: e.message().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, config: &str, flags: Overrides) -> Settings {
        std::fs::write(dir.join(CONFIG_FILE), config).unwrap();
        let flags = Overrides {
            config_dir: Some(dir.to_owned()),
            ..flags
        };
        Settings::load(&flags).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            "server = \"file:1\"\nuser = \"FileUser\"\nca_cert = \"ca.pem\"\njson = true\n";
        let from_file = settings(dir.path(), config, Overrides::default());
        assert_eq!(from_file.server.as_deref(), Some("file:1"));
        assert_eq!(from_file.user.as_deref(), Some("FileUser"));
        assert_eq!(from_file.ca_cert, Some(dir.path().join("ca.pem")));
        assert!(from_file.json);

        let flags = Overrides {
            server: Some("flag:2".into()),
            json: Some(false),
            ..Overrides::default()
        };
        let flags = settings(dir.path(), config, flags);
        assert_eq!(flags.server.as_deref(), Some("flag:2"));
        assert!(!flags.json);

        let defaults = settings(dir.path(), "", Overrides::default());
        assert_eq!(defaults.server, None);
        assert!(!defaults.json);
        assert_eq!(defaults.pin_policy, PinPolicy::FirstUse);
    }

    #[test]
    fn the_pin_policy_comes_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let strict = "pin_policy = \"explicit\"\n";
        let from_file = settings(dir.path(), strict, Overrides::default());
        assert_eq!(from_file.pin_policy, PinPolicy::Explicit);
        let flag = Overrides {
            pin_policy: Some(PinPolicy::FirstUse),
            ..Overrides::default()
        };
        assert_eq!(
            settings(dir.path(), strict, flag).pin_policy,
            PinPolicy::FirstUse
        );
        std::fs::write(dir.path().join(CONFIG_FILE), "pin_policy = \"sometimes\"\n").unwrap();
        assert!(load_config(&dir.path().join(CONFIG_FILE)).is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "sever = \"x:1\"\n").unwrap();
        let error = load_config(&dir.path().join(CONFIG_FILE)).unwrap_err();
        let ClientError::ConfigInvalid { detail, .. } = error else {
            panic!("{error:?}");
        };
        assert!(detail.contains("unknown field `sever`"), "{detail}");
    }
}
