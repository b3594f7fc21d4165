//! "The server learns nothing" (issue 9): a malicious operator — a proxy
//! holding the server's own certificate and key, so the client sees no
//! warning — answers the real client with chosen data. The client must
//! reveal nothing, seal to nobody else, pin nothing without showing its
//! fingerprint, and print no raw escapes; the server must refuse junk and
//! proofs made for another server or another challenge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::World;
use crate::common::client::json_object;
use crate::common::mitm::Mitm;
use crate::common::raw::{
    Client, error_code, keys, prekeys, recipient_prekey, sealed, signed_in, signed_prekey,
};
use msgr::wire::crypto::{PrivateKey, sha256};
use msgr::wire::envelope::{self, Header};
use msgr::wire::protocol::{
    Base64Bytes, ErrorCode, QueuedMessage, Request, Response, SignedPrekey,
};
use msgr::wire::signing;
use predicates::prelude::*;

/// The certificate digest the real server (and so the proxy) presents.
fn certificate_digest(world: &World) -> signing::CertificateDigest {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let cert = CertificateDer::from_pem_file(world.server.data_dir.join("cert.pem")).unwrap();
    sha256(cert.as_ref())
}

/// `user`'s identity key, read from their keyring.
fn identity_of(world: &World, user: &str, port: u16) -> PrivateKey {
    let dir = world
        .config_dir(user)
        .join(format!("accounts/{}@localhost:{port}", user.to_lowercase()));
    let pem = std::fs::read_to_string(dir.join("identity.pem")).unwrap();
    PrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// A proxy that passes everything through until `armed`, then answers
/// with `attack`.
fn proxy(
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

fn register_via(world: &World, port: u16, user: &str) {
    world
        .msgr_at(user, port)
        .args(["register", "--bits", "2048"])
        .assert()
        .success();
}

fn sends(requests: &[Request]) -> usize {
    requests
        .iter()
        .filter(|r| matches!(r, Request::Send { .. }))
        .count()
}

/// The key answer the real server gives for `name`.
fn real_key_answer(world: &World, name: &str) -> Response {
    Client::greeted(&world.server).request(&Request::GetKey { user: name.into() })
}

#[test]
fn the_login_exchange_yields_nothing_but_login_signatures() {
    let world = World::new();
    let chosen: Arc<Mutex<Base64Bytes>> = Arc::default();
    let nonce = Arc::clone(&chosen);
    // Armed, the operator refuses every token and challenges with bytes
    // of its choice.
    let (mitm, armed) = proxy(&world, move |request, response| match request {
        Request::Authenticate { .. } => Response::error(ErrorCode::AuthFailed, "expired"),
        Request::Login { .. } => Response::LoginChallenge {
            nonce: nonce.lock().unwrap().clone(),
        },
        _ => response,
    });
    register_via(&world, mitm.port, "Alice");
    register_via(&world, mitm.port, "John");
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "the merger is off"])
        .assert()
        .success();
    world
        .msgr_at("John", mitm.port)
        .arg("login")
        .assert()
        .success();
    let envelope = mitm
        .requests()
        .into_iter()
        .find_map(|r| match r {
            Request::Send { envelope, .. } => Some(envelope.0),
            _ => None,
        })
        .unwrap();
    let signed_part = &envelope[..envelope.len() - 2 - 256];
    // The operator wants John's signature on that envelope, or on its hash.
    let wanted = sha256(signed_part);
    *chosen.lock().unwrap() = Base64Bytes(wanted.to_vec());
    armed.store(true, Ordering::SeqCst);
    let already = mitm.requests().len();

    let output = world
        .msgr_at("John", mitm.port)
        .args(["read", "--wait", "2"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{output:?}");
    assert!(output.stdout.is_empty());
    let requests = mitm.requests().split_off(already);
    let proofs: Vec<&[u8]> = requests
        .iter()
        .filter_map(|r| match r {
            Request::LoginProof { signature } => Some(signature.0.as_slice()),
            _ => None,
        })
        .collect();
    assert_eq!(proofs.len(), 1, "one login attempt, then a clear failure");
    let john = identity_of(&world, "John", mitm.port).public_key();
    let digest = certificate_digest(&world);
    assert!(john.verify(&signing::login(&digest, "John", &wanted), proofs[0]));
    assert!(!john.verify(&signing::envelope(signed_part), proofs[0]));
    assert!(!john.verify(&signing::envelope(&wanted), proofs[0]));
    assert!(
        !requests
            .iter()
            .any(|r| matches!(r, Request::Ack { .. } | Request::Send { .. })),
        "{requests:?}"
    );

    // A challenge of any other length is refused without a signature.
    *chosen.lock().unwrap() = Base64Bytes(envelope.clone());
    world
        .msgr_at("John", mitm.port)
        .arg("read")
        .assert()
        .code(3)
        .stdout("")
        .stderr(predicate::str::contains("the login challenge is"));
    let proofs = mitm.requests()[already..]
        .iter()
        .filter(|r| matches!(r, Request::LoginProof { .. }))
        .count();
    assert_eq!(proofs, 1, "no second signature");
}

#[test]
fn a_key_answer_for_another_account_redirects_nothing() {
    let world = World::new();
    let decoys: Arc<Mutex<Vec<Response>>> = Arc::default();
    let answers = Arc::clone(&decoys);
    let (mitm, armed) = proxy(&world, move |request, response| match request {
        Request::GetKey { user } if user == "John" => answers.lock().unwrap()[0].clone(),
        _ => response,
    });
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    // The operator's own accounts, one a look-alike of John.
    let mut operator = Client::greeted(&world.server);
    operator.register("John.", &keys()[2]);
    world
        .msgr_at("Alice", mitm.port)
        .args(["key", "John"])
        .assert()
        .success();
    let contacts = world.config_dir("Alice").join(format!(
        "accounts/alice@localhost:{}/contacts.toml",
        mitm.port
    ));
    let pinned = std::fs::read(&contacts).unwrap();
    let mallory = mallory_key_answer("Mallory");
    armed.store(true, Ordering::SeqCst);
    for decoy in [real_key_answer(&world, "John."), mallory] {
        *decoys.lock().unwrap() = vec![decoy];
        let before = sends(&mitm.requests());
        let output = world
            .msgr_at("Alice", mitm.port)
            .args(["--json", "create", "John", "quarterly numbers"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(6), "{output:?}");
        let result = json_object(&output.stdout);
        assert_eq!(result["sent"], serde_json::json!([]), "{result}");
        assert_eq!(result["failed"][0]["to"], "John");
        assert_eq!(result["failed"][0]["code"], "trust");
        assert!(
            result["failed"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("asked for the key of John, the server answered with the key of "),
            "{result}"
        );
        assert_eq!(sends(&mitm.requests()), before, "nothing was sent");
        assert_eq!(std::fs::read(&contacts).unwrap(), pinned, "no pin changed");
    }
}

/// A key answer for `name` with the operator's key and a prekey the
/// operator signed for that name.
fn mallory_key_answer(name: &str) -> Response {
    Response::Key {
        user: name.into(),
        public_key: Base64Bytes(keys()[2].public_key().to_der()),
        signed_prekey: Some(signed_prekey(name, 2)),
    }
}

#[test]
fn a_key_substituted_at_first_contact_is_shown_or_refused() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match request {
        Request::GetKey { user } if user == "John" => mallory_key_answer("John"),
        _ => response,
    });
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    let johns = identity_of(&world, "John", mitm.port)
        .public_key()
        .fingerprint();
    let substituted = keys()[2].public_key().fingerprint();
    armed.store(true, Ordering::SeqCst);

    // Strict: nothing pinned, nothing sent.
    let before = sends(&mitm.requests());
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "hello"])
        .env("MSGR_PIN_POLICY", "explicit")
        .assert()
        .code(6)
        .stdout("")
        .stderr(
            "msgr: John's key is not pinned, and the pin policy is explicit; pin it with `msgr key John` \
             (with --expect FINGERPRINT to accept only the fingerprint John gave you)\n",
        );
    assert_eq!(sends(&mitm.requests()), before);
    // Expecting John's real fingerprint refuses the substitute too.
    world
        .msgr_at("Alice", mitm.port)
        .args(["key", "John", "--expect", &johns])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!(
            "the server offers the key {substituted} for John, not the expected {johns}"
        )));
    // Trusting first use: it goes through, but the fingerprint is shown,
    // and it is not John's.
    world
        .msgr_at("Alice", mitm.port)
        .args(["-q", "create", "John", "hello"])
        .assert()
        .success()
        .stderr(format!(
            "msgr: pinned the key of John seen for the first time: {substituted}; \
             compare it with the fingerprint `msgr whoami` shows John\n"
        ));
    assert_ne!(substituted, johns);
}

