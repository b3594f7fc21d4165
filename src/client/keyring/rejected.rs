//! `rejected/`: messages that failed verification or decryption, kept
//! instead of thrown away, one JSON file each with the envelope and the
//! reason, so that the user can look at them and `read --retry-rejected`
//! can open them again once the cause is fixed (a sender's new key
//! accepted, say). Bounded, so that a sender or a server sending junk
//! cannot fill the disk.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Account, AccountDir, KeyringError};
use crate::files::{FileError, TEMPORARY_PREFIX, create_private_dir, sync_folder, write_unique};
use crate::wire::protocol::{Base64Bytes, UserName};

/// The folder, in the account's folder.
const FOLDER: &str = "rejected";

/// At most this many are kept; a message failing beyond them is discarded.
pub const MOST_REJECTED: usize = 1000;

/// At most this many bytes of them are kept (a server could send a
/// thousand envelopes of the largest size); beyond, a failing message is
/// discarded.
pub const MOST_REJECTED_BYTES: u64 = 64 * 1024 * 1024;

/// One rejected message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejected {
    /// The sender, as the server recorded it.
    pub sender: String,
    /// The message id the envelope claims, as lowercase hex.
    pub message_id: String,
    /// The send time the envelope claims (unverified), RFC 3339.
    pub sent_at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// Why it was rejected.
    pub reason: String,
    /// When it was rejected, RFC 3339.
    pub rejected_at: String,
    /// The envelope as the server delivered it.
    pub envelope: Base64Bytes,
}

impl Rejected {
    /// A message from `sender` (as the server recorded it) with the id
    /// and send time its envelope claims, rejected now for `reason`.
    pub fn new(
        sender: &str,
        message_id: &str,
        sent_at_ms: u64,
        reason: String,
        envelope: Vec<u8>,
    ) -> Self {
        let sent = std::time::UNIX_EPOCH + std::time::Duration::from_millis(sent_at_ms);
        Self {
            sender: sender.to_owned(),
            message_id: message_id.to_owned(),
            sent_at: humantime::format_rfc3339_millis(sent).to_string(),
            sent_at_ms,
            reason,
            rejected_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            envelope: Base64Bytes(envelope),
        }
    }
}

impl AccountDir {
    /// The rejected messages kept, oldest file name first, with their files.
    pub fn rejected(&self) -> Result<Vec<(PathBuf, Rejected)>, KeyringError> {
        let mut kept = Vec::new();
        for path in self.rejected_files()? {
            let text = std::fs::read(&path).map_err(|e| KeyringError::io(&path, e))?;
            let rejected =
                serde_json::from_slice(&text).map_err(|e| KeyringError::corrupt(&path, e))?;
            kept.push((path, rejected));
        }
        Ok(kept)
    }

    /// The files in `rejected/`, sorted, without temporary ones.
    fn rejected_files(&self) -> Result<Vec<PathBuf>, KeyringError> {
        let folder = self.dir().join(FOLDER);
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyringError::io(&folder, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeyringError::io(&folder, e))?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(TEMPORARY_PREFIX) {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }
}

impl Account {
    /// Keep `rejected`, whose envelope names `claimed` as its sender, in a
    /// file of its own; its path, or `None` if that would keep more than
    /// [`MOST_REJECTED`] files or [`MOST_REJECTED_BYTES`] bytes.
    pub fn save_rejected(
        &self,
        claimed: &UserName,
        rejected: &Rejected,
    ) -> Result<Option<PathBuf>, KeyringError> {
        let json = serde_json::to_vec_pretty(rejected).expect("a record serialises");
        let kept = self.rejected_files()?;
        let mut bytes = json.len() as u64;
        for path in &kept {
            let metadata =
                std::fs::symlink_metadata(path).map_err(|e| KeyringError::io(path, e))?;
            bytes = bytes.saturating_add(metadata.len());
        }
        if kept.len() >= MOST_REJECTED || bytes > MOST_REJECTED_BYTES {
            return Ok(None);
        }
        let folder = self.dir().join(FOLDER);
        create_private_dir(&folder)?;
        // The claimed sender is a valid user name and the id is hex, so
        // the name is safe; write_unique never overwrites another file.
        let name = format!("{}-{}.json", claimed.canonical(), rejected.message_id);
        Ok(Some(write_unique(&folder, &name, &json)?))
    }

    /// Forget the rejected message kept in `path` (opened now).
    pub fn remove_rejected(&self, path: &Path) -> Result<(), KeyringError> {
        std::fs::remove_file(path).map_err(|source| FileError {
            path: path.to_owned(),
            source,
        })?;
        Ok(sync_folder(&self.dir().join(FOLDER))?)
    }
}
