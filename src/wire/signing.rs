//! Every statement an identity key signs, and nothing else. Each kind
//! starts with its own context string, so a signature made for one purpose
//! can never be presented as another: a login answer is not a registration
//! proof, an envelope signature is not a prekey. [`Statement`] values are
//! built only here, and [`crate::wire::crypto::PrivateKey::sign`] signs nothing
//! but a [`Statement`]. Byte layouts: `docs/PROTOCOL.md`, "Signed
//! statements".

#[cfg(doc)]
use crate::wire::protocol::MAX_NAME_LEN;
use crate::wire::protocol::UserName;

/// Context of the answer to a login challenge.
pub const LOGIN_CONTEXT: &[u8] = b"msgr login v2\0";
/// Context of the proof of possession sent with a registration.
pub const REGISTRATION_CONTEXT: &[u8] = b"msgr registration v2\0";
/// Context of a signed prekey (an X25519 key messages are encrypted to).
pub const PREKEY_CONTEXT: &[u8] = b"msgr signed prekey v1\0";
/// Context of a one-time prekey (an X25519 key one message is encrypted
/// to, besides the signed prekey).
pub const ONE_TIME_PREKEY_CONTEXT: &[u8] = b"msgr one-time prekey v1\0";
/// Context of a message envelope.
pub const ENVELOPE_CONTEXT: &[u8] = b"msgr envelope v2\0";
/// Context of a key rotation, signed by the old identity key and the new.
pub const ROTATION_CONTEXT: &[u8] = b"msgr key rotation v1\0";

/// Bytes of the SHA-256 digest of the server's certificate that login and
/// registration statements carry.
pub const CERTIFICATE_DIGEST_LEN: usize = 32;

/// The server certificate's SHA-256, binding a statement to one server.
pub type CertificateDigest = [u8; CERTIFICATE_DIGEST_LEN];

/// The exact bytes an identity key signs: a context string, then fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement(Vec<u8>);

impl Statement {
    /// The bytes to sign or verify.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn new(context: &[u8], capacity: usize) -> Self {
        let mut bytes = Vec::with_capacity(context.len() + capacity);
        bytes.extend_from_slice(context);
        Self(bytes)
    }

    /// Append the canonical `user`, one length byte first (the rules keep
    /// a name within [`MAX_NAME_LEN`] bytes).
    fn name(mut self, user: &UserName) -> Self {
        let name = user.canonical();
        self.0.push(name.len() as u8);
        self.0.extend_from_slice(name.as_bytes());
        self
    }

    fn bytes(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// The login answer: `user` proves to the server whose certificate has
/// `certificate` that it holds its key, for this connection's `nonce`.
pub fn login(certificate: &CertificateDigest, user: &UserName, nonce: &[u8]) -> Statement {
    Statement::new(LOGIN_CONTEXT, 32 + 33 + nonce.len())
        .bytes(certificate)
        .name(user)
        .bytes(nonce)
}

/// The registration proof: `user` asks the server whose certificate has
/// `certificate` to register the public key `public_key_der`.
pub fn registration(
    certificate: &CertificateDigest,
    user: &UserName,
    public_key_der: &[u8],
) -> Statement {
    Statement::new(REGISTRATION_CONTEXT, 32 + 33 + public_key_der.len())
        .bytes(certificate)
        .name(user)
        .bytes(public_key_der)
}

/// The two kinds of prekey, signed under different contexts so that one
/// can never be passed off as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrekeyKind {
    /// The account's medium-term prekey, replaced weekly.
    Signed,
    /// A prekey for one message, handed out once.
    OneTime,
}

