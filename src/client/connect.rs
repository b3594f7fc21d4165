//! Opening a connection under the user's trust settings: the certificates
//! of `--ca-cert` if given, else what `known_servers.toml` pinned for the
//! server, pinning it on first contact. A pin another msgr process made
//! meanwhile wins, and a connection that does not match it is refused. A
//! [`Dialer`] holds those settings, so that a long read can connect again
//! under the same ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::KnownServers;
use crate::client::net::trust::{ServerPin, TrustPolicy};
use crate::client::net::{Connection, NetError, ServerAddr};

/// An open connection, and the certificate fingerprint pinned by opening
/// it if this was the first contact.
pub struct Connected {
    /// The connection, its `hello` queued.
    pub connection: Connection,
    /// The fingerprint pinned now, for the user to compare.
    pub new_pin: Option<String>,
}

/// The server and how to reach and trust it.
#[derive(Debug, Clone)]
pub struct Dialer {
    server: ServerAddr,
    ca_file: Option<PathBuf>,
    known: KnownServers,
    timeout: Duration,
}

impl Dialer {
    /// Connections to `server` within `timeout`, verified with the
    /// certificates in `ca_file` if given, else under the pin in `known`
    /// (made on first contact).
    pub fn new(
        server: ServerAddr,
        ca_file: Option<PathBuf>,
        known: KnownServers,
        timeout: Duration,
    ) -> Self {
        Self {
            server,
            ca_file,
            known,
            timeout,
        }
    }

    /// The server connections go to.
    pub fn server(&self) -> &ServerAddr {
        &self.server
    }

    /// The CA file the server is verified with, if one was given.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Open a connection.
    pub fn dial(&self) -> ClientResult<Connected> {
        connect(&self.server, self.ca_file(), &self.known, self.timeout)
    }
}

fn connect(
    server: &ServerAddr,
    ca_file: Option<&Path>,
    known: &KnownServers,
    timeout: Duration,
) -> ClientResult<Connected> {
    let name = server.to_string();
    let policy = match ca_file {
        Some(path) => TrustPolicy::CaCertificates(load_ca_file(path)?),
        None => TrustPolicy::FirstUse {
            pinned: known.get(&name)?,
        },
    };
    let mismatch = |pinned: ServerPin, presented: String| ClientError::PinMismatch {
        server: name.clone(),
        pinned,
        presented,
        known: known.path().to_owned(),
    };
    let connection = Connection::open(server, policy, timeout).map_err(|error| match error {
        NetError::CertificateChanged {
            pinned, presented, ..
        } => mismatch(pinned, presented),
        other => other.into(),
    })?;
    let Some(pin) = connection.new_pin().cloned() else {
        return Ok(Connected {
            connection,
            new_pin: None,
        });
    };
    let on_record = known.pin(&name, &pin)?;
    if on_record != pin {
        return Err(mismatch(on_record, pin.to_string()));
    }
    let new_pin = match pin {
        ServerPin::Certificate(fingerprint) => Some(fingerprint),
        ServerPin::SystemRoots => None,
    };
    Ok(Connected {
        connection,
        new_pin,
    })
}

/// The certificates in the PEM file `path`.
fn load_ca_file(path: &Path) -> ClientResult<Vec<CertificateDer<'static>>> {
    crate::files::certificate_chain(path).map_err(|detail| ClientError::CaFile {
        path: PathBuf::from(path),
        detail,
    })
}
