//! `known_servers.toml`: server certificate fingerprints pinned on first
//! use, one per `host:port`, shared by every account in the config dir.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::files::lock_exclusive;
use super::{KeyringError, read_toml, write_toml};

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

    /// The pinned fingerprint of `server`, if any.
    pub fn get(&self, server: &str) -> Result<Option<String>, KeyringError> {
        Ok(self.load()?.remove(&server.to_ascii_lowercase()))
    }

    /// Pin `fingerprint` for `server`, keeping an existing pin if another
    /// process pinned the server meanwhile.
    pub fn pin(&self, server: &str, fingerprint: &str) -> Result<(), KeyringError> {
        let _lock = lock_exclusive(&self.lock_path)?;
        let mut pins = self.load()?;
        pins.entry(server.to_ascii_lowercase())
            .or_insert_with(|| fingerprint.to_owned());
        write_toml(&self.path, &pins)
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
        assert_eq!(known.get("Host:1").unwrap(), None);
        known.pin("Host:1", "SHA256:a").unwrap();
        known.pin("host:1", "SHA256:b").unwrap();
        assert_eq!(known.get("host:1").unwrap().as_deref(), Some("SHA256:a"));
    }
}