/// A prekey: `user` vouches for the X25519 key `public_key` of `kind`,
/// known by `id`, made at `created_at` (seconds since the Unix epoch).
pub fn prekey(
    kind: PrekeyKind,
    user: &UserName,
    id: u32,
    created_at: u64,
    public_key: &[u8],
) -> Statement {
    let context = match kind {
        PrekeyKind::Signed => PREKEY_CONTEXT,
        PrekeyKind::OneTime => ONE_TIME_PREKEY_CONTEXT,
    };
    Statement::new(context, 33 + 12 + public_key.len())
        .name(user)
        .bytes(&id.to_be_bytes())
        .bytes(&created_at.to_be_bytes())
        .bytes(public_key)
}

/// An envelope: everything in it before the signature.
pub fn envelope(signed_part: &[u8]) -> Statement {
    Statement::new(ENVELOPE_CONTEXT, signed_part.len()).bytes(signed_part)
}

/// A key rotation: `user` replaces the identity key `old_key_der` with
/// `new_key_der` at `rotated_at` (seconds since the Unix epoch). Each key
/// is preceded by its length as two big-endian bytes.
pub fn rotation(
    user: &UserName,
    rotated_at: u64,
    old_key_der: &[u8],
    new_key_der: &[u8],
) -> Statement {
    let length = |der: &[u8]| u16::try_from(der.len()).unwrap_or(u16::MAX).to_be_bytes();
    Statement::new(
        ROTATION_CONTEXT,
        33 + 12 + old_key_der.len() + new_key_der.len(),
    )
    .name(user)
    .bytes(&rotated_at.to_be_bytes())
    .bytes(&length(old_key_der))
    .bytes(old_key_der)
    .bytes(&length(new_key_der))
    .bytes(new_key_der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::username;

    const CONTEXTS: [&[u8]; 6] = [
        LOGIN_CONTEXT,
        REGISTRATION_CONTEXT,
        PREKEY_CONTEXT,
        ONE_TIME_PREKEY_CONTEXT,
        ENVELOPE_CONTEXT,
        ROTATION_CONTEXT,
    ];

    #[test]
    fn no_context_is_a_prefix_of_another() {
        for (i, a) in CONTEXTS.iter().enumerate() {
            assert!(a.ends_with(b"\0") && a.starts_with(b"msgr "));
            for (j, b) in CONTEXTS.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{a:?} is a prefix of {b:?}");
                }
            }
        }
    }

    #[test]
    fn every_kind_of_statement_starts_with_its_own_context() {
        let digest = [7; 32];
        let kinds = [
            login(&digest, &username("Alice"), &[1; 32]),
            registration(&digest, &username("Alice"), b"key"),
            prekey(PrekeyKind::Signed, &username("Alice"), 1, 2, &[3; 32]),
            prekey(PrekeyKind::OneTime, &username("Alice"), 1, 2, &[3; 32]),
            envelope(b"MSGR"),
            rotation(&username("Alice"), 1, b"old", b"new"),
        ];
        for (statement, context) in kinds.iter().zip(CONTEXTS) {
            assert!(statement.as_bytes().starts_with(context));
        }
    }

    #[test]
    fn names_are_canonical_and_length_prefixed() {
        let digest = [0; 32];
        assert_eq!(
            login(&digest, &username("ALICE"), b"n"),
            login(&digest, &username("alice"), b"n")
        );
        assert_ne!(
            registration(&digest, &username("alice"), b"kkey"),
            registration(&digest, &username("alicek"), b"key")
        );
        let mut expected = LOGIN_CONTEXT.to_vec();
        expected.extend_from_slice(&digest);
        expected.extend_from_slice(b"\x05alice");
        expected.extend_from_slice(b"n");
        assert_eq!(
            login(&digest, &username("Alice"), b"n").as_bytes(),
            expected
        );
    }

    #[test]
    fn another_server_or_nonce_changes_the_statement() {
        let statement = login(&[1; 32], &username("alice"), &[9; 32]);
        assert_ne!(statement, login(&[2; 32], &username("alice"), &[9; 32]));
        assert_ne!(statement, login(&[1; 32], &username("alice"), &[8; 32]));
    }
}
