//! The message envelope: one reader ([`parse`] and [`Parsed::open`]), one
//! writer ([`seal`]). Hybrid encryption with a fresh AES-256-GCM content key
//! per message, wrapped to the recipient with RSA-OAEP-SHA256; the header is
//! the AEAD's associated data; an RSA-PSS-SHA256 signature by the sender
//! covers everything before it. Byte layout: `docs/PROTOCOL.md`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use rand::rngs::OsRng;
use thiserror::Error;

use crate::crypto::{CryptoError, PrivateKey, PublicKey};
use crate::protocol::{canonical_name, validate_username};

/// First four bytes of every envelope.
pub const MAGIC: &[u8; 4] = b"MSGR";
/// Envelope format version written by [`seal`].
pub const FORMAT_VERSION: u8 = 1;
/// Bytes of the sender-chosen random message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Bytes of the AES-256-GCM content key.
pub const CONTENT_KEY_LEN: usize = 32;
/// Bytes of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Bytes of the AES-GCM authentication tag at the end of the ciphertext.
pub const TAG_LEN: usize = 16;

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
    /// The content key or body could not be decrypted.
    #[error("the message could not be decrypted")]
    Undecryptable,
    /// Sealing failed in an RSA operation.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// The header: bound into the AEAD as associated data and signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Sender's user name.
    pub sender: String,
    /// Recipient's user name.
    pub recipient: String,
    /// Random id chosen by the sender; the recipient's replay guard.
    pub message_id: MessageId,
    /// Send time, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
}

impl Header {
    /// A header with a fresh random message id, stamped now.
    pub fn new(sender: &str, recipient: &str) -> Self {
        let mut message_id = [0; MESSAGE_ID_LEN];
        OsRng.fill_bytes(&mut message_id);
        let sent_at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Self {
            sender: sender.to_owned(),
            recipient: recipient.to_owned(),
            message_id,
            sent_at_ms,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        for name in [&self.sender, &self.recipient] {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(&self.message_id);
        out.extend_from_slice(&self.sent_at_ms.to_be_bytes());
    }
}

/// Seal `body` from `sender_key`'s holder to `recipient_key`'s holder.
pub fn seal(
    header: &Header,
    body: &[u8],
    sender_key: &PrivateKey,
    recipient_key: &PublicKey,
) -> Result<Vec<u8>, EnvelopeError> {
    for name in [&header.sender, &header.recipient] {
        validate_username(name).map_err(|_| EnvelopeError::Malformed("invalid user name"))?;
    }
    let mut content_key = zeroize::Zeroizing::new([0u8; CONTENT_KEY_LEN]);
    OsRng.fill_bytes(content_key.as_mut());
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);

    let mut out = Vec::with_capacity(body.len() + 1200);
    header.write(&mut out);
    let header_len = out.len();
    let wrapped = recipient_key.wrap(content_key.as_ref())?;
    let ciphertext = Aes256Gcm::new(content_key.as_ref().into())
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: body,
                aad: &out[..header_len],
            },
        )
        .map_err(|_| EnvelopeError::Malformed("body too large to seal"))?;
    let ciphertext_len =
        u32::try_from(ciphertext.len()).map_err(|_| EnvelopeError::Malformed("body too large"))?;

    out.extend_from_slice(&(wrapped.len() as u16).to_be_bytes());
    out.extend_from_slice(&wrapped);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext_len.to_be_bytes());
    out.extend_from_slice(&ciphertext);
    let signature = sender_key.sign(&out)?;
    out.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    out.extend_from_slice(&signature);
    Ok(out)
}

/// An envelope split into its fields, not yet verified.
#[derive(Debug)]
pub struct Parsed<'a> {
    /// The decoded header (unauthenticated until [`Parsed::open`]).
    pub header: Header,
    header_bytes: &'a [u8],
    wrapped_key: &'a [u8],
    nonce: &'a [u8],
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
    let message_id = reader
        .take(MESSAGE_ID_LEN)?
        .try_into()
        .expect("length checked");
    let sent_at_ms = u64::from_be_bytes(reader.take(8)?.try_into().expect("length checked"));
    let header_end = reader.pos;
    let wrapped_len = reader.u16()? as usize;
    let wrapped_key = reader.take(wrapped_len)?;
    let nonce = reader.take(NONCE_LEN)?;
    let ciphertext_len = reader.u32()? as usize;
    if ciphertext_len < TAG_LEN {
        return Err(EnvelopeError::Malformed("ciphertext shorter than its tag"));
    }
    let ciphertext = reader.take(ciphertext_len)?;
    let signed_end = reader.pos;
    let signature_len = reader.u16()? as usize;
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
        header_bytes: &bytes[..header_end],
        wrapped_key,
        nonce,
        ciphertext,
        signed: &bytes[..signed_end],
        signature,
    })
}

