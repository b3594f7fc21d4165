//! Round trips, refusals of every tampering, and the golden bytes of the
//! envelope format.

use super::*;
use crate::wire::crypto::test_keys;

/// John's signed prekey number 7.
fn john_prekey() -> &'static AgreementSecret {
    static PREKEY: std::sync::OnceLock<AgreementSecret> = std::sync::OnceLock::new();
    PREKEY.get_or_init(|| AgreementSecret::generate().unwrap())
}

/// John's one-time prekey number 3.
fn john_one_time() -> &'static AgreementSecret {
    static PREKEY: std::sync::OnceLock<AgreementSecret> = std::sync::OnceLock::new();
    PREKEY.get_or_init(|| AgreementSecret::generate().unwrap())
}

/// John's signed prekey 7 and one-time prekey 3.
fn to_john() -> RecipientPrekeys {
    RecipientPrekeys {
        signed: RecipientPrekey {
            id: 7,
            public_key: john_prekey().public_key().unwrap(),
        },
        one_time: Some(RecipientPrekey {
            id: 3,
            public_key: john_one_time().public_key().unwrap(),
        }),
    }
}

/// John's private prekeys, found as an inbox finds them.
fn johns_keys(kind: PrekeyKind, id: u32) -> Option<&'static AgreementSecret> {
    match (kind, id) {
        (PrekeyKind::Signed, 7) => Some(john_prekey()),
        (PrekeyKind::OneTime, 3) => Some(john_one_time()),
        _ => None,
    }
}

fn sealed(body: &[u8]) -> (Header, Vec<u8>) {
    let alice = &test_keys()[0];
    let header = Header::new(&name("Alice"), &name("John"));
    let envelope = seal(&header, body, alice, &to_john()).unwrap();
    (header, envelope)
}

fn name(name: &str) -> UserName {
    name.parse().unwrap()
}

fn john_opens(envelope: &[u8], me: &str) -> Result<Vec<u8>, EnvelopeError> {
    let alice = &test_keys()[0];
    parse(envelope)?.open(&name(me), &alice.public_key(), johns_keys)
}

fn open(envelope: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    john_opens(envelope, "John")
}

#[test]
fn round_trip_returns_body_and_header() {
    let (header, envelope) = sealed(b"Hello John! How are you?");
    let parsed = parse(&envelope).unwrap();
    assert_eq!(parsed.header, header);
    assert_eq!(
        (parsed.signed_prekey_id, parsed.one_time_prekey_id),
        (7, Some(3))
    );
    assert_eq!(open(&envelope).unwrap(), b"Hello John! How are you?");
}

#[test]
fn without_a_one_time_prekey_the_signed_prekey_alone_opens_it() {
    let alice = &test_keys()[0];
    let prekeys = RecipientPrekeys {
        one_time: None,
        ..to_john()
    };
    let envelope = seal(
        &Header::new(&name("Alice"), &name("John")),
        b"hi",
        alice,
        &prekeys,
    )
    .unwrap();
    let parsed = parse(&envelope).unwrap();
    assert_eq!(
        (parsed.signed_prekey_id, parsed.one_time_prekey_id),
        (7, None)
    );
    let signed_only = |kind, id| (kind == PrekeyKind::Signed && id == 7).then_some(john_prekey());
    assert_eq!(
        parsed
            .open(&name("John"), &alice.public_key(), signed_only)
            .unwrap(),
        b"hi"
    );
}

#[test]
fn empty_and_binary_bodies_round_trip() {
    for body in [&b""[..], &[0u8, 255, 128, 10][..]] {
        assert_eq!(open(&sealed(body).1).unwrap(), body);
    }
}

