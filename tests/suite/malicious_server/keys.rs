//! Key answers from a lying server: another account's keys, a key
//! substituted at first contact, a prekey or one-time prekey the pinned key
//! did not sign.

use super::*;

#[test]
fn a_key_answer_for_another_account_redirects_nothing() {
    let world = World::new();
    let decoys: Arc<Mutex<Vec<Response>>> = Arc::default();
    let answers = Arc::clone(&decoys);
    let (mitm, armed) = proxy(&world, move |request, response| match request {
        Request::GetKey { user, .. } if user == "John" => answers.lock().unwrap()[0].clone(),
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
    let contacts = world
        .account_dir_at("Alice", mitm.port)
        .join("contacts.toml");
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

#[test]
fn a_key_substituted_at_first_contact_is_shown_or_refused() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match request {
        Request::GetKey { user, .. } if user == "John" => mallory_key_answer("John"),
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

/// A proxy that, once armed, passes the key answers for John through
/// `rewrite`; Alice and John are registered through it.
fn rewriting_johns_key(
    world: &World,
    rewrite: impl Fn(Response) -> Response + Send + Sync + 'static,
) -> (Mitm, Arc<AtomicBool>) {
    let (mitm, armed) = proxy(world, move |request, response| match request {
        Request::GetKey { user, .. } if user == "John" => rewrite(response),
        _ => response,
    });
    for user in ["Alice", "John"] {
        register_via(world, mitm.port, user);
    }
    (mitm, armed)
}

/// Alice's `create` to John through `mitm` is refused as offering a
/// prekey John's key did not sign, and sends nothing.
fn assert_create_refuses_a_foreign_prekey(world: &World, mitm: &Mitm) {
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
}

#[test]
fn a_prekey_the_pinned_key_did_not_sign_is_refused() {
    let world = World::new();
    let (mitm, armed) = rewriting_johns_key(&world, |response| match response {
        Response::Key {
            user, public_key, ..
        } => Response::Key {
            user,
            public_key,
            signed_prekey: Some(signed_prekey("John", 2)),
            one_time_prekey: None,
            rotations: Vec::new(),
        },
        other => other,
    });
    armed.store(true, Ordering::SeqCst);
    assert_create_refuses_a_foreign_prekey(&world, &mitm);
    let contacts = world
        .account_dir_at("Alice", mitm.port)
        .join("contacts.toml");
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
    assert_create_refuses_a_foreign_prekey(&world, &mitm);
    assert_eq!(std::fs::read(&contacts).unwrap(), pinned);
}

/// A one-time prekey must be signed by the pinned key as a one-time
/// prekey: neither the signed prekey passed off as one (a server wanting
/// every message on the medium-term key) nor one signed by another key is
/// used.
#[test]
fn a_one_time_prekey_the_pinned_key_did_not_sign_as_one_is_refused() {
    let substitutes = [
        "the signed prekey as a one-time prekey",
        "another key's one-time prekey",
    ];
    for substitute in substitutes {
        let world = World::new();
        let (mitm, armed) = rewriting_johns_key(&world, move |response| match response {
            Response::Key {
                user,
                public_key,
                signed_prekey,
                ..
            } => Response::Key {
                user,
                public_key,
                one_time_prekey: if substitute == substitutes[0] {
                    signed_prekey.clone()
                } else {
                    Some(
                        SignedPrekey::sign(
                            PrekeyKind::OneTime,
                            &crate::common::name("John"),
                            7,
                            1,
                            &prekeys()[2],
                            &keys()[2],
                        )
                        .unwrap(),
                    )
                },
                signed_prekey,
                rotations: Vec::new(),
            },
            other => other,
        });
        armed.store(true, Ordering::SeqCst);
        assert_create_refuses_a_foreign_prekey(&world, &mitm);
    }
}
