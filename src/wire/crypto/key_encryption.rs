//! Passphrase encryption of a PKCS#8 private key: `EncryptedPrivateKeyInfo`
//! with PBES2 (RFC 8018), as `openssl pkcs8 -topk8` writes and reads it.
//!
//! msgr writes scrypt (RFC 7914) with AES-256-CBC; it reads scrypt or
//! PBKDF2 with HMAC-SHA-256/384/512 (OpenSSL's default) and AES-CBC of any
//! key size, so a key re-encrypted with `openssl pkcs8` still opens. The
//! ASN.1 is the `pkcs8`/`pkcs5` crates' types; every computation is
//! aws-lc's — scrypt through its C interface, as aws-lc-rs offers none.

use std::num::NonZeroU32;

use aws_lc_rs::cipher::{
    AES_128, AES_128_KEY_LEN, AES_192, AES_192_KEY_LEN, AES_256, AES_256_KEY_LEN, Algorithm,
    DecryptionContext, EncryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey,
    UnboundCipherKey,
};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::pbkdf2;
use pkcs8::der::{Decode, Encode};
use pkcs8::pkcs5::EncryptionScheme;
use pkcs8::pkcs5::pbes2::{self, Kdf, Pbkdf2Prf, ScryptParams};
use pkcs8::{EncryptedPrivateKeyInfo, PrivateKeyInfo};
use thiserror::Error;
use zeroize::Zeroizing;

use super::random_bytes;

/// scrypt cost for new keys: N = 2^14, r = 8, p = 5 — one of OWASP's
/// minimum settings, about a fifth of a second, and within the 32 MiB that
/// OpenSSL allows scrypt by default, so `openssl pkcs8` can open the key.
const SCRYPT_N: u64 = 1 << 14;
const SCRYPT_R: u16 = 8;
const SCRYPT_P: u16 = 5;

/// The most memory scrypt may use while opening a key: OpenSSL's default
/// limit, which also bounds what a doctored key file can make it allocate.
const SCRYPT_MAX_MEMORY: usize = 32 << 20;

/// Why an encrypted key did not open.
#[derive(Debug, Error)]
pub enum KeyDecryptionError {
    /// The passphrase is wrong: the padding, or what it leaves, is no
    /// `PrivateKeyInfo`.
    #[error("the passphrase is wrong")]
    WrongPassphrase,
    /// Not an `EncryptedPrivateKeyInfo` msgr can read.
    #[error("{0}")]
    Unreadable(String),
}

/// `plain`, a PKCS#8 `PrivateKeyInfo` in DER, encrypted under `passphrase`
/// as an `EncryptedPrivateKeyInfo` in DER.
pub fn encrypt(plain: &[u8], passphrase: &[u8]) -> Vec<u8> {
    let salt: [u8; 16] = random_bytes();
    let iv: [u8; 16] = random_bytes();
    let kdf = ScryptParams {
        salt: &salt,
        cost_parameter: SCRYPT_N,
        block_size: SCRYPT_R,
        parallelization: SCRYPT_P,
        key_length: None,
    };
    let mut key = Zeroizing::new([0u8; AES_256_KEY_LEN]);
    scrypt(passphrase, &kdf, key.as_mut()).expect("the scrypt constants are valid");
    let cipher = UnboundCipherKey::new(&AES_256, key.as_ref())
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .expect("a 32-byte key is an AES-256 key");
    let mut data = plain.to_vec();
    cipher
        .less_safe_encrypt(&mut data, EncryptionContext::Iv128(FixedLength::from(iv)))
        .expect("AES-CBC encrypts any length with padding");
    let info = EncryptedPrivateKeyInfo {
        encryption_algorithm: EncryptionScheme::Pbes2(pbes2::Parameters {
            kdf: Kdf::Scrypt(kdf),
            encryption: pbes2::EncryptionScheme::Aes256Cbc { iv: &iv },
        }),
        encrypted_data: &data,
    };
    info.to_der().expect("the structure is well formed")
}

/// The `PrivateKeyInfo` DER inside `encrypted`, an `EncryptedPrivateKeyInfo`
/// in DER, opened with `passphrase`.
///
/// CBC has no integrity check: a wrong passphrase usually leaves bad
/// padding, but about one time in 256 the padding happens to be valid. So
/// the result must also read as a `PrivateKeyInfo`, or the passphrase is
/// taken to be wrong.
pub fn decrypt(
    encrypted: &[u8],
    passphrase: &[u8],
) -> Result<Zeroizing<Vec<u8>>, KeyDecryptionError> {
    let unreadable =
        |what: &dyn std::fmt::Display| KeyDecryptionError::Unreadable(what.to_string());
    let info = EncryptedPrivateKeyInfo::from_der(encrypted).map_err(|e| unreadable(&e))?;
    let EncryptionScheme::Pbes2(params) = info.encryption_algorithm else {
        return Err(unsupported(&"PBES1"));
    };
    let (algorithm, key_len, iv) = cipher_of(&params.encryption)?;
    let mut key = Zeroizing::new(vec![0u8; key_len]);
    derive_key(passphrase, &params.kdf, &mut key)?;
    let cipher = UnboundCipherKey::new(algorithm, &key)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| unreadable(&"its cipher key cannot be used"))?;
    let mut data = Zeroizing::new(info.encrypted_data.to_vec());
    let plain_len = cipher
        .decrypt(&mut data, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| KeyDecryptionError::WrongPassphrase)?
        .len();
    data.truncate(plain_len);
    PrivateKeyInfo::from_der(&data).map_err(|_| KeyDecryptionError::WrongPassphrase)?;
    Ok(data)
}