#[test]
fn recipient_name_matches_in_any_case() {
    let envelope = sealed(b"hi").1;
    assert_eq!(john_opens(&envelope, "jOHN").unwrap(), b"hi");
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
fn a_send_time_beyond_rfc_3339_is_malformed() {
    let alice = &test_keys()[0];
    let mut header = Header::new(&name("Alice"), &name("John"));
    header.sent_at_ms = MAX_TIME_MS;
    let latest = seal(&header, b"hi", alice, &to_john()).unwrap();
    assert_eq!(parse(&latest).unwrap().header.sent_at_ms, MAX_TIME_MS);
    header.sent_at_ms = MAX_TIME_MS + 1;
    let later = seal(&header, b"hi", alice, &to_john()).unwrap();
    assert!(matches!(
        parse(&later),
        Err(EnvelopeError::Malformed("send time after the year 9999"))
    ));
}

#[test]
fn another_recipient_cannot_open_it() {
    let envelope = sealed(b"for John").1;
    assert!(matches!(
        john_opens(&envelope, "Carol"),
        Err(EnvelopeError::WrongRecipient(name)) if name == "John"
    ));
}

#[test]
fn a_missing_or_wrong_prekey_opens_nothing() {
    let alice = &test_keys()[0];
    let envelope = sealed(b"for John").1;
    let parsed = parse(&envelope).unwrap();
    assert!(matches!(
        parsed.open(&name("John"), &alice.public_key(), |_, _| None),
        Err(EnvelopeError::UnknownPrekey {
            kind: PrekeyKind::Signed,
            id: 7
        })
    ));
    // The one-time prekey deleted once its message was shown: the signed
    // prekey alone opens nothing.
    let deleted = |kind, id| (kind == PrekeyKind::Signed && id == 7).then_some(john_prekey());
    let error = parsed
        .open(&name("John"), &alice.public_key(), deleted)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the message is encrypted to one-time prekey 3, which this keyring does not hold"
    );
    let other = AgreementSecret::generate().unwrap();
    assert!(matches!(
        parsed.open(&name("John"), &alice.public_key(), |_, _| Some(&other)),
        Err(EnvelopeError::Undecryptable)
    ));
    let swapped = |kind, _| match kind {
        PrekeyKind::Signed => Some(john_one_time()),
        PrekeyKind::OneTime => Some(john_prekey()),
    };
    assert!(matches!(
        parsed.open(&name("John"), &alice.public_key(), swapped),
        Err(EnvelopeError::Undecryptable)
    ));
}

#[test]
fn a_forged_sender_fails_verification() {
    let carol = &test_keys()[2];
    // Carol seals a message that claims to come from Alice.
    let envelope = seal(
        &Header::new(&name("Alice"), &name("John")),
        b"hi",
        carol,
        &to_john(),
    )
    .unwrap();
    assert!(matches!(open(&envelope), Err(EnvelopeError::BadSignature)));
    assert!(
        !parse(&envelope)
            .unwrap()
            .is_signed_by(&test_keys()[0].public_key())
    );
    assert!(parse(&envelope).unwrap().is_signed_by(&carol.public_key()));
}

#[test]
fn re_addressed_envelope_fails_verification() {
    let envelope = sealed(b"hi").1;
    // A server rewriting the recipient name breaks the signature.
    let mut moved = envelope.clone();
    let recipient_at = MAGIC.len() + 1 + 1 + "Alice".len() + 1;
    moved[recipient_at..recipient_at + 4].copy_from_slice(b"Jahn");
    assert!(matches!(
        john_opens(&moved, "Jahn"),
        Err(EnvelopeError::BadSignature)
    ));
}

/// The content key, the ciphertext and the layout for fixed inputs: a
/// change made to reader and writer alike cannot pass unnoticed. The
/// signature (RSA-PSS is randomised) is cut off before comparing.
#[test]
fn golden_bytes() {
    let ephemeral = AgreementSecret::from_bytes(&[0x11; 32]).unwrap();
    let prekey = AgreementSecret::from_bytes(&[0x22; 32]).unwrap();
    let one_time = AgreementSecret::from_bytes(&[0x44; 32]).unwrap();
    let header = Header {
        sender: name("Alice"),
        recipient: name("John"),
        message_id: [0x33; 16],
        sent_at_ms: 1_700_000_000_000,
    };
    let to = RecipientPrekeys {
        signed: RecipientPrekey {
            id: 1,
            public_key: prekey.public_key().unwrap(),
        },
        one_time: Some(RecipientPrekey {
            id: 5,
            public_key: one_time.public_key().unwrap(),
        }),
    };
    let envelope = seal_with(&ephemeral, &header, b"Hi", &test_keys()[0], &to).unwrap();
    let signed_len = envelope.len() - 2 - 256;
    assert_eq!(
        crate::wire::protocol::hex(&envelope[..signed_len]),
        GOLDEN_SIGNED_PART
    );
    let opened = parse(&envelope)
        .unwrap()
        .open(&name("John"), &test_keys()[0].public_key(), |kind, _| {
            Some(match kind {
                PrekeyKind::Signed => &prekey,
                PrekeyKind::OneTime => &one_time,
            })
        })
        .unwrap();
    assert_eq!(opened, b"Hi");
}

/// Checked against an independent implementation (Python's
/// `cryptography`); the same vector is in docs/PROTOCOL.md.
const GOLDEN_SIGNED_PART: &str = concat!(
    "4d5347520305416c696365044a6f686e33333333333333333333333333333333",
    "0000018bcfe568000000000101000000057b4e909bbe7ffe44c465a220037d60",
    "8ee35897d31ef972f07f74892cb0f73f1300000012120772358db0918e6d9c3c",
    "62daaf2dedb3b7"
);