#[test]
fn a_prekey_the_pinned_key_did_not_sign_is_refused() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match (request, response) {
        (
            Request::GetKey { user },
            Response::Key {
                user: name,
                public_key,
                ..
            },
        ) if user == "John" => Response::Key {
            user: name,
            public_key,
            signed_prekey: Some(signed_prekey("John", 2)),
        },
        (_, response) => response,
    });
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    armed.store(true, Ordering::SeqCst);
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "hello"])
        .assert()
        .code(6)
        .stdout("")
        .stderr(predicate::str::contains(
            "the server offers a prekey for John that John's key",
        ));
    assert_eq!(sends(&mitm.requests()), 0);
    let contacts = world.config_dir("Alice").join(format!(
        "accounts/alice@localhost:{}/contacts.toml",
        mitm.port
    ));
    assert!(!contacts.exists(), "nothing pinned");
    // With John and his real prekey pinned, a substitute under the same
    // prekey number is refused all the same.
    armed.store(false, Ordering::SeqCst);
    world
        .msgr_at("Alice", mitm.port)
        .args(["key", "John"])
        .assert()
        .success();
    let pinned = std::fs::read(&contacts).unwrap();
    armed.store(true, Ordering::SeqCst);
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "hello"])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(
            "the server offers a prekey for John that John's key",
        ));
    assert_eq!(sends(&mitm.requests()), 0);
    assert_eq!(std::fs::read(&contacts).unwrap(), pinned);
}

