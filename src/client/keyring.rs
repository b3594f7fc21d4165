//! The client's local state, kept in the config directory:
//!
//! ```text
//! config.toml                      defaults for the global options
//! known_servers.toml               pinned server certificate fingerprints (or system-roots)
//! known_servers.lock               held while a pin is added to known_servers.toml
//! accounts/<user>@<host:port>/     one folder per account (mode 0700)
//!     identity.pem                 the private key, PKCS#8 PEM, encrypted if
//!                                  registered with a passphrase (mode 0600)
//!     identity.next.pem            a new private key `msgr rotate` has not finished with
//!     account.toml                 written once the server confirmed registration
//!     session.toml                 the session token and its expiry
//!     prekeys.toml                 private halves of the signed prekeys (mode 0600)
//!     contacts.toml                pinned public keys of other users
//!     seen.txt                     ids of messages already shown, with their send times
//!     claimed/<user>/<id>          a one-time prekey of <user> kept for the next message
//!     received/<user>-<id>         a binary body `read` saved instead of printing it
//!     rejected/<user>-<id>.json    a message that failed verification, kept to retry
//!     lock                         held while a command changes the account
//! ```
//!
//! Only `register` makes the config directory and an account's folder
//! ([`Keyring::create_account_dir`]); every other command finds the
//! folder or fails, leaving nothing behind ([`Keyring::account_dir`]).
//!
//! Every write is atomic — a temporary file, fsync, rename; `seen.txt`
//! grows by appends whose torn tail a reader ignores, and is rewritten
//! without the ids too old to matter — so reading never needs a lock. Every change is made under the account's lock
//! ([`AccountDir::lock`], [`AccountAccess`]): `read` holds it while it
//! handles a page of messages, so two readers never show one message twice;
//! `create` takes it only for the rare change it makes (a new pin or token),
//! so cron jobs sending from one account run in parallel. The one
//! exception to the lock, `claimed/`, needs none: each of its files is
//! written once and taken by deleting it. Concurrent invocations cannot
//! corrupt the keyring.

mod claimed;
mod identity;
mod known_servers;
mod prekeys;
mod records;
mod rejected;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::client::net::ServerAddr;
use crate::wire::crypto::{CryptoError, PrivateKey};
use crate::wire::protocol::UserName;

pub use claimed::OneTimeOffer;
pub use identity::{EncryptedKey, StoredKey};
pub use known_servers::KnownServers;
pub use prekeys::{OneTimePrekey, Prekey, Prekeys};
pub use records::{Contact, Registration, Session, SessionToken};
pub use rejected::{MOST_REJECTED, MOST_REJECTED_BYTES, Rejected};

use crate::files::{
    FOLDER_MODE, FileError, append_lines, create_private_dir, lock_exclusive, open_to_others,
    read_optional, rename_durably, restrict, write_atomic,
};
use prekeys::PrekeysFile;
use records::{ContactRecord, SessionRecord};

/// Failures reading or writing the keyring.
#[derive(Debug, Error)]
pub enum KeyringError {
    /// A file operation failed.
    #[error(transparent)]
    File(#[from] FileError),
    /// A secret file is readable by group or others.
    #[error("{} is accessible by other users (mode {mode:o})", path.display())]
    TooOpen {
        /// The secret file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file exists but cannot be understood.
    #[error("{} is damaged ({detail})", path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The stored private key is unusable.
    #[error("the private key in {} is unusable: {source}", path.display())]
    BadIdentity {
        /// The key file.
        path: PathBuf,
        /// Why it cannot be used.
        source: CryptoError,
    },
    /// The passphrase does not decrypt the private key.
    #[error("the passphrase does not unlock the private key in {}", path.display())]
    WrongPassphrase {
        /// The key file.
        path: PathBuf,
    },
}

/// Refuse a secret file that group or others may read, as ssh does.
fn check_private(path: &Path) -> Result<(), KeyringError> {
    match open_to_others(path)? {
        Some(mode) => Err(KeyringError::TooOpen {
            path: path.to_owned(),
            mode,
        }),
        None => Ok(()),
    }
}

impl KeyringError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::File(FileError {
            path: path.to_owned(),
            source,
        })
    }

    fn corrupt(path: &Path, detail: impl ToString) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// The config directory holding every account's state. Looking at it
/// changes nothing: the directory and an account's folder are made only
/// by [`Keyring::create_account_dir`], which `register` alone calls, so a
/// command for an account that is not here (another spelling of the
/// server, a mistyped name) leaves no trace.
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
}

