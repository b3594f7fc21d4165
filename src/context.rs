//! Resolving the global options (flag, then environment, then
//! `config.toml`, then default) into what client commands need: the server,
//! the account name, the keyring and the trust policy; and opening the
//! account and the connection from them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cli::GlobalArgs;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::keyring::{Account, Keyring};
use crate::net::trust::TrustPolicy;
use crate::net::{Connection, NetError, ServerAddr};
use crate::protocol::validate_username;

/// `config.toml`: defaults for the global options.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    server: Option<String>,
    user: Option<String>,
    ca_cert: Option<PathBuf>,
}

/// Everything a client command needs to know before doing its work.
#[derive(Debug)]
pub struct ClientContext {
    /// The server to talk to.
    pub server: ServerAddr,
    /// The account name, validated.
    pub user: String,
    /// The config directory.
    pub keyring: Keyring,
    ca_cert: Option<PathBuf>,
}

impl ClientContext {
    /// Resolve the global options; fails before any file or network work
    /// if a value is missing or malformed.
    pub fn from_args(args: &GlobalArgs) -> AppResult<Self> {
        let config_dir = match &args.config_dir {
            Some(dir) => dir.clone(),
            None => default_config_dir()?,
        };
        let file = load_config(&config_dir.join("config.toml"))?;
        let server = args.server.clone().or(file.server).ok_or_else(|| {
            AppError::new(ExitStatus::Usage, "no server given")
                .hint("pass --server HOST:PORT, set MSGR_SERVER, or put server = \"HOST:PORT\" in config.toml")
        })?;
        let server: ServerAddr = server
            .parse()
            .map_err(|e: crate::net::AddrError| AppError::new(ExitStatus::Usage, e.to_string()))?;
        let user = args.user.clone().or(file.user).ok_or_else(|| {
            AppError::new(ExitStatus::Usage, "no user given")
                .hint("pass --user NAME, set MSGR_USER, or put user = \"NAME\" in config.toml")
        })?;
        validate_username(&user).map_err(|e| AppError::new(ExitStatus::Usage, e.to_string()))?;
        let keyring = Keyring::open(&config_dir)?;
        Ok(Self {
            server,
            user,
            keyring,
            ca_cert: args.ca_cert.clone().or(file.ca_cert),
        })
    }

    /// Open and lock this account's folder.
    pub fn account(&self) -> AppResult<Account> {
        Ok(self.keyring.account(&self.user, &self.server.to_string())?)
    }

    /// Connect to the server under the trust policy, pinning its
    /// certificate on first use (with a notice on stderr).
    pub fn connect(&self) -> AppResult<Connection> {
        let known = self.keyring.known_servers();
        let server = self.server.to_string();
        let policy = match &self.ca_cert {
            Some(path) => TrustPolicy::CaCertificates(load_ca_file(path)?),
            None => TrustPolicy::FirstUse {
                pinned: known.get(&server)?,
            },
        };
        let connection = Connection::open(&self.server, policy).map_err(|error| match error {
            NetError::CertificateChanged { pinned, presented, .. } => AppError::new(
                ExitStatus::Trust,
                format!(
                    "the certificate of {server} does not match the pinned one: pinned fingerprint {pinned}, presented fingerprint {presented}"
                ),
            )
            .hint(format!(
                "if the server's certificate was replaced on purpose, confirm the new fingerprint with its operator and delete the {server} line from {}",
                known.path().display()
            )),
            other => other.into(),
        })?;
        if let Some(fingerprint) = connection.new_pin() {
            known.pin(&server, fingerprint)?;
            eprintln!(
                "msgr: first connection to {server}; pinned its certificate fingerprint {fingerprint} (compare it with the one the server printed at start)"
            );
        }
        Ok(connection)
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
        AppError::local(format!("{} is not valid: {}", path.display(), e.message()))
            .hint("the known keys are server, user and ca_cert")
    })
}

fn load_ca_file(path: &Path) -> AppResult<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let unreadable = |detail: String| {
        AppError::new(
            ExitStatus::Usage,
            format!("cannot use --ca-cert {}: {detail}", path.display()),
        )
        .hint("give a PEM file holding the server's CA or its certificate")
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    if certs.is_empty() {
        return Err(unreadable("it holds no certificate".into()));
    }
    Ok(certs)
}