#[test]
fn answers_for_another_account_end_the_session() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |_, response| match response {
        Response::Authenticated { expires_at, .. } => Response::Authenticated {
            user: "Mallory".into(),
            expires_at,
        },
        Response::LoggedIn {
            token, expires_at, ..
        } => Response::LoggedIn {
            user: "Mallory".into(),
            token,
            expires_at,
        },
        other => other,
    });
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    armed.store(true, Ordering::SeqCst);
    for args in [&["create", "John", "hi"][..], &["read"], &["login"]] {
        world
            .msgr_at("Alice", mitm.port)
            .args(args)
            .assert()
            .code(6)
            .stdout("")
            .stderr(predicate::str::contains(
                "acting as Alice, the server answered for \"Mallory\"",
            ));
    }
    assert_eq!(sends(&mitm.requests()), 0);
}

#[test]
fn server_strings_never_reach_the_terminal_raw() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match request {
        Request::GetKey { user } if user == "John" => Response::Key {
            user: "John\u{1b}]0;owned\u{7}".into(),
            public_key: Base64Bytes(keys()[2].public_key().to_der()),
            signed_prekey: None,
        },
        Request::GetKey { .. } => Response::error(
            ErrorCode::RateLimited,
            "\u{1b}[2J\u{1b}[Hslow down \u{202e}nwod wols",
        ),
        _ => response,
    });
    register_via(&world, mitm.port, "Alice");
    armed.store(true, Ordering::SeqCst);
    let raw = |bytes: &[u8]| {
        bytes.contains(&0x1b)
            || bytes.contains(&0x07)
            || String::from_utf8_lossy(bytes).contains('\u{202e}')
    };
    for (name, code) in [("John", 6), ("Carol", 7)] {
        for json in [false, true] {
            let output = world
                .msgr_at("Alice", mitm.port)
                .arg(format!("--json={json}"))
                .args(["key", name])
                .output()
                .unwrap();
            assert_eq!(output.status.code(), Some(code), "{output:?}");
            assert!(!raw(&output.stdout), "{output:?}");
            assert!(!raw(&output.stderr), "{output:?}");
        }
    }
    let contacts = world.config_dir("Alice").join(format!(
        "accounts/alice@localhost:{}/contacts.toml",
        mitm.port
    ));
    assert!(!contacts.exists(), "nothing pinned");
}