impl Parsed<'_> {
    /// Verify the signature with the sender's key, check that `me` is the
    /// recipient, then unwrap the content key and decrypt the body.
    pub fn open(
        &self,
        me: &str,
        my_key: &PrivateKey,
        sender_key: &PublicKey,
    ) -> Result<Vec<u8>, EnvelopeError> {
        if !sender_key.verify(self.signed, self.signature) {
            return Err(EnvelopeError::BadSignature);
        }
        if canonical_name(&self.header.recipient) != canonical_name(me) {
            return Err(EnvelopeError::WrongRecipient(self.header.recipient.clone()));
        }
        let content_key = my_key
            .unwrap(self.wrapped_key)
            .map_err(|_| EnvelopeError::Undecryptable)?;
        if content_key.len() != CONTENT_KEY_LEN {
            return Err(EnvelopeError::Undecryptable);
        }
        Aes256Gcm::new(content_key.as_slice().into())
            .decrypt(
                Nonce::from_slice(self.nonce),
                Payload {
                    msg: self.ciphertext,
                    aad: self.header_bytes,
                },
            )
            .map_err(|_| EnvelopeError::Undecryptable)
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

    fn u16(&mut self) -> Result<u16, EnvelopeError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().expect("length checked"),
        ))
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("length checked"),
        ))
    }

    fn name(&mut self) -> Result<String, EnvelopeError> {
        let len = self.take(1)?[0] as usize;
        let raw = self.take(len)?;
        let name =
            std::str::from_utf8(raw).map_err(|_| EnvelopeError::Malformed("name is not UTF-8"))?;
        validate_username(name).map_err(|_| EnvelopeError::Malformed("invalid user name"))?;
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::test_keys;

    fn sealed(body: &[u8]) -> (Header, Vec<u8>) {
        let [alice, john, _] = test_keys();
        let header = Header::new("Alice", "John");
        let envelope = seal(&header, body, alice, &john.public_key()).unwrap();
        (header, envelope)
    }

    fn open(envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let [alice, john, _] = test_keys();
        parse(envelope)?.open("John", john, &alice.public_key())
    }

    #[test]
    fn round_trip_returns_body_and_header() {
        let (header, envelope) = sealed(b"Hello John! How are you?");
        assert_eq!(parse(&envelope).unwrap().header, header);
        assert_eq!(open(&envelope).unwrap(), b"Hello John! How are you?");
    }

    #[test]
    fn empty_and_binary_bodies_round_trip() {
        for body in [&b""[..], &[0u8, 255, 128, 10][..]] {
            assert_eq!(open(&sealed(body).1).unwrap(), body);
        }
    }

    #[test]
    fn recipient_name_matches_in_any_case() {
        let [alice, john, _] = test_keys();
        let envelope = sealed(b"hi").1;
        let body = parse(&envelope)
            .unwrap()
            .open("jOHN", john, &alice.public_key());
        assert_eq!(body.unwrap(), b"hi");
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        let (_, envelope) = sealed(b"tamper with me");
        for index in 0..envelope.len() {
            let mut tampered = envelope.clone();
            tampered[index] ^= 0x01;
            assert!(
                open(&tampered).is_err(),
                "flipping byte {index} went unnoticed"
            );
        }
    }

    #[test]
    fn truncation_and_trailing_bytes_are_refused() {
        let (_, envelope) = sealed(b"short");
        for cut in 0..envelope.len() {
            assert!(parse(&envelope[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = envelope.clone();
        longer.push(0);
        assert!(matches!(
            parse(&longer),
            Err(EnvelopeError::Malformed("trailing bytes"))
        ));
    }

    #[test]
    fn another_recipient_cannot_open_it() {
        let [alice, _, carol] = test_keys();
        let envelope = sealed(b"for John").1;
        let parsed = parse(&envelope).unwrap();
        assert!(matches!(
            parsed.open("Carol", carol, &alice.public_key()),
            Err(EnvelopeError::WrongRecipient(name)) if name == "John"
        ));
    }

    #[test]
    fn a_forged_sender_fails_verification() {
        let [_, john, carol] = test_keys();
        // Carol seals a message that claims to come from Alice.
        let envelope = seal(
            &Header::new("Alice", "John"),
            b"hi",
            carol,
            &john.public_key(),
        )
        .unwrap();
        let alice_public = test_keys()[0].public_key();
        let result = parse(&envelope).unwrap().open("John", john, &alice_public);
        assert!(matches!(result, Err(EnvelopeError::BadSignature)));
    }

    #[test]
    fn re_addressed_envelope_fails_verification() {
        let [alice, john, _] = test_keys();
        let envelope = sealed(b"hi").1;
        // A server rewriting the recipient name breaks the signature.
        let mut moved = envelope.clone();
        let recipient_at = MAGIC.len() + 1 + 1 + "Alice".len() + 1;
        moved[recipient_at..recipient_at + 4].copy_from_slice(b"Jahn");
        let result = parse(&moved)
            .unwrap()
            .open("Jahn", john, &alice.public_key());
        assert!(matches!(result, Err(EnvelopeError::BadSignature)));
    }
}
