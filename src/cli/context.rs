//! What client commands share once the settings are resolved: the
//! validated server and account name, the keyring, the trust policy, the
//! passphrase source and the output; and opening the account, its key and
//! the connection from them. A one-shot command dials its own connection;
//! in an interactive session ([`ClientContext::keep_connection`]) every
//! command borrows the session's one connection instead ([`Lease`]), and
//! a connection the server closed meanwhile is replaced, with a notice.

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Mutex;

use crate::cli::error::AppResult;
use crate::cli::failure::{Failure, Searched};
use crate::cli::output::Output;
use crate::client::connect::Dialer;
use crate::client::directory::PinPolicy;
use crate::client::keyring::{Account, AccountDir, Keyring, KeyringError, Registration, StoredKey};
use crate::client::net::{Connection, ServerAddr};
use crate::client::passphrase::{PROMPT_ATTEMPTS, PassphraseSource};
use crate::client::settings::Settings;
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::UserName;

/// Everything a client command needs to know before doing its work.
#[derive(Debug)]
pub struct ClientContext {
    /// The server to talk to.
    pub server: ServerAddr,
    /// The account name, validated.
    pub user: UserName,
    /// The config directory.
    pub keyring: Keyring,
    /// Where results and diagnostics go.
    pub output: Output,
    dialer: Dialer,
    passphrase: PassphraseSource,
    pin_policy: PinPolicy,
    /// In an interactive session: the connection kept between commands
    /// (`None` inside while a command has it, or before the first).
    kept: Option<Mutex<Kept>>,
}

/// The connection an interactive session keeps between commands.
#[derive(Default)]
struct Kept {
    connection: Option<Connection>,
    /// Whether a connection was made before, so that making another is
    /// news to the user.
    ever: bool,
}

impl Kept {
    /// The kept connection, taken out, unless the server has closed it.
    fn take_open(&mut self) -> Option<Connection> {
        let mut connection = self.connection.take()?;
        connection.is_open().then_some(connection)
    }
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept")
            .field("connected", &self.connection.is_some())
            .finish()
    }
}

/// The connection a command talks on: dialled for it, or in an
/// interactive session lent to it, and given back to the session when
/// the lease ends.
pub struct Lease<'a> {
    connection: Option<Connection>,
    /// Where the connection goes back to, in a session.
    home: Option<&'a Mutex<Kept>>,
}

impl Lease<'_> {
    /// The connection itself, for a command that hands it on by value;
    /// [`Lease::give_back`] returns it to the session.
    pub fn take(&mut self) -> Connection {
        self.connection
            .take()
            .expect("a lease holds its connection")
    }

    /// Return a connection [`Lease::take`] took.
    pub fn give_back(&mut self, connection: Connection) {
        self.connection = Some(connection);
    }
}

impl Deref for Lease<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection
            .as_ref()
            .expect("a lease holds its connection")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection
            .as_mut()
            .expect("a lease holds its connection")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let (Some(home), Some(connection)) = (self.home, self.connection.take()) {
            home.lock().expect("not poisoned").connection = Some(connection);
        }
    }
}

impl ClientContext {
    /// Validate the settings; fails before any network work if a value is
    /// missing or malformed.
    pub fn new(settings: Settings, output: Output) -> AppResult<Self> {
        let server = settings.server.ok_or(Failure::NoServer)?;
        let server: ServerAddr = server.parse().map_err(Failure::BadServer)?;
        let user = settings.user.ok_or(Failure::NoUser)?;
        let user: UserName = user.parse().map_err(Failure::BadName)?;
        let keyring = Keyring::at(&settings.config_dir);
        let dialer = Dialer::new(
            server.clone(),
            settings.ca_cert,
            keyring.known_servers(),
            settings.timeout,
        );
        Ok(Self {
            server,
            user,
            keyring,
            output,
            dialer,
            passphrase: settings.passphrase,
            pin_policy: settings.pin_policy,
            kept: None,
        })
    }

    /// From now on, keep one connection for every command (an interactive
    /// session) instead of dialling one for each.
    pub fn keep_connection(&mut self) {
        self.kept = Some(Mutex::default());
    }

    /// The kept connection, taken out for watching the queue between
    /// commands (see [`ClientContext::keep`]); `None` if there is none, or
    /// the server closed it.
    pub fn take_kept(&self) -> Option<Connection> {
        self.kept
            .as_ref()?
            .lock()
            .expect("not poisoned")
            .take_open()
    }

    /// Keep `connection` for the next command, as if it had been kept
    /// all along.
    pub fn keep(&self, connection: Connection) {
        if let Some(kept) = &self.kept {
            let mut kept = kept.lock().expect("not poisoned");
            kept.connection = Some(connection);
            kept.ever = true;
        }
    }

    /// Drop the kept connection (it broke): the next command connects
    /// again.
    pub fn drop_connection(&self) {
        if let Some(kept) = &self.kept {
            kept.lock().expect("not poisoned").connection = None;
        }
    }

    /// This account's folder, unlocked, or the error saying this keyring
    /// does not hold the account (and which spellings of the server it
    /// does hold the user on). Every command but `register` (see
    /// [`ClientContext::new_account`]) finds the account this way, and so
    /// makes nothing, not even the config directory, for an account that
    /// is not here.
    pub fn account_dir(&self) -> AppResult<AccountDir> {
        match self.keyring.account_dir(&self.user, &self.server)? {
            Some(account) => Ok(account),
            None => Err(Failure::NotRegisteredHere(self.searched()?).into()),
        }
    }