#[test]
fn envelopes_for_someone_else_open_for_nobody() {
    let world = World::new();
    let stolen: Arc<Mutex<Option<QueuedMessage>>> = Arc::default();
    let deliver = Arc::clone(&stolen);
    let (mitm, armed) = proxy(&world, move |request, response| match request {
        Request::Fetch { .. } => Response::Messages {
            messages: deliver.lock().unwrap().clone().into_iter().collect(),
        },
        _ => response,
    });
    for user in ["Alice", "John", "Carol"] {
        register_via(&world, mitm.port, user);
    }
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "for John's eyes only"])
        .assert()
        .success();
    let envelope = mitm
        .requests()
        .into_iter()
        .find_map(|r| match r {
            Request::Send { envelope, .. } => Some(envelope),
            _ => None,
        })
        .unwrap();
    *stolen.lock().unwrap() = Some(QueuedMessage {
        id: 1,
        sender: "Alice".into(),
        envelope,
    });
    armed.store(true, Ordering::SeqCst);
    let output = world
        .msgr_at("Carol", mitm.port)
        .arg("read")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the message is addressed to John, not to this account"),
        "{stderr}"
    );
    assert!(!stderr.contains("eyes only"));
}

#[test]
fn the_server_refuses_envelopes_its_sender_did_not_sign() {
    let world = World::new();
    let mut alice = signed_in(&world.server, "Alice");
    let to_john = recipient_prekey(1);
    let forged = envelope::seal(&Header::new("Alice", "John"), b"junk", &keys()[2], &to_john);
    let misspelt = envelope::seal(
        &Header::new("alice", "John"),
        b"not as registered",
        &keys()[0],
        &to_john,
    );
    for envelope in [forged, misspelt] {
        let response = alice.request(&Request::Send {
            recipient: "John".into(),
            envelope: Base64Bytes(envelope.unwrap()),
        });
        assert_eq!(error_code(&response), ErrorCode::BadRequest, "{response:?}");
    }
    assert_eq!(world.queued(), 0, "junk takes no mailbox space");
    assert!(matches!(
        alice.request(&sealed("Alice", "John", b"genuine")),
        Response::Sent { .. }
    ));
}

#[test]
fn proofs_are_bound_to_the_server_the_name_and_the_challenge() {
    let world = World::new();
    let [alice, john, carol] = keys();
    let mut client = Client::greeted(&world.server);
    let digest = client.certificate_digest();
    let other_server = [0x5a; 32];

    // Registration: a proof for another server, a prekey signed by another
    // key, a prekey signed for another name.
    let der = carol.public_key().to_der();
    let register = |proof: Vec<u8>, prekey: SignedPrekey| Request::Register {
        user: "Carol".into(),
        public_key: Base64Bytes(der.clone()),
        signed_prekey: prekey,
        proof: Base64Bytes(proof),
    };
    let for_other = carol
        .sign(&signing::registration(&other_server, "Carol", &der))
        .unwrap();
    let genuine = carol
        .sign(&signing::registration(&digest, "Carol", &der))
        .unwrap();
    let by_other_key = SignedPrekey::sign("Carol", 1, 1, &prekeys()[2], alice).unwrap();
    for request in [
        register(for_other, signed_prekey("Carol", 2)),
        register(genuine.clone(), by_other_key),
        register(genuine.clone(), signed_prekey("Caroline", 2)),
    ] {
        assert_eq!(error_code(&client.request(&request)), ErrorCode::BadRequest);
    }
    assert!(matches!(
        client.request(&register(genuine, signed_prekey("Carol", 2))),
        Response::Registered { .. }
    ));
    client.register("Alice", alice);
    client.register("John", john);

    // Login: no challenge, another server, another name, another key,
    // another connection's challenge.
    let proof =
        |key: &PrivateKey, digest: &[u8; 32], name: &str, nonce: &[u8]| Request::LoginProof {
            signature: Base64Bytes(key.sign(&signing::login(digest, name, nonce)).unwrap()),
        };
    assert_eq!(
        error_code(&client.request(&proof(alice, &digest, "Alice", &[0; 32]))),
        ErrorCode::BadRequest
    );
    let challenge = |client: &mut Client| match client.request(&Request::Login {
        user: "Alice".into(),
    }) {
        Response::LoginChallenge { nonce } => nonce.0,
        other => panic!("{other:?}"),
    };
    for (key, digest, name) in [
        (alice, &other_server, "Alice"),
        (alice, &digest, "John"),
        (john, &digest, "Alice"),
    ] {
        let nonce = challenge(&mut client);
        let response = client.request(&proof(key, digest, name, &nonce));
        assert_eq!(error_code(&response), ErrorCode::AuthFailed, "{name}");
    }
    let mut other = Client::greeted(&world.server);
    let theirs = challenge(&mut other);
    let _ours = challenge(&mut client);
    assert_eq!(
        error_code(&client.request(&proof(alice, &digest, "Alice", &theirs))),
        ErrorCode::AuthFailed
    );
    // A challenge is good for one answer.
    let nonce = challenge(&mut client);
    let good = proof(alice, &digest, "Alice", &nonce);
    assert!(matches!(client.request(&good), Response::LoggedIn { .. }));
    assert_eq!(error_code(&client.request(&good)), ErrorCode::BadRequest);
}

