//! "The server learns nothing" (issue 9): a malicious operator — a proxy
//! holding the server's own certificate and key, so the client sees no
//! warning — answers the real client with chosen data. The client must
//! reveal nothing, seal to nobody else, pin nothing without showing its
//! fingerprint, and print no raw escapes; the server must refuse junk and
//! proofs made for another server or another challenge.

mod keys;
mod login;
mod messages;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::client::json_object;
use crate::common::mitm::Mitm;
use crate::common::raw::{
    Client, error_code, keys, prekeys, recipient_prekey, sealed, send, signed_in, signed_prekey,
};
use crate::common::{World, name};
use msgr::wire::crypto::{PrivateKey, sha256};
use msgr::wire::envelope::{self, Header};
use msgr::wire::protocol::{
    Base64Bytes, ErrorCode, QueuedMessage, Request, Response, SignedPrekey,
};
use msgr::wire::signing::{self, PrekeyKind};
use predicates::prelude::*;

/// The certificate digest the real server (and so the proxy) presents.
pub(super) fn certificate_digest(world: &World) -> signing::CertificateDigest {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_slice(world.server.certificate_pem().0.as_bytes()).unwrap();
    sha256(cert.as_ref())
}

/// `user`'s identity key, read from their keyring.
pub(super) fn identity_of(world: &World, user: &str, port: u16) -> PrivateKey {
    let pem =
        std::fs::read_to_string(world.account_dir_at(user, port).join("identity.pem")).unwrap();
    PrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// A proxy that passes everything through until `armed`, then answers
/// with `attack`.
pub(super) fn proxy(
    world: &World,
    attack: impl Fn(&Request, Response) -> Response + Send + Sync + 'static,
) -> (Mitm, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let on = Arc::clone(&armed);
    let mitm = Mitm::start(&world.server, move |request, response| {
        if on.load(Ordering::SeqCst) {
            attack(request, response)
        } else {
            response
        }
    });
    (mitm, armed)
}

pub(super) fn register_via(world: &World, port: u16, user: &str) {
    world
        .msgr_at(user, port)
        .args(["register", "--bits", "2048"])
        .assert()
        .success();
}

/// The envelope of the first `send` that went through `mitm`.
pub(super) fn first_sent_envelope(mitm: &Mitm) -> Base64Bytes {
    mitm.requests()
        .into_iter()
        .find_map(|r| match r {
            Request::Send { envelope, .. } => Some(envelope),
            _ => None,
        })
        .expect("a send went through the proxy")
}

pub(super) fn sends(requests: &[Request]) -> usize {
    requests
        .iter()
        .filter(|r| matches!(r, Request::Send { .. }))
        .count()
}

/// The prekey the real server hands out for `name`, as a sender seals to
/// it.
pub(super) fn prekey_of(world: &World, name: &str) -> envelope::RecipientPrekeys {
    let Response::Key {
        signed_prekey: Some(prekey),
        ..
    } = real_key_answer(world, name)
    else {
        panic!("{name} has a prekey");
    };
    envelope::RecipientPrekeys {
        signed: envelope::RecipientPrekey {
            id: prekey.id,
            public_key: prekey.public_key.0.try_into().unwrap(),
        },
        one_time: None,
    }
}

/// The key answer the real server gives for `name`.
pub(super) fn real_key_answer(world: &World, name: &str) -> Response {
    Client::greeted(&world.server).request(&Request::GetKey {
        user: name.into(),
        claim: false,
    })
}

/// A key answer for `name` with the operator's key and a prekey the
/// operator signed for that name.
pub(super) fn mallory_key_answer(name: &str) -> Response {
    Response::Key {
        user: name.into(),
        public_key: Base64Bytes(keys()[2].public_key().to_der()),
        signed_prekey: Some(signed_prekey(name, 2)),
        one_time_prekey: None,
        rotations: Vec::new(),
    }
}