/// The AES-CBC cipher, its key length and the IV a PBES2 scheme names.
fn cipher_of<'a>(
    scheme: &pbes2::EncryptionScheme<'a>,
) -> Result<(&'static Algorithm, usize, &'a [u8; 16]), KeyDecryptionError> {
    match scheme {
        pbes2::EncryptionScheme::Aes128Cbc { iv } => Ok((&AES_128, AES_128_KEY_LEN, iv)),
        pbes2::EncryptionScheme::Aes192Cbc { iv } => Ok((&AES_192, AES_192_KEY_LEN, iv)),
        pbes2::EncryptionScheme::Aes256Cbc { iv } => Ok((&AES_256, AES_256_KEY_LEN, iv)),
        other => Err(unsupported(&other.oid())),
    }
}

/// A scheme msgr does not implement, named by `what`.
fn unsupported(what: &dyn std::fmt::Display) -> KeyDecryptionError {
    KeyDecryptionError::Unreadable(format!(
        "it is encrypted with {what}, which msgr does not read; re-encrypt it with `openssl pkcs8 -topk8 -scrypt`"
    ))
}

/// Fill `key` from `passphrase` with the PBES2 key derivation `kdf`.
fn derive_key(passphrase: &[u8], kdf: &Kdf<'_>, key: &mut [u8]) -> Result<(), KeyDecryptionError> {
    match kdf {
        Kdf::Scrypt(params) => scrypt(passphrase, params, key),
        Kdf::Pbkdf2(params) => {
            let prf = match params.prf {
                Pbkdf2Prf::HmacWithSha256 => pbkdf2::PBKDF2_HMAC_SHA256,
                Pbkdf2Prf::HmacWithSha384 => pbkdf2::PBKDF2_HMAC_SHA384,
                Pbkdf2Prf::HmacWithSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
                other => return Err(unsupported(&other.oid())),
            };
            let iterations = NonZeroU32::new(params.iteration_count).ok_or_else(|| {
                KeyDecryptionError::Unreadable("its PBKDF2 iteration count is zero".into())
            })?;
            pbkdf2::derive(prf, iterations, params.salt, passphrase, key);
            Ok(())
        }
        other => Err(unsupported(&other.oid())),
    }
}

/// scrypt (RFC 7914) of `passphrase` with `params` into `key`, by aws-lc.
/// Parameters aws-lc refuses (N not a power of two, over
/// [`SCRYPT_MAX_MEMORY`]) make the key unreadable.
fn scrypt(
    passphrase: &[u8],
    params: &ScryptParams<'_>,
    key: &mut [u8],
) -> Result<(), KeyDecryptionError> {
    // SAFETY: every pointer comes from a live slice and is passed with that
    // slice's length; aws-lc reads the passphrase and salt, writes exactly
    // `key.len()` bytes of `key`, and keeps none of them.
    let ok = unsafe {
        aws_lc_sys::EVP_PBE_scrypt(
            passphrase.as_ptr().cast(),
            passphrase.len(),
            params.salt.as_ptr(),
            params.salt.len(),
            params.cost_parameter,
            u64::from(params.block_size),
            u64::from(params.parallelization),
            SCRYPT_MAX_MEMORY,
            key.as_mut_ptr(),
            key.len(),
        )
    };
    if ok == 1 {
        Ok(())
    } else {
        Err(KeyDecryptionError::Unreadable(format!(
            "its scrypt parameters (N = {}, r = {}, p = {}) are invalid or need more than {} MiB",
            params.cost_parameter,
            params.block_size,
            params.parallelization,
            SCRYPT_MAX_MEMORY >> 20
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 section 12's second scrypt test vector: a known answer, so
    /// the call into aws-lc is checked against the specification.
    #[test]
    fn scrypt_matches_rfc_7914() {
        let params = ScryptParams {
            salt: b"NaCl",
            cost_parameter: 1024,
            block_size: 8,
            parallelization: 16,
            key_length: None,
        };
        let mut key = [0u8; 64];
        scrypt(b"password", &params, &mut key).unwrap();
        assert_eq!(
            crate::wire::protocol::hex(&key),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    #[test]
    fn a_key_opens_with_its_passphrase_only() {
        let plain = crate::wire::crypto::test_keys()[0].to_pkcs8_der();
        let sealed = encrypt(&plain, b"correct horse");
        assert_eq!(
            decrypt(&sealed, b"correct horse").unwrap().as_slice(),
            plain.as_slice()
        );
        assert!(matches!(
            decrypt(&sealed, b"battery staple"),
            Err(KeyDecryptionError::WrongPassphrase)
        ));
    }

    /// What a wrong passphrase leaves when its padding happens to be valid,
    /// about one time in 256: bytes that are no key.
    #[test]
    fn valid_padding_around_bytes_that_are_no_key_is_a_wrong_passphrase() {
        let sealed = encrypt(b"padding is valid, but this is no key", b"correct horse");
        assert!(matches!(
            decrypt(&sealed, b"correct horse"),
            Err(KeyDecryptionError::WrongPassphrase)
        ));
    }

    #[test]
    fn scrypt_asking_for_too_much_memory_is_refused_not_run() {
        let params = ScryptParams {
            salt: b"salt",
            cost_parameter: 1 << 20,
            block_size: 8,
            parallelization: 1,
            key_length: None,
        };
        let error = scrypt(b"x", &params, &mut [0u8; 32]).unwrap_err();
        assert!(
            error.to_string().contains("need more than 32 MiB"),
            "{error}"
        );
    }

    #[test]
    fn garbage_is_unreadable_not_a_wrong_passphrase() {
        assert!(matches!(
            decrypt(b"\x30\x03\x02\x01\x00", b"x"),
            Err(KeyDecryptionError::Unreadable(_))
        ));
    }
}