impl Keyring {
    /// The config directory at `dir`, which need not exist (yet).
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The config directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the config directory exists.
    pub fn exists(&self) -> Result<bool, KeyringError> {
        self.dir
            .try_exists()
            .map_err(|e| KeyringError::io(&self.dir, e))
    }

    /// One account's folder if it exists, not locked; nothing is made.
    /// Folders that group or others may enter (made by hand, or by an
    /// older setup) are tightened to owner-only on the way.
    pub fn account_dir(
        &self,
        user: &UserName,
        server: &ServerAddr,
    ) -> Result<Option<AccountDir>, KeyringError> {
        let dir = self.account_path(user, server);
        match std::fs::metadata(&dir) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => return Err(KeyringError::corrupt(&dir, "it is not a folder")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(KeyringError::io(&dir, e)),
        }
        self.restrict_to(&dir)?;
        Ok(Some(AccountDir { dir }))
    }

    /// One account's folder, made (with the config directory and
    /// `accounts/`, owner-only) if missing; not locked.
    pub fn create_account_dir(
        &self,
        user: &UserName,
        server: &ServerAddr,
    ) -> Result<AccountDir, KeyringError> {
        let dir = self.account_path(user, server);
        create_private_dir(&dir)?;
        self.restrict_to(&dir)?;
        Ok(AccountDir { dir })
    }

    /// The servers on which this keyring registered `user` (folders of
    /// that user, in any letter case, that hold `account.toml`), other
    /// than `server`; spelt as their folders are named, sorted. Nothing is
    /// checked beyond the names, which may hold anything a file name can.
    pub fn registered_elsewhere(
        &self,
        user: &UserName,
        server: &ServerAddr,
    ) -> Result<Vec<String>, KeyringError> {
        let accounts = self.dir.join(ACCOUNTS);
        let entries = match std::fs::read_dir(&accounts) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(KeyringError::io(&accounts, e)),
        };
        let here = server_folder_part(server);
        let mut servers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| KeyringError::io(&accounts, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((owner, server)) = name.split_once('@') else {
                continue;
            };
            if user.is(owner) && server != here && entry.path().join(REGISTRATION).is_file() {
                servers.push(server.to_owned());
            }
        }
        servers.sort();
        Ok(servers)
    }

    /// The pinned server certificates.
    pub fn known_servers(&self) -> KnownServers {
        KnownServers::new(&self.dir)
    }

    /// Where the folder of `user` on `server` is: both in lower case.
    fn account_path(&self, user: &UserName, server: &ServerAddr) -> PathBuf {
        self.dir.join(ACCOUNTS).join(format!(
            "{}@{}",
            user.canonical(),
            server_folder_part(server)
        ))
    }

    /// Make the config directory, `accounts/` and `dir` owner-only where
    /// they are not.
    fn restrict_to(&self, dir: &Path) -> Result<(), KeyringError> {
        for folder in [&self.dir, &self.dir.join(ACCOUNTS), dir] {
            restrict(folder, FOLDER_MODE)?;
        }
        Ok(())
    }
}

/// The folder of every account, in the config directory.
const ACCOUNTS: &str = "accounts";

/// The file whose presence says the server confirmed the registration.
const REGISTRATION: &str = "account.toml";

/// `server` as account folders name it: in lower case.
fn server_folder_part(server: &ServerAddr) -> String {
    server.to_string().to_ascii_lowercase()
}

/// One account's folder, not locked. Reading needs no lock, as every file
/// is replaced atomically; changing anything needs [`AccountDir::lock`].
#[derive(Debug, Clone)]
pub struct AccountDir {
    dir: PathBuf,
}

impl AccountDir {
    /// Lock the account against other msgr processes, waiting for them,
    /// until the returned value is dropped.
    pub fn lock(&self) -> Result<Account, KeyringError> {
        let lock = lock_exclusive(&self.dir.join("lock"))?;
        Ok(Account {
            files: self.clone(),
            _lock: lock,
        })
    }