#[test]
fn a_send_time_no_calendar_can_write_is_refused_not_fatal() {
    let world = World::new();
    // Another user's attempt: the server refuses it at `send`.
    let mut alice = signed_in(&world.server, "Alice");
    let mut header = Header::new("Alice", "John");
    header.sent_at_ms = u64::MAX;
    let late = envelope::seal(
        &header,
        b"from the far future",
        &keys()[0],
        &recipient_prekey(1),
    )
    .unwrap();
    let response = alice.request(&Request::Send {
        recipient: "John".into(),
        envelope: Base64Bytes(late.clone()),
    });
    assert_eq!(error_code(&response), ErrorCode::BadRequest);

    // A server delivering it anyway: John's read reports it and shows the
    // rest.
    let world = World::new();
    let extra: Arc<Mutex<Vec<QueuedMessage>>> = Arc::default();
    let slipped = Arc::clone(&extra);
    let (mitm, armed) = proxy(&world, move |request, response| match (request, response) {
        (Request::Fetch { .. }, Response::Messages { mut messages }) => {
            messages.splice(0..0, slipped.lock().unwrap().drain(..));
            Response::Messages { messages }
        }
        (_, response) => response,
    });
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "an honest note"])
        .assert()
        .success();
    let alice_key = identity_of(&world, "Alice", mitm.port);
    let Response::Key {
        signed_prekey: Some(prekey),
        ..
    } = real_key_answer(&world, "John")
    else {
        panic!("John has a prekey");
    };
    let to_john = envelope::RecipientPrekey {
        id: prekey.id,
        public_key: prekey.public_key.0.try_into().unwrap(),
    };
    let mut header = Header::new("Alice", "John");
    header.sent_at_ms = u64::MAX;
    let late = envelope::seal(&header, b"from the far future", &alice_key, &to_john).unwrap();
    extra.lock().unwrap().push(QueuedMessage {
        id: 1_000_000,
        sender: "Alice".into(),
        envelope: Base64Bytes(late),
    });
    armed.store(true, Ordering::SeqCst);
    let output = world
        .msgr_at("John", mitm.port)
        .arg("read")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("an honest note"), "{stdout}");
    assert!(!stdout.contains("far future"));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("send time after the year 9999"), "{stderr}");
}

#[test]
fn a_refused_retry_of_registration_keeps_the_key_the_server_may_hold() {
    let world = World::new();
    let answer: Arc<Mutex<Option<Response>>> = Arc::default();
    let lie = Arc::clone(&answer);
    let (mitm, armed) = proxy(&world, move |request, response| match request {
        Request::Register { .. } => lie.lock().unwrap().clone().unwrap_or(response),
        _ => response,
    });
    armed.store(true, Ordering::SeqCst);
    // The registration is stored, but its answer is lost...
    *answer.lock().unwrap() = Some(Response::error(ErrorCode::Internal, "lost"));
    register_via_fails(&world, mitm.port, 3);
    // ...and the retry is told the name is taken.
    *answer.lock().unwrap() = Some(Response::error(ErrorCode::NameTaken, "taken"));
    register_via_fails(&world, mitm.port, 7);
    let account = world
        .config_dir("Alice")
        .join(format!("accounts/alice@localhost:{}", mitm.port));
    assert!(account.join("identity.pem").exists(), "the key is kept");
    assert!(account.join("prekeys.toml").exists(), "the prekey is kept");
    armed.store(false, Ordering::SeqCst);
    world
        .msgr_at("Alice", mitm.port)
        .arg("login")
        .assert()
        .success();
}

fn register_via_fails(world: &World, port: u16, code: i32) {
    world
        .msgr_at("Alice", port)
        .args(["register", "--bits", "2048"])
        .assert()
        .code(code);
}
