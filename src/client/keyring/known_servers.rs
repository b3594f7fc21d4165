//! `known_servers.toml`: what is pinned for each server on first contact,
//! one entry per `host:port` shared by every account in the config dir —
//! a certificate fingerprint, or `system-roots` for a server the system's
//! roots vouched for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{KeyringError, read_toml, write_toml};
use crate::client::net::trust::ServerPin;
use crate::files::lock_exclusive;

/// The pinned server certificates.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
    lock_path: PathBuf,
}

impl KnownServers {
    pub(super) fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("known_servers.toml"),
            lock_path: dir.join("known_servers.lock"),
        }
    }

    /// The file that holds the pins, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pin of `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<ServerPin>, KeyringError> {
        Ok(self
            .load()?
            .remove(&server.to_ascii_lowercase())
            .map(|stored| ServerPin::from_stored(&stored)))
    }

    /// Pin `pin` for `server`, unless another process pinned the server
    /// meanwhile; returns the pin on record now, which the caller must
    /// check is the one it was shown.
    pub fn pin(&self, server: &str, pin: &ServerPin) -> Result<ServerPin, KeyringError> {
        let _lock = lock_exclusive(&self.lock_path)?;
        let mut pins = self.load()?;
        let stored = pins
            .entry(server.to_ascii_lowercase())
            .or_insert_with(|| pin.stored().to_owned())
            .clone();
        write_toml(&self.path, &pins)?;
        Ok(ServerPin::from_stored(&stored))
    }

    fn load(&self) -> Result<BTreeMap<String, String>, KeyringError> {
        Ok(read_toml(&self.path)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_pin_wins() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownServers::new(dir.path());
        let pin = |fingerprint: &str| ServerPin::Certificate(fingerprint.into());
        assert_eq!(known.get("Host:1").unwrap(), None);
        assert_eq!(
            known.pin("Host:1", &pin("SHA256:a")).unwrap(),
            pin("SHA256:a")
        );
        assert_eq!(
            known.pin("host:1", &pin("SHA256:b")).unwrap(),
            pin("SHA256:a")
        );
        assert_eq!(known.get("host:1").unwrap(), Some(pin("SHA256:a")));
        known.pin("host:2", &ServerPin::SystemRoots).unwrap();
        assert_eq!(known.get("HOST:2").unwrap(), Some(ServerPin::SystemRoots));
    }
}