    /// The account's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the private key file.
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity.pem")
    }

    /// Whether a private key is stored.
    pub fn has_identity(&self) -> bool {
        self.identity_path().exists()
    }

    /// Path of a new private key that `msgr rotate` made and the server
    /// may not have taken yet.
    pub fn pending_identity_path(&self) -> PathBuf {
        self.dir.join("identity.next.pem")
    }

    /// The new private key of an unfinished rotation, if there is one
    /// (refused if others could read it; encrypted ones still encrypted).
    pub fn load_pending_identity(&self) -> Result<Option<StoredKey>, KeyringError> {
        let path = self.pending_identity_path();
        let Some(pem) = read_optional(&path)? else {
            return Ok(None);
        };
        check_private(&path)?;
        let pem = String::from_utf8(pem).map_err(|e| KeyringError::corrupt(&path, e))?;
        identity::parse(&path, pem).map(Some)
    }

    /// Whether the server confirmed this account's registration.
    pub fn is_registered(&self) -> bool {
        self.dir.join(REGISTRATION).exists()
    }

    /// Load the private key, refusing a file others could read; an
    /// encrypted key is returned still encrypted.
    pub fn load_identity(&self) -> Result<StoredKey, KeyringError> {
        let path = self.identity_path();
        check_private(&path)?;
        let pem = std::fs::read_to_string(&path).map_err(|e| KeyringError::io(&path, e))?;
        identity::parse(&path, pem)
    }

    /// Whether the stored private key is protected by a passphrase.
    pub fn identity_is_encrypted(&self) -> Result<bool, KeyringError> {
        Ok(matches!(self.load_identity()?, StoredKey::Encrypted(_)))
    }

    /// What the server confirmed at registration, if it did.
    pub fn registration(&self) -> Result<Option<Registration>, KeyringError> {
        self.read_toml(REGISTRATION)
    }

    /// The stored session, if any.
    pub fn load_session(&self) -> Result<Option<Session>, KeyringError> {
        let record: Option<SessionRecord> = self.read_toml("session.toml")?;
        let path = self.dir.join("session.toml");
        record
            .map(|r| {
                r.into_session()
                    .map_err(|detail| KeyringError::corrupt(&path, detail))
            })
            .transpose()
    }

    /// The account's signed prekeys (none before the first is made).
    pub fn load_prekeys(&self) -> Result<Prekeys, KeyringError> {
        let path = self.dir.join("prekeys.toml");
        if path.exists() {
            check_private(&path)?;
        }
        let file: Option<PrekeysFile> = self.read_toml("prekeys.toml")?;
        file.unwrap_or_default()
            .into_prekeys()
            .map_err(|detail| KeyringError::corrupt(&path, detail))
    }

    /// The pinned key of `name`, if pinned.
    pub fn contact(&self, name: &UserName) -> Result<Option<Contact>, KeyringError> {
        let path = self.dir.join("contacts.toml");
        let contacts = self.contacts()?;
        contacts
            .get(&name.canonical())
            .map(|record| {
                record
                    .to_contact()
                    .map_err(|detail| KeyringError::corrupt(&path, detail))
            })
            .transpose()
    }

    /// Every pinned contact, ordered by case-folded name.
    pub fn all_contacts(&self) -> Result<Vec<Contact>, KeyringError> {
        let path = self.dir.join("contacts.toml");
        self.contacts()?
            .values()
            .map(|record| {
                record
                    .to_contact()
                    .map_err(|detail| KeyringError::corrupt(&path, detail))
            })
            .collect()
    }

    fn contacts(&self) -> Result<BTreeMap<String, ContactRecord>, KeyringError> {
        Ok(self.read_toml("contacts.toml")?.unwrap_or_default())
    }

    /// Ids (as written by [`seen_key`]) of messages already shown, noting
    /// how many were sent before `expired_before` (seconds since the
    /// epoch).
    pub fn load_seen(&self, expired_before: u64) -> Result<SeenIds, KeyringError> {
        let mut seen = SeenIds::default();
        for line in self.seen_lines()? {
            let (key, sent_at) = seen_line(&line);
            seen.expired += usize::from(sent_at.is_some_and(|at| at < expired_before));
            seen.known.insert(key.to_owned());
        }
        Ok(seen)
    }

    /// The complete lines of `seen.txt` (a crash may leave a fragment).
    fn seen_lines(&self) -> Result<Vec<String>, KeyringError> {
        let path = self.dir.join("seen.txt");
        let Some(bytes) = read_optional(&path)? else {
            return Ok(Vec::new());
        };
        let complete = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(&[][..], |end| &bytes[..=end]);
        let text = std::str::from_utf8(complete).map_err(|e| KeyringError::corrupt(&path, e))?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    fn read_toml<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, KeyringError> {
        read_toml(&self.dir.join(name))
    }
}

