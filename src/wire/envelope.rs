//! The message envelope: one reader ([`parse`] and [`Parsed::open`]), one
//! writer ([`seal`]). Per message the sender makes an ephemeral X25519 key;
//! the content key comes from HKDF-SHA256 over its agreements with the
//! recipient's signed prekey and, when the server had one to hand out, a
//! one-time prekey, with the header (naming both) bound into the HKDF
//! info; the body is sealed with AES-256-GCM under that key, the header as associated
//! data; an RSA-PSS-SHA256 signature by the sender's identity key covers
//! everything before it ([`crate::wire::signing::envelope`]). Byte layout:
//! `docs/PROTOCOL.md`, "Envelope".

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
use thiserror::Error;

use crate::wire::crypto::agreement::{AgreementPublic, AgreementSecret, X25519_LEN};
use crate::wire::crypto::{CryptoError, PrivateKey, PublicKey, random_bytes};
use crate::wire::protocol::{MAX_TIME_MS, UserName};
use crate::wire::signing::{self, PrekeyKind};

/// First four bytes of every envelope.
pub const MAGIC: &[u8; 4] = b"MSGR";
/// Envelope format version written by [`seal`].
pub const FORMAT_VERSION: u8 = 3;
/// Bytes of the sender-chosen random message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Bytes of the AES-GCM authentication tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;
/// The HKDF info's prefix; the header follows it.
pub const CONTENT_KEY_INFO: &[u8] = b"msgr envelope v3 content key\0";
/// The AES-GCM nonce: all zeros, as each content key seals one body only.
const NONCE: [u8; 12] = [0; 12];

/// A sender-chosen random message id.
pub type MessageId = [u8; MESSAGE_ID_LEN];

/// Why an envelope was refused.
#[derive(Debug, Error)]
pub enum EnvelopeError {
    /// The bytes do not follow the envelope layout.
    #[error("malformed envelope: {0}")]
    Malformed(&'static str),
    /// A format version this build cannot read.
    #[error("envelope format version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The signature does not verify with the sender's key.
    #[error("the signature does not match the sender's key")]
    BadSignature,
    /// The envelope names someone else as recipient.
    #[error("the message is addressed to {0}, not to this account")]
    WrongRecipient(String),
    /// The envelope is encrypted to a prekey this keyring does not hold
    /// (a one-time prekey is deleted once its message is shown).
    #[error("the message is encrypted to {} prekey {id}, which this keyring does not hold", kind_name(*.kind))]
    UnknownPrekey {
        /// Which kind of prekey.
        kind: PrekeyKind,
        /// Its number.
        id: u32,
    },
    /// The body could not be decrypted.
    #[error("the message could not be decrypted")]
    Undecryptable,
    /// Sealing failed in a key operation.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Who sends to whom, which message, when: bound into the content key, the
/// AEAD's associated data and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Sender's user name.
    pub sender: UserName,
    /// Recipient's user name.
    pub recipient: UserName,
    /// Random id chosen by the sender; the recipient's replay guard.
    pub message_id: MessageId,
    /// Send time, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

impl Header {
    /// A header with a fresh random message id, stamped now.
    pub fn new(sender: &UserName, recipient: &UserName) -> Self {
        let sent_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            sender: sender.clone(),
            recipient: recipient.clone(),
            message_id: random_bytes(),
            sent_at_ms,
        }
    }
}

/// A prekey of the recipient, checked already against the recipient's
/// identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientPrekey {
    /// The recipient's number for it.
    pub id: u32,
    /// The X25519 public key.
    pub public_key: AgreementPublic,
}

/// The recipient's prekeys a message is encrypted to: always the signed
/// prekey, and a one-time prekey when the server had one to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientPrekeys {
    /// The signed prekey.
    pub signed: RecipientPrekey,
    /// The one-time prekey, if there was one.
    pub one_time: Option<RecipientPrekey>,
}

/// Seal `body` from `sender_key`'s holder to the holder of `prekeys`.
pub fn seal(
    header: &Header,
    body: &[u8],
    sender_key: &PrivateKey,
    prekeys: &RecipientPrekeys,
) -> Result<Vec<u8>, EnvelopeError> {
    seal_with(
        &AgreementSecret::generate()?,
        header,
        body,
        sender_key,
        prekeys,
    )
}

