//! Where the passphrase of a protected key comes from: `--passphrase-file`,
//! else `MSGR_PASSPHRASE`, else `config.toml`'s `passphrase_file`, else a
//! prompt on the terminal (only when msgr runs at one, so scripts fail
//! fast with a hint instead of hanging).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::client::error::{ClientError, ClientResult};
use crate::files::open_to_others;

/// How many times a person at a terminal may try a passphrase.
pub const PROMPT_ATTEMPTS: usize = 3;

/// A passphrase; never printed, wiped on drop.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// The passphrase bytes, for the key derivation.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

/// The configured source of the passphrase.
#[derive(Debug)]
pub enum PassphraseSource {
    /// The first line of this file.
    File(PathBuf),
    /// The value of `MSGR_PASSPHRASE`.
    Environment(Passphrase),
    /// Ask on the terminal.
    Prompt,
}

impl PassphraseSource {
    /// Whether a wrong answer can be corrected by asking again.
    pub fn is_interactive(&self) -> bool {
        matches!(self, Self::Prompt)
    }

    /// The passphrase that unlocks `key_file`.
    pub fn unlock(&self, key_file: &Path) -> ClientResult<Passphrase> {
        self.get(&format!("Passphrase for {}: ", key_file.display()))
    }

    /// A new passphrase for a key about to be made; typed twice when
    /// prompted, and never empty.
    pub fn choose(&self) -> ClientResult<Passphrase> {
        let passphrase = self.get("New passphrase for the private key: ")?;
        if passphrase.expose().is_empty() {
            return Err(ClientError::EmptyPassphrase);
        }
        if self.is_interactive() {
            let again = self.get("The same passphrase again: ")?;
            if again.expose() != passphrase.expose() {
                return Err(ClientError::PassphrasesDiffer);
            }
        }
        Ok(passphrase)
    }

    fn get(&self, prompt: &str) -> ClientResult<Passphrase> {
        match self {
            Self::File(path) => read_file(path),
            Self::Environment(passphrase) => Ok(Passphrase(passphrase.0.clone())),
            Self::Prompt => ask(prompt),
        }
    }
}

/// Read `MSGR_PASSPHRASE`, if set.
pub fn from_environment() -> Option<Passphrase> {
    std::env::var("MSGR_PASSPHRASE")
        .ok()
        .map(|value| Passphrase(Zeroizing::new(value)))
}

/// The first line of `path`, without its line ending; refused if group or
/// others may read the file, as the private key it unlocks would be.
fn read_file(path: &Path) -> ClientResult<Passphrase> {
    let unreadable = |source| ClientError::PassphraseFile {
        path: path.to_owned(),
        source,
    };
    match open_to_others(path) {
        Ok(Some(mode)) => {
            return Err(ClientError::PassphraseFileOpen {
                path: path.to_owned(),
                mode,
            });
        }
        Ok(None) => {}
        Err(error) => return Err(unreadable(error.source)),
    }
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(unreadable)?);
    let line = text.lines().next().unwrap_or_default();
    Ok(Passphrase(Zeroizing::new(line.to_owned())))
}

/// Ask on the controlling terminal without echo.
fn ask(prompt: &str) -> ClientResult<Passphrase> {
    if !std::io::stdin().is_terminal() && !std::io::stderr().is_terminal() {
        return Err(ClientError::NoTerminal);
    }
    rpassword::prompt_password(prompt)
        .map(|typed| Passphrase(Zeroizing::new(typed)))
        .map_err(|_| ClientError::NoTerminal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_gives_its_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        std::fs::write(&path, "s3cret words\r\nsecond line\n").unwrap();
        let mode = |bits| std::os::unix::fs::PermissionsExt::from_mode(bits);
        std::fs::set_permissions(&path, mode(0o644)).unwrap();
        let source = PassphraseSource::File(path.clone());
        assert!(matches!(
            source.unlock(Path::new("k")),
            Err(ClientError::PassphraseFileOpen { mode: 0o644, .. })
        ));
        std::fs::set_permissions(&path, mode(0o600)).unwrap();
        assert_eq!(
            source.unlock(Path::new("k")).unwrap().expose(),
            b"s3cret words"
        );
        assert!(!source.is_interactive());
        assert_eq!(
            format!("{:?}", source.choose().unwrap()),
            "Passphrase(redacted)"
        );
    }

    #[test]
    fn an_empty_new_passphrase_is_refused() {
        let source = PassphraseSource::Environment(Passphrase(Zeroizing::new(String::new())));
        assert!(matches!(
            source.choose().unwrap_err(),
            ClientError::EmptyPassphrase
        ));
    }
}
