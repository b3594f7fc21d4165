//! Logging in and registering through a lying server: chosen challenges
//! yield only login signatures, proofs are bound to server, name and
//! challenge, and a session must act for the account itself.

use super::*;

// Over 60 lines: one hostile server's login exchange, step by step, with
// what the client signed checked after each step.
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
    let envelope = first_sent_envelope(&mitm).0;
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
    assert!(john.verify(&signing::login(&digest, &name("John"), &wanted), proofs[0]));
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

// Over 60 lines: every binding of a proof (server, name, challenge, key)
// broken in turn on one connection, as a table.
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
        one_time_prekeys: Vec::new(),
        proof: Base64Bytes(proof),
    };
    let for_other = carol
        .sign(&signing::registration(&other_server, &name("Carol"), &der))
        .unwrap();
    let genuine = carol
        .sign(&signing::registration(&digest, &name("Carol"), &der))
        .unwrap();
    let by_other_key = SignedPrekey::sign(
        PrekeyKind::Signed,
        &name("Carol"),
        1,
        1,
        &prekeys()[2],
        alice,
    )
    .unwrap();
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
            signature: Base64Bytes(
                key.sign(&signing::login(digest, &crate::common::name(name), nonce))
                    .unwrap(),
            ),
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
fn answers_for_another_account_end_the_session() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |_, response| match response {
        Response::Authenticated {
            expires_at,
            one_time_prekeys,
            ..
        } => Response::Authenticated {
            user: "Mallory".into(),
            expires_at,
            one_time_prekeys,
        },
        Response::LoggedIn {
            token,
            expires_at,
            one_time_prekeys,
            ..
        } => Response::LoggedIn {
            user: "Mallory".into(),
            token,
            expires_at,
            one_time_prekeys,
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
    let account = world.account_dir_at("Alice", mitm.port);
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
