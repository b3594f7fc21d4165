//! The bodies of the fuzz targets, shared by `fuzz_targets/*.rs` (run with
//! `cargo fuzz`) and by `tests/suite/hardening/fuzz.rs` (which replays saved
//! inputs and a seeded batch of random ones under `cargo test`). Each must
//! never panic, whatever the bytes; the assertions inside are properties
//! that must hold for every input the decoders accept.

use std::sync::OnceLock;

use msgr::wire::crypto::PrivateKey;
use msgr::wire::crypto::agreement::{AgreementSecret, X25519_LEN};
use msgr::wire::envelope::{self, MAGIC, RecipientPrekey, RecipientPrekeys};
use msgr::wire::protocol::{Request, Response, UserName, decode_frame};
use msgr::wire::signing::{self, PrekeyKind};

/// Frame limit used while fuzzing: small, so both sides of the check are
/// reached often.
const MAX_FRAME: usize = 64 * 1024;

/// Decode frames from `data` as the server and the client do, parse each
/// payload as a request and as a response, and check that whatever parses
/// survives re-encoding unchanged.
pub fn frame_request(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((payload, used))) = decode_frame(rest, MAX_FRAME) {
        assert!(used > 0 && used <= rest.len());
        if let Ok(request) = Request::from_payload(payload) {
            let again = reparse(&request.to_frame(), Request::from_payload);
            assert_eq!(again, request);
        }
        if let Ok(response) = Response::from_payload(payload) {
            let again = reparse(&response.to_frame(), Response::from_payload);
            assert_eq!(again, response);
        }
        rest = &rest[used..];
    }
}

fn reparse<T, E: std::fmt::Debug>(frame: &[u8], parse: impl Fn(&[u8]) -> Result<T, E>) -> T {
    let (payload, used) = decode_frame(frame, usize::MAX)
        .expect("no limit")
        .expect("a whole frame");
    assert_eq!(used, frame.len());
    parse(payload).expect("an encoded value parses")
}

/// The fixed sender's identity key (Alice's).
pub fn alice() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::from_pkcs8_pem(include_str!("keys/alice.pem")).expect("a valid test key")
    })
}

/// John's fixed prekey, whatever its number.
pub fn john_prekey() -> &'static AgreementSecret {
    static PREKEY: OnceLock<AgreementSecret> = OnceLock::new();
    PREKEY.get_or_init(|| AgreementSecret::from_bytes(&[0x4a; X25519_LEN]).expect("a valid key"))
}

/// John's one-time prekey number 2.
pub fn john_one_time() -> &'static AgreementSecret {
    static PREKEY: OnceLock<AgreementSecret> = OnceLock::new();
    PREKEY.get_or_init(|| AgreementSecret::from_bytes(&[0x4b; X25519_LEN]).expect("a valid key"))
}

/// John's prekeys as a sender addresses them.
pub fn to_john() -> RecipientPrekeys {
    RecipientPrekeys {
        signed: RecipientPrekey {
            id: 1,
            public_key: john_prekey().public_key().expect("a valid key"),
        },
        one_time: Some(RecipientPrekey {
            id: 2,
            public_key: john_one_time().public_key().expect("a valid key"),
        }),
    }
}

/// John's private prekeys, whatever number an envelope names.
fn johns_keys(kind: PrekeyKind, _id: u32) -> Option<&'static AgreementSecret> {
    Some(match kind {
        PrekeyKind::Signed => john_prekey(),
        PrekeyKind::OneTime => john_one_time(),
    })
}

/// Parse `data` as an envelope and open it as John from Alice; then sign
/// its fields with Alice's key, so opening gets past the signature to the
/// recipient check, the key agreement and the decryption.
pub fn envelope(data: &[u8]) {
    let Ok(parsed) = envelope::parse(data) else {
        return;
    };
    let alice = alice();
    let john: UserName = "John".parse().expect("a valid name");
    let _ = parsed.open(&john, &alice.public_key(), johns_keys);
    let signed = &data[..signed_len(&parsed, data)];
    let signature = alice
        .sign(&signing::envelope(signed))
        .expect("signing works");
    let mut resigned = signed.to_vec();
    resigned.extend_from_slice(&(signature.len() as u16).to_be_bytes());
    resigned.extend_from_slice(&signature);
    let reparsed = envelope::parse(&resigned).expect("re-signing keeps the layout");
    assert_eq!(reparsed.header, parsed.header);
    let _ = reparsed.open(&john, &alice.public_key(), johns_keys);
}

/// Bytes covered by the signature of an envelope that parsed: the header
/// (through the ephemeral key) and the ciphertext with its length (layout
/// in docs/PROTOCOL.md, "Envelope").
fn signed_len(parsed: &envelope::Parsed<'_>, data: &[u8]) -> usize {
    let header = &parsed.header;
    let names = header.sender.as_str().len() + header.recipient.as_str().len();
    let one_time = if parsed.one_time_prekey_id.is_some() {
        4
    } else {
        0
    };
    let header_len =
        MAGIC.len() + 1 + 2 + names + envelope::MESSAGE_ID_LEN + 8 + 4 + 1 + one_time + X25519_LEN;
    let ciphertext_len = u32::from_be_bytes(data[header_len..header_len + 4].try_into().unwrap());
    header_len + 4 + ciphertext_len as usize
}