    /// Find and lock this account's folder.
    pub fn account(&self) -> AppResult<Account> {
        Ok(self.account_dir()?.lock()?)
    }

    /// Make (if missing) and lock this account's folder: for `register`,
    /// the one command that adds an account to the keyring.
    pub fn new_account(&self) -> AppResult<Account> {
        Ok(self
            .keyring
            .create_account_dir(&self.user, &self.server)?
            .lock()?)
    }

    /// What an error saying this keyring does not hold the account tells:
    /// where it looked and what it found instead.
    fn searched(&self) -> AppResult<Searched> {
        Ok(Searched {
            user: self.user.to_string(),
            server: self.server.to_string(),
            keyring: self.keyring.dir().to_owned(),
            keyring_exists: self.keyring.exists()?,
            elsewhere: self
                .keyring
                .registered_elsewhere(&self.user, &self.server)?,
        })
    }

    /// The CA file the server is verified with, if one was given.
    pub fn ca_cert(&self) -> Option<&Path> {
        self.dialer.ca_file()
    }

    /// How this command connects to the server, for a read that must
    /// connect again after losing the connection.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// Whether `create` and `read` may pin keys on first contact.
    pub fn pin_policy(&self) -> PinPolicy {
        self.pin_policy
    }

    /// Where a new key's passphrase comes from.
    pub fn passphrase(&self) -> &PassphraseSource {
        &self.passphrase
    }

    /// What the server confirmed when this keyring registered the account,
    /// or the error saying it did not.
    pub fn registration(&self, account: &AccountDir) -> AppResult<Registration> {
        match account.registration()? {
            Some(registration) => Ok(registration),
            None => Err(Failure::NotRegisteredHere(self.searched()?).into()),
        }
    }

    /// The account's private key, unlocked with its passphrase if it has
    /// one; an authentication error saying how to get a key if there is
    /// none, or how to finish a rotation left unfinished.
    pub fn identity(&self, account: &AccountDir) -> AppResult<PrivateKey> {
        let pending = account.pending_identity_path();
        if pending.exists() {
            return Err(Failure::UnfinishedRotation { pending }.into());
        }
        self.replaced_identity(account)
    }

    /// The account's private key even while a rotation is unfinished: the
    /// key that rotation replaces.
    pub fn replaced_identity(&self, account: &AccountDir) -> AppResult<PrivateKey> {
        if !account.has_identity() {
            return Err(Failure::NoKey(self.searched()?).into());
        }
        self.unlock(account.load_identity()?)
    }

    /// `stored`, unlocked with its passphrase if it has one (asked up to
    /// three times at a terminal).
    pub fn unlock(&self, stored: StoredKey) -> AppResult<PrivateKey> {
        let encrypted = match stored {
            StoredKey::Plain(key) => return Ok(key),
            StoredKey::Encrypted(encrypted) => encrypted,
        };
        let attempts = if self.passphrase.is_interactive() {
            PROMPT_ATTEMPTS
        } else {
            1
        };
        let mut last = None;
        for _ in 0..attempts {
            let passphrase = self.passphrase.unlock(encrypted.path())?;
            match encrypted.decrypt(passphrase.expose()) {
                Ok(key) => return Ok(key),
                Err(error @ KeyringError::WrongPassphrase { .. }) => {
                    if self.passphrase.is_interactive() {
                        self.output.warning("that passphrase is wrong");
                    }
                    last = Some(error);
                }
                Err(other) => return Err(other.into()),
            }
        }
        Err(last.expect("at least one attempt was made").into())
    }

    /// The connection to the server for a command: in a session, the kept
    /// one if the server has not closed it (else a new one, with a
    /// notice); otherwise a new one, see [`ClientContext::dial`].
    pub fn connect(&self) -> AppResult<Lease<'_>> {
        let Some(home) = &self.kept else {
            return Ok(Lease {
                connection: Some(self.dial()?),
                home: None,
            });
        };
        let mut kept = home.lock().expect("not poisoned");
        let connection = match kept.take_open() {
            Some(connection) => connection,
            None => {
                if kept.ever {
                    self.output
                        .notice(&format!("connecting again to {}", self.server));
                }
                let mut connection = self.dial()?;
                // Its greeting is read now, so that anything arriving
                // later while it is kept means the server closed it.
                connection.max_envelope()?;
                kept.ever = true;
                connection
            }
        };
        Ok(Lease {
            connection: Some(connection),
            home: Some(home),
        })
    }

    /// Connect to the server under the trust policy, pinning it on first
    /// contact: its certificate (with a notice on stderr that `-q` does not
    /// hide), or that the system's roots vouch for it.
    pub fn dial(&self) -> AppResult<Connection> {
        let connected = self.dialer.dial()?;
        if let Some(fingerprint) = connected.new_pin {
            self.output.notice_even_if_quiet(&format!(
                "first connection to {}; pinned its certificate fingerprint {fingerprint} (compare it with the one the server printed at start)",
                self.server
            ));
        }
        Ok(connected.connection)
    }
}