/// One account's folder, locked against other msgr processes: the only way
/// to change its files. It reads like an [`AccountDir`].
#[derive(Debug)]
pub struct Account {
    files: AccountDir,
    /// Held for the lifetime of this value; closing the file unlocks.
    _lock: File,
}

impl std::ops::Deref for Account {
    type Target = AccountDir;

    fn deref(&self) -> &AccountDir {
        &self.files
    }
}

impl Account {
    /// Store the private key (mode 0600), encrypted under `passphrase` if
    /// one is given.
    pub fn save_identity(
        &self,
        key: &PrivateKey,
        passphrase: Option<&[u8]>,
    ) -> Result<(), KeyringError> {
        save_key(&self.identity_path(), key, passphrase)
    }

    /// Store a new private key for a rotation (mode 0600), encrypted
    /// under `passphrase` if one is given, beside the current one.
    pub fn save_pending_identity(
        &self,
        key: &PrivateKey,
        passphrase: Option<&[u8]>,
    ) -> Result<(), KeyringError> {
        save_key(&self.pending_identity_path(), key, passphrase)
    }

    /// The server took the rotation: the new private key replaces the old
    /// one, and `account.toml` records the fingerprints.
    pub fn finish_rotation(&self, old: &str, new: &str) -> Result<(), KeyringError> {
        rename_durably(&self.pending_identity_path(), &self.identity_path())?;
        let path = self.dir.join(REGISTRATION);
        let mut registration = self
            .registration()?
            .ok_or_else(|| KeyringError::corrupt(&path, "it is missing"))?;
        if registration.fingerprint != new {
            registration.previous.push(old.to_owned());
            registration.fingerprint = new.to_owned();
        }
        self.write_toml(REGISTRATION, &registration)
    }

    /// Delete a private key the server never accepted.
    pub fn remove_identity(&self) -> Result<(), KeyringError> {
        let path = self.identity_path();
        std::fs::remove_file(&path).map_err(|e| KeyringError::io(&path, e))
    }

    /// Record that the server confirmed the registration.
    pub fn mark_registered(&self, user: &UserName, fingerprint: &str) -> Result<(), KeyringError> {
        let record = Registration {
            user: user.clone(),
            fingerprint: fingerprint.to_owned(),
            previous: Vec::new(),
        };
        self.write_toml(REGISTRATION, &record)
    }

    /// Store a session token.
    pub fn save_session(&self, session: &Session) -> Result<(), KeyringError> {
        self.write_toml("session.toml", &SessionRecord::from_session(session))
    }

    /// Forget the session token, if there is one.
    pub fn remove_session(&self) -> Result<(), KeyringError> {
        remove_optional(&self.dir.join("session.toml"))
    }

    /// Store the account's signed prekeys.
    pub fn save_prekeys(&self, prekeys: &Prekeys) -> Result<(), KeyringError> {
        let path = self.dir.join("prekeys.toml");
        let file = PrekeysFile::from_prekeys(prekeys).map_err(|source| {
            KeyringError::corrupt(&path, format!("cannot encode a prekey: {source}"))
        })?;
        self.write_toml("prekeys.toml", &file)
    }

    /// Forget the signed prekeys of a registration the server refused.
    pub fn remove_prekeys(&self) -> Result<(), KeyringError> {
        remove_optional(&self.dir.join("prekeys.toml"))
    }

    /// Pin `contact` (its key, and the signed prekey last seen for it),
    /// replacing any earlier pin of the name.
    pub fn pin_contact(&self, contact: &Contact) -> Result<(), KeyringError> {
        let mut contacts = self.contacts()?;
        contacts.insert(contact.name.canonical(), ContactRecord::new(contact));
        self.write_toml("contacts.toml", &contacts)
    }

    /// Record the ids added to `seen` since it was loaded (one append,
    /// one fsync).
    pub fn save_seen(&self, seen: &SeenIds) -> Result<(), KeyringError> {
        if seen.added.is_empty() {
            return Ok(());
        }
        let mut lines = String::new();
        for (key, sent_at) in &seen.added {
            lines.push_str(&format!("{key} {sent_at}\n"));
        }
        Ok(append_lines(&self.dir.join("seen.txt"), lines.as_bytes())?)
    }

