//! Client settings: each one from its flag, else its environment variable
//! (clap merges those two), else its key in `config.toml` in the config
//! dir, else its default — the precedence `git config` users expect.
//! Relative paths in `config.toml` are relative to the config dir.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::args::{GlobalArgs, PinPolicyArg};
use crate::cli::error::{AppError, AppResult};
use crate::client::directory::PinPolicy;
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
    pin_policy: Option<PinPolicyArg>,
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
}

impl Settings {
    /// Apply `config.toml` under the command line and environment.
    pub fn load(args: &GlobalArgs) -> AppResult<Self> {
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
        Ok(Self {
            server: args.server.clone().or(file.server),
            user: args.user.clone().or(file.user),
            ca_cert: args.ca_cert.clone().or(file.ca_cert.map(in_dir)),
            json: args.json.or(file.json).unwrap_or(false),
            passphrase,
            pin_policy: match args.pin_policy.or(file.pin_policy) {
                Some(PinPolicyArg::Explicit) => PinPolicy::Explicit,
                Some(PinPolicyArg::FirstUse) | None => PinPolicy::FirstUse,
            },
            config_dir,
        })
    }
}

fn default_config_dir() -> AppResult<PathBuf> {
    directories::ProjectDirs::from("", "", "msgr")
        .map(|dirs| dirs.config_dir().to_owned())
        .ok_or_else(|| {
            AppError::local("cannot find a configuration directory for this user")
                .hint("pass --config-dir DIR or set MSGR_CONFIG_DIR")
        })
}

fn load_config(path: &Path) -> AppResult<ConfigFile> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ConfigFile::default()),
        Err(e) => {
            return Err(AppError::local(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|e| {
        AppError::usage(format!("{} is not valid: {}", path.display(), e.message()))
            .hint("the known keys are server, user, ca_cert, json, passphrase_file and pin_policy")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(dir: &Path, config: &str, args: &[&str]) -> Settings {
        std::fs::write(dir.join(CONFIG_FILE), config).unwrap();
        let mut argv = vec!["msgr", "--config-dir", dir.to_str().unwrap()];
        argv.extend_from_slice(args);
        argv.push("whoami");
        let cli = crate::cli::args::Cli::try_parse_from(argv).unwrap();
        Settings::load(&cli.global).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config =
            "server = \"file:1\"\nuser = \"FileUser\"\nca_cert = \"ca.pem\"\njson = true\n";
        let from_file = settings(dir.path(), config, &[]);
        assert_eq!(from_file.server.as_deref(), Some("file:1"));
        assert_eq!(from_file.user.as_deref(), Some("FileUser"));
        assert_eq!(from_file.ca_cert, Some(dir.path().join("ca.pem")));
        assert!(from_file.json);

        let flags = settings(dir.path(), config, &["--server", "flag:2", "--json=false"]);
        assert_eq!(flags.server.as_deref(), Some("flag:2"));
        assert!(!flags.json);

        let defaults = settings(dir.path(), "", &[]);
        assert_eq!(defaults.server, None);
        assert!(!defaults.json);
        assert_eq!(defaults.pin_policy, PinPolicy::FirstUse);
    }

    #[test]
    fn the_pin_policy_comes_from_flag_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let strict = "pin_policy = \"explicit\"\n";
        assert_eq!(
            settings(dir.path(), strict, &[]).pin_policy,
            PinPolicy::Explicit
        );
        let flag = settings(dir.path(), strict, &["--pin-policy", "first-use"]);
        assert_eq!(flag.pin_policy, PinPolicy::FirstUse);
        assert!(load_config_text(dir.path(), "pin_policy = \"sometimes\"\n").is_err());
    }

    fn load_config_text(dir: &Path, text: &str) -> AppResult<ConfigFile> {
        std::fs::write(dir.join(CONFIG_FILE), text).unwrap();
        load_config(&dir.join(CONFIG_FILE))
    }

    #[test]
    fn unknown_keys_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CONFIG_FILE), "sever = \"x:1\"\n").unwrap();
        let error = load_config(&dir.path().join(CONFIG_FILE)).unwrap_err();
        assert_eq!(error.status, crate::cli::error::ExitStatus::Usage);
        assert!(error.hint.unwrap().contains("passphrase_file"));
    }
}
