//! The private key file, `identity.pem`: unencrypted PKCS#8 PEM
//! (`BEGIN PRIVATE KEY`) by default, or with a passphrase encrypted PKCS#8
//! (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 with scrypt and AES-256-CBC; see
//! [`key_encryption`]), as OpenSSL writes and reads with `openssl pkcs8`.

use std::path::{Path, PathBuf};

use pkcs8::der::pem::{self, LineEnding};
use zeroize::Zeroizing;

use super::KeyringError;
use crate::wire::crypto::key_encryption::{self, KeyDecryptionError};
use crate::wire::crypto::{CryptoError, PrivateKey};

/// PEM label of an encrypted key.
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// The private key as stored: usable at once, or waiting for a passphrase.
#[derive(Debug)]
pub enum StoredKey {
    /// An unencrypted key.
    Plain(PrivateKey),
    /// A passphrase-protected key.
    Encrypted(EncryptedKey),
}

/// A passphrase-protected private key, not yet decrypted.
#[derive(Debug)]
pub struct EncryptedKey {
    path: PathBuf,
    pem: String,
}

impl EncryptedKey {
    /// The key file, for prompts and messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decrypt with `passphrase`; a wrong passphrase is
    /// [`KeyringError::WrongPassphrase`].
    pub fn decrypt(&self, passphrase: &[u8]) -> Result<PrivateKey, KeyringError> {
        let wrong = || KeyringError::WrongPassphrase {
            path: self.path.clone(),
        };
        let (_, der) = pem::decode_vec(self.pem.as_bytes())
            .map_err(|e| KeyringError::corrupt(&self.path, e))?;
        let plain = key_encryption::decrypt(&der, passphrase).map_err(|e| match e {
            KeyDecryptionError::WrongPassphrase => wrong(),
            KeyDecryptionError::Unreadable(why) => KeyringError::corrupt(&self.path, why),
        })?;
        // It opened as a PrivateKeyInfo, so the passphrase was right: a key
        // that still cannot be used is one msgr does not take.
        PrivateKey::from_pkcs8_der(&plain).map_err(|source| KeyringError::BadIdentity {
            path: self.path.clone(),
            source,
        })
    }
}

/// Understand the contents of the key file at `path`.
pub(super) fn parse(path: &Path, pem: String) -> Result<StoredKey, KeyringError> {
    if pem
        .trim_start()
        .starts_with(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))
    {
        return Ok(StoredKey::Encrypted(EncryptedKey {
            path: path.to_owned(),
            pem,
        }));
    }
    let pem = Zeroizing::new(pem);
    PrivateKey::from_pkcs8_pem(&pem)
        .map(StoredKey::Plain)
        .map_err(|source| KeyringError::BadIdentity {
            path: path.to_owned(),
            source,
        })
}

/// PEM for `key`, encrypted under `passphrase` if one is given.
pub(super) fn encode(
    key: &PrivateKey,
    passphrase: Option<&[u8]>,
) -> Result<Zeroizing<String>, CryptoError> {
    let Some(passphrase) = passphrase else {
        return key.to_pkcs8_pem();
    };
    let encrypted = key_encryption::encrypt(&key.to_pkcs8_der(), passphrase);
    pem::encode_string(ENCRYPTED_LABEL, LineEnding::LF, &encrypted)
        .map(Zeroizing::new)
        .map_err(|e| CryptoError::BadKey(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::crypto::test_keys;

    #[test]
    fn encrypted_keys_open_only_with_their_passphrase() {
        let key = &test_keys()[0];
        let pem = encode(key, Some(b"correct horse")).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let StoredKey::Encrypted(stored) = parse(Path::new("k"), pem.to_string()).unwrap() else {
            panic!("an encrypted key was expected");
        };
        assert!(matches!(
            stored.decrypt(b"battery staple"),
            Err(KeyringError::WrongPassphrase { .. })
        ));
        let opened = stored.decrypt(b"correct horse").unwrap();
        assert_eq!(opened.public_key(), key.public_key());
    }

    #[test]
    fn an_encrypted_key_of_another_kind_is_unusable_not_a_wrong_passphrase() {
        // RFC 8410's example Ed25519 private key.
        let ed25519 = "-----BEGIN PRIVATE KEY-----\n\
            MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n\
            -----END PRIVATE KEY-----\n";
        let (_, der) = pem::decode_vec(ed25519.as_bytes()).unwrap();
        let encrypted = key_encryption::encrypt(&der, b"correct horse");
        let pem = pem::encode_string(ENCRYPTED_LABEL, LineEnding::LF, &encrypted).unwrap();
        let StoredKey::Encrypted(stored) = parse(Path::new("k"), pem).unwrap() else {
            panic!("an encrypted key was expected");
        };
        assert!(matches!(
            stored.decrypt(b"correct horse"),
            Err(KeyringError::BadIdentity { .. })
        ));
    }

    #[test]
    fn plain_keys_need_no_passphrase() {
        let key = &test_keys()[1];
        let pem = encode(key, None).unwrap();
        let StoredKey::Plain(opened) = parse(Path::new("k"), pem.to_string()).unwrap() else {
            panic!("a plain key was expected");
        };
        assert_eq!(opened.public_key(), key.public_key());
    }
}