    /// Rewrite `seen.txt` without the ids of messages sent before
    /// `expired_before`, if `seen` (loaded with that bound) found enough of
    /// them to be worth it: a quarter of the file, and at least 64. Ids
    /// written without a send time are kept.
    pub fn prune_seen(&self, seen: &SeenIds, expired_before: u64) -> Result<(), KeyringError> {
        if seen.expired < 64 || seen.expired * 4 < seen.known.len() {
            return Ok(());
        }
        let mut kept = String::new();
        for line in self.seen_lines()? {
            if seen_line(&line).1.is_none_or(|at| at >= expired_before) {
                kept.push_str(&line);
                kept.push('\n');
            }
        }
        Ok(write_atomic(&self.dir.join("seen.txt"), kept.as_bytes())?)
    }

    fn write_toml<T: serde::Serialize>(&self, name: &str, value: &T) -> Result<(), KeyringError> {
        write_toml(&self.dir.join(name), value)
    }
}

/// Access to an account for one command: reads never wait for other msgr
/// processes, and a change takes the account's lock for just that change
/// unless the caller holds it already (so nothing locks twice).
pub trait AccountAccess {
    /// The account's files, for reading.
    fn files(&self) -> &AccountDir;

    /// Run `change` with the account locked.
    fn locked<T>(
        &self,
        change: impl FnOnce(&Account) -> Result<T, KeyringError>,
    ) -> Result<T, KeyringError>;
}

impl AccountAccess for AccountDir {
    fn files(&self) -> &AccountDir {
        self
    }

    fn locked<T>(
        &self,
        change: impl FnOnce(&Account) -> Result<T, KeyringError>,
    ) -> Result<T, KeyringError> {
        change(&self.lock()?)
    }
}

impl AccountAccess for Account {
    fn files(&self) -> &AccountDir {
        self
    }

    fn locked<T>(
        &self,
        change: impl FnOnce(&Account) -> Result<T, KeyringError>,
    ) -> Result<T, KeyringError> {
        change(self)
    }
}

/// The replay guard: ids of messages already shown, which of them were
/// added since loading with their send times (what [`Account::save_seen`]
/// appends), and how many had expired when loaded.
#[derive(Debug, Default)]
pub struct SeenIds {
    known: HashSet<String>,
    added: Vec<(String, u64)>,
    expired: usize,
}

impl SeenIds {
    /// Whether the message with this [`seen_key`] was shown already.
    pub fn contains(&self, key: &str) -> bool {
        self.known.contains(key)
    }

    /// Remember a message sent at `sent_at` (seconds since the epoch) as
    /// shown.
    pub fn insert(&mut self, key: String, sent_at: u64) {
        if self.known.insert(key.clone()) {
            self.added.push((key, sent_at));
        }
    }
}

/// A `seen.txt` line's [`seen_key`] and send time (absent in lines written
/// before send times were).
fn seen_line(line: &str) -> (&str, Option<u64>) {
    match line.rsplit_once(' ') {
        Some((key, sent_at)) if key.contains(' ') => (key, sent_at.parse().ok()),
        _ => (line, None),
    }
}

/// The replay-guard key of a message: sender (case-folded) and message id
/// (lowercase hex).
pub fn seen_key(sender: &UserName, message_id_hex: &str) -> String {
    format!("{} {message_id_hex}", sender.canonical())
}

/// Write `key` to `path` as PKCS#8 PEM (mode 0600), encrypted under
/// `passphrase` if one is given.
fn save_key(path: &Path, key: &PrivateKey, passphrase: Option<&[u8]>) -> Result<(), KeyringError> {
    let pem = identity::encode(key, passphrase).map_err(|source| KeyringError::BadIdentity {
        path: path.to_owned(),
        source,
    })?;
    Ok(write_atomic(path, pem.as_bytes())?)
}

/// Delete `path` if it exists.
fn remove_optional(path: &Path) -> Result<(), KeyringError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KeyringError::io(path, e)),
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, KeyringError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    let text = String::from_utf8(bytes).map_err(|e| KeyringError::corrupt(path, e))?;
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| KeyringError::corrupt(path, e.message()))
}

fn write_toml<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), KeyringError> {
    let text = toml::to_string(value).expect("keyring records always serialise");
    Ok(write_atomic(path, text.as_bytes())?)
}

#[cfg(test)]
mod tests;