/// [`seal`] with the ephemeral key given (test vectors fix it).
fn seal_with(
    ephemeral: &AgreementSecret,
    header: &Header,
    body: &[u8],
    sender_key: &PrivateKey,
    prekeys: &RecipientPrekeys,
) -> Result<Vec<u8>, EnvelopeError> {
    let ciphertext_len = u32::try_from(body.len() + TAG_LEN)
        .map_err(|_| EnvelopeError::Malformed("body too large"))?;
    let mut out = Vec::with_capacity(body.len() + 600);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    for name in [&header.sender, &header.recipient] {
        out.push(name.as_str().len() as u8);
        out.extend_from_slice(name.as_str().as_bytes());
    }
    out.extend_from_slice(&header.message_id);
    out.extend_from_slice(&header.sent_at_ms.to_be_bytes());
    out.extend_from_slice(&prekeys.signed.id.to_be_bytes());
    match &prekeys.one_time {
        Some(one_time) => {
            out.push(1);
            out.extend_from_slice(&one_time.id.to_be_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&ephemeral.public_key()?);
    let header_len = out.len();
    let mut shared = ephemeral.agree(&prekeys.signed.public_key)?;
    if let Some(one_time) = &prekeys.one_time {
        shared.extend_from_slice(&ephemeral.agree(&one_time.public_key)?);
    }
    let key = content_key(&shared, &out)?;
    out.extend_from_slice(&ciphertext_len.to_be_bytes());
    let ciphertext_at = out.len();
    out.extend_from_slice(body);
    let (header_bytes, ciphertext) = out.split_at_mut(ciphertext_at);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(NONCE),
            Aad::from(&header_bytes[..header_len]),
            ciphertext,
        )
        .map_err(|_| EnvelopeError::Malformed("body too large to seal"))?;
    out.extend_from_slice(tag.as_ref());
    let signature = sender_key.sign(&signing::envelope(&out))?;
    out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    out.extend_from_slice(&signature);
    Ok(out)
}

/// The AES-256-GCM key for the envelope whose header is `header`, from the
/// X25519 results `shared` (with the signed prekey, then with the one-time
/// prekey if there is one).
fn content_key(shared: &[u8], header: &[u8]) -> Result<LessSafeKey, CryptoError> {
    let mut key = zeroize::Zeroizing::new([0u8; 32]);
    Salt::new(HKDF_SHA256, &[])
        .extract(shared)
        .expand(&[CONTENT_KEY_INFO, header], &AES_256_GCM)
        .and_then(|okm| okm.fill(key.as_mut()))
        .map_err(|_| CryptoError::Failed)?;
    let key = UnboundKey::new(&AES_256_GCM, key.as_ref()).map_err(|_| CryptoError::Failed)?;
    Ok(LessSafeKey::new(key))
}

/// An envelope split into its fields, not yet verified.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The decoded header (unauthenticated until [`Parsed::open`]).
    pub header: Header,
    /// The recipient's signed prekey it is encrypted to.
    pub signed_prekey_id: u32,
    /// The recipient's one-time prekey it is encrypted to, if any.
    pub one_time_prekey_id: Option<u32>,
    ephemeral: AgreementPublic,
    header_bytes: &'a [u8],
    ciphertext: &'a [u8],
    signed: &'a [u8],
    signature: &'a [u8],
}

/// Split an envelope into its fields; checks layout and names only.
pub fn parse(bytes: &[u8]) -> Result<Parsed<'_>, EnvelopeError> {
    let mut reader = Reader { bytes, pos: 0 };
    if reader.take(MAGIC.len())? != MAGIC {
        return Err(EnvelopeError::Malformed("missing MSGR magic"));
    }
    let version = reader.take(1)?[0];
    if version != FORMAT_VERSION {
        return Err(EnvelopeError::UnsupportedVersion(version));
    }
    let sender = reader.name()?;
    let recipient = reader.name()?;
    let message_id = reader.array()?;
    let sent_at_ms = u64::from_be_bytes(reader.array()?);
    if sent_at_ms > MAX_TIME_MS {
        return Err(EnvelopeError::Malformed("send time after the year 9999"));
    }
    let signed_prekey_id = u32::from_be_bytes(reader.array()?);
    let one_time_prekey_id = match reader.take(1)?[0] {
        0 => None,
        1 => Some(u32::from_be_bytes(reader.array()?)),
        _ => {
            return Err(EnvelopeError::Malformed(
                "the one-time prekey flag is neither 0 nor 1",
            ));
        }
    };
    let ephemeral: [u8; X25519_LEN] = reader.array()?;
    let header_end = reader.pos;
    let ciphertext_len = u32::from_be_bytes(reader.array()?) as usize;
    if ciphertext_len < TAG_LEN {
        return Err(EnvelopeError::Malformed("ciphertext shorter than its tag"));
    }
    let ciphertext = reader.take(ciphertext_len)?;
    let signed_end = reader.pos;
    let signature_len = u16::from_be_bytes(reader.array()?) as usize;
    let signature = reader.take(signature_len)?;
    if reader.pos != bytes.len() {
        return Err(EnvelopeError::Malformed("trailing bytes"));
    }
    Ok(Parsed {
        header: Header {
            sender,
            recipient,
            message_id,
            sent_at_ms,
        },
        signed_prekey_id,
        one_time_prekey_id,
        ephemeral,
        header_bytes: &bytes[..header_end],
        ciphertext,
        signed: &bytes[..signed_end],
        signature,
    })
}

