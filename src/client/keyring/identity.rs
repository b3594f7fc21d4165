//! The private key file, `identity.pem`: unencrypted PKCS#8 PEM
//! (`BEGIN PRIVATE KEY`) by default, or with a passphrase encrypted PKCS#8
//! (`BEGIN ENCRYPTED PRIVATE KEY`, PBES2 with scrypt and AES-256-CBC), as
//! OpenSSL writes and reads with `openssl pkcs8`.

use std::path::{Path, PathBuf};

use pkcs8::pkcs5::{pbes2, scrypt};
use pkcs8::{EncryptedPrivateKeyInfo, LineEnding, PrivateKeyInfo, SecretDocument};
use zeroize::Zeroizing;

use super::KeyringError;
use crate::wire::crypto::{CryptoError, PrivateKey, random_bytes};

/// PEM label of an encrypted key.
const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// scrypt cost: N = 2^14, r = 8, p = 5 — one of OWASP's minimum settings,
/// about a fifth of a second, and within the 32 MiB that OpenSSL allows
/// scrypt by default, so `openssl pkcs8` can open the key too.
const SCRYPT_LOG_N: u8 = 14;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 5;
/// AES-256 key length derived by scrypt.
const DERIVED_KEY_LEN: usize = 32;

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
        let (_, document) = SecretDocument::from_pem(&self.pem)
            .map_err(|e| KeyringError::corrupt(&self.path, e))?;
        let info = EncryptedPrivateKeyInfo::try_from(document.as_bytes())
            .map_err(|e| KeyringError::corrupt(&self.path, e))?;
        // A wrong passphrase shows as bad padding or, rarely, as garbage
        // that is no key: both mean the same to the user.
        let plain = info.decrypt(passphrase).map_err(|_| wrong())?;
        PrivateKey::from_pkcs8_der(plain.as_bytes()).map_err(|_| wrong())
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
    let bad = |e: &dyn std::fmt::Display| CryptoError::BadKey(e.to_string());
    let der = key.to_pkcs8_der();
    let info = PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| bad(&e))?;
    let salt: [u8; 16] = random_bytes();
    let iv: [u8; 16] = random_bytes();
    let cost = scrypt::Params::new(SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P, DERIVED_KEY_LEN)
        .expect("the scrypt constants are valid");
    let params = pbes2::Parameters::scrypt_aes256cbc(cost, &salt, &iv).map_err(|e| bad(&e))?;
    let encrypted = info
        .encrypt_with_params(params, passphrase)
        .map_err(|e| bad(&e))?;
    encrypted
        .to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| bad(&e))
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
    fn plain_keys_need_no_passphrase() {
        let key = &test_keys()[1];
        let pem = encode(key, None).unwrap();
        let StoredKey::Plain(opened) = parse(Path::new("k"), pem.to_string()).unwrap() else {
            panic!("a plain key was expected");
        };
        assert_eq!(opened.public_key(), key.public_key());
    }
}