impl<'a> Parsed<'a> {
    /// Whether `sender_key` signed this envelope. Servers check this
    /// before queueing.
    pub fn is_signed_by(&self, sender_key: &PublicKey) -> bool {
        sender_key.verify(&signing::envelope(self.signed), self.signature)
    }

    /// The envelope as signed by `sender_key`, ready to open, if it is.
    pub fn verify(&self, sender_key: &PublicKey) -> Result<Signed<'_, 'a>, EnvelopeError> {
        match self.is_signed_by(sender_key) {
            true => Ok(Signed(self)),
            false => Err(EnvelopeError::BadSignature),
        }
    }

    /// Verify the signature with the sender's key, then open as
    /// [`Signed::open`] does.
    pub fn open<'k>(
        &self,
        me: &UserName,
        sender_key: &PublicKey,
        prekeys: impl Fn(PrekeyKind, u32) -> Option<&'k AgreementSecret>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        self.verify(sender_key)?.open(me, prekeys)
    }
}

/// An envelope whose signature was checked with its sender's key
/// ([`Parsed::verify`]): only such an envelope is opened.
pub struct Signed<'p, 'a>(&'p Parsed<'a>);

impl Signed<'_, '_> {
    /// Check that `me` is the recipient, then decrypt the body with the
    /// private prekeys `prekeys` finds for the kinds and numbers the
    /// envelope names.
    pub fn open<'k>(
        &self,
        me: &UserName,
        prekeys: impl Fn(PrekeyKind, u32) -> Option<&'k AgreementSecret>,
    ) -> Result<Vec<u8>, EnvelopeError> {
        let envelope = self.0;
        if !me.is(envelope.header.recipient.as_str()) {
            return Err(EnvelopeError::WrongRecipient(
                envelope.header.recipient.to_string(),
            ));
        }
        let mut shared = zeroize::Zeroizing::new(Vec::with_capacity(2 * X25519_LEN));
        let named = [
            Some((PrekeyKind::Signed, envelope.signed_prekey_id)),
            envelope
                .one_time_prekey_id
                .map(|id| (PrekeyKind::OneTime, id)),
        ];
        for (kind, id) in named.into_iter().flatten() {
            let prekey = prekeys(kind, id).ok_or(EnvelopeError::UnknownPrekey { kind, id })?;
            let agreed = prekey
                .agree(&envelope.ephemeral)
                .map_err(|_| EnvelopeError::Undecryptable)?;
            shared.extend_from_slice(&agreed);
        }
        let key = content_key(&shared, envelope.header_bytes)
            .map_err(|_| EnvelopeError::Undecryptable)?;
        let mut body = envelope.ciphertext.to_vec();
        let len = key
            .open_in_place(
                Nonce::assume_unique_for_key(NONCE),
                Aad::from(envelope.header_bytes),
                &mut body,
            )
            .map_err(|_| EnvelopeError::Undecryptable)?
            .len();
        body.truncate(len);
        Ok(body)
    }
}

/// How a person calls a prekey of `kind`.
fn kind_name(kind: PrekeyKind) -> &'static str {
    match kind {
        PrekeyKind::Signed => "signed",
        PrekeyKind::OneTime => "one-time",
    }
}

/// Bounds-checked cursor over the envelope bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], EnvelopeError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(EnvelopeError::Malformed("truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EnvelopeError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }

    fn name(&mut self) -> Result<UserName, EnvelopeError> {
        let len = self.take(1)?[0] as usize;
        let raw = self.take(len)?;
        let name =
            std::str::from_utf8(raw).map_err(|_| EnvelopeError::Malformed("name is not UTF-8"))?;
        name.parse()
            .map_err(|_| EnvelopeError::Malformed("invalid user name"))
    }
}

#[cfg(test)]
mod tests;
