//! Messages through a lying server: envelopes for someone else, junk the
//! server must refuse, impossible send times, and escapes in the
//! server's strings.

use super::*;

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
    let envelope = first_sent_envelope(&mitm);
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
    let forged = envelope::seal(
        &Header::new(&name("Alice"), &name("John")),
        b"junk",
        &keys()[2],
        &to_john,
    );
    let misspelt = envelope::seal(
        &Header::new(&name("alice"), &name("John")),
        b"not as registered",
        &keys()[0],
        &to_john,
    );
    for envelope in [forged, misspelt] {
        let response = alice.request(&send("John", &envelope.unwrap()));
        assert_eq!(error_code(&response), ErrorCode::BadRequest, "{response:?}");
    }
    assert_eq!(world.queued(), 0, "junk takes no mailbox space");
    assert!(matches!(
        alice.request(&sealed("Alice", "John", b"genuine")),
        Response::Sent { .. }
    ));
}

// Over 60 lines: the same envelope tried by a user (refused at send) and
// then slipped in by a server (reported at read), side by side.
#[test]
fn a_send_time_no_calendar_can_write_is_refused_not_fatal() {
    let world = World::new();
    // Another user's attempt: the server refuses it at `send`.
    let mut alice = signed_in(&world.server, "Alice");
    let mut header = Header::new(&name("Alice"), &name("John"));
    header.sent_at_ms = u64::MAX;
    let late = envelope::seal(
        &header,
        b"from the far future",
        &keys()[0],
        &recipient_prekey(1),
    )
    .unwrap();
    let response = alice.request(&send("John", &late));
    assert_eq!(error_code(&response), ErrorCode::BadRequest);

    // A server delivering it anyway: John's read reports it and shows the
    // rest.
    let world = World::new();
    let slipping = slipping_proxy(&world);
    let mitm = &slipping.mitm;
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    world
        .msgr_at("Alice", mitm.port)
        .args(["create", "John", "an honest note"])
        .assert()
        .success();
    let mut header = Header::new(&name("Alice"), &name("John"));
    header.sent_at_ms = u64::MAX;
    let output = read_slipped(&world, &slipping, &header, b"from the far future");
    assert_eq!(output.status.code(), Some(6), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("an honest note"), "{stdout}");
    assert!(!stdout.contains("far future"));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("send time after the year 9999"), "{stderr}");
}

/// A proxy that, once armed, puts the messages in `extra` at the head of
/// the next page fetched.
struct Slipping {
    mitm: Mitm,
    armed: Arc<AtomicBool>,
    extra: Arc<Mutex<Vec<QueuedMessage>>>,
}

fn slipping_proxy(world: &World) -> Slipping {
    let extra: Arc<Mutex<Vec<QueuedMessage>>> = Arc::default();
    let slipped = Arc::clone(&extra);
    let (mitm, armed) = proxy(world, move |request, response| match (request, response) {
        (Request::Fetch { .. }, Response::Messages { mut messages }) => {
            messages.splice(0..0, slipped.lock().unwrap().drain(..));
            Response::Messages { messages }
        }
        (_, response) => response,
    });
    Slipping { mitm, armed, extra }
}

/// Seal `body` under `header` with Alice's key to John, slip it into
/// John's next page, and run his `read` through the proxy.
fn read_slipped(
    world: &World,
    slipping: &Slipping,
    header: &Header,
    body: &[u8],
) -> std::process::Output {
    let port = slipping.mitm.port;
    let alice_key = identity_of(world, "Alice", port);
    let sealed = envelope::seal(header, body, &alice_key, &prekey_of(world, "John")).unwrap();
    slipping.extra.lock().unwrap().push(QueuedMessage {
        id: 1_000_000,
        sender: "Alice".into(),
        envelope: Base64Bytes(sealed),
    });
    slipping.armed.store(true, Ordering::SeqCst);
    world.msgr_at("John", port).arg("read").output().unwrap()
}

#[test]
fn server_strings_never_reach_the_terminal_raw() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match request {
        Request::GetKey { user, .. } if user == "John" => Response::Key {
            user: "John\u{1b}]0;owned\u{7}".into(),
            public_key: Base64Bytes(keys()[2].public_key().to_der()),
            signed_prekey: None,
            one_time_prekey: None,
            rotations: Vec::new(),
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
    let contacts = world
        .account_dir_at("Alice", mitm.port)
        .join("contacts.toml");
    assert!(!contacts.exists(), "nothing pinned");
}

/// A server's `retry_after` is bounded to the hour a real one may ask, and
/// ignored on any error but `rate_limited`.
#[test]
fn a_server_cannot_ask_for_an_absurd_wait() {
    let world = World::new();
    let (mitm, armed) = proxy(&world, |request, response| match request {
        Request::GetKey { user, .. } => Response::Error {
            code: if user == "John" {
                ErrorCode::RateLimited
            } else {
                ErrorCode::Busy
            },
            message: "wait".into(),
            retry_after: Some(u64::MAX),
        },
        _ => response,
    });
    register_via(&world, mitm.port, "Alice");
    armed.store(true, Ordering::SeqCst);
    let lookup = |name: &str, json: bool| {
        world
            .msgr_at("Alice", mitm.port)
            .arg(format!("--json={json}"))
            .args(["key", name])
            .output()
            .unwrap()
    };
    let human = lookup("John", false);
    assert_eq!(human.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&human.stderr),
        "msgr: wait; try again in 3600 seconds\n"
    );
    let json = lookup("John", true);
    assert_eq!(
        String::from_utf8_lossy(&json.stderr),
        "{\"level\":\"error\",\"code\":\"refused\",\"exit_status\":7,\"message\":\"wait\",\
         \"hint\":\"try again in 3600 seconds\",\"retry_after\":3600}\n"
    );
    let busy = lookup("Carol", true);
    assert_eq!(
        String::from_utf8_lossy(&busy.stderr),
        "{\"level\":\"error\",\"code\":\"connection\",\"exit_status\":3,\"message\":\"wait\",\
         \"hint\":\"try again in a moment\"}\n"
    );
}

#[test]
fn a_saved_body_cannot_be_probed_with_another_senders_message() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let sent = world
        .msgr("Alice")
        .args(["--json", "create", "John", "the PIN is 4711"])
        .output()
        .unwrap();
    let id = json_object(&sent.stdout)["sent"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = world.dir.path().join("inbox");
    world
        .msgr("John")
        .args(["read", "--out-dir"])
        .arg(&out)
        .assert()
        .success();
    // Mallory, another user of the server, reuses that message id with a
    // guessed body. A wrong guess must be handled like a right one: saved
    // and acknowledged, not refused (which would tell her it was wrong).
    let to_john = prekey_of(&world, "John");
    let mut mallory = Client::connect_to(&world.server.addr).greet();
    mallory.register("Mallory", &keys()[2]);
    mallory.log_in("Mallory", &keys()[2]);
    let guess = "the PIN is 1234";
    let mut header = Header::new(&name("Mallory"), &name("John"));
    header.message_id = (0..16)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let probe = envelope::seal(&header, guess.as_bytes(), &keys()[2], &to_john).unwrap();
    let response = mallory.request(&send("John", &probe));
    assert!(matches!(response, Response::Sent { .. }), "{response:?}");
    world
        .msgr("John")
        .args(["read", "--out-dir"])
        .arg(&out)
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(out.join(format!("mallory-{id}"))).unwrap(),
        guess
    );
    assert_eq!(
        std::fs::read_to_string(out.join(format!("alice-{id}"))).unwrap(),
        "the PIN is 4711"
    );
    world.assert_queued_soon(0);
}

/// A sender who reuses the id of a message the reader showed, and names
/// one of the reader's one-time prekeys, cannot make the reader delete it:
/// only the shown message itself, opening again, deletes its key.
#[test]
fn a_reused_message_id_deletes_no_one_time_prekey() {
    let world = World::new();
    world.register("John");
    let mut mallory = Client::connect_to(&world.server.addr).greet();
    mallory.register("Mallory", &keys()[2]);
    mallory.log_in("Mallory", &keys()[2]);
    let to_john = prekey_of(&world, "John");
    let header = Header::new(&name("Mallory"), &name("John"));
    let genuine = envelope::seal(&header, b"hello", &keys()[2], &to_john).unwrap();
    let sent = mallory.request(&send("John", &genuine));
    assert!(matches!(sent, Response::Sent { .. }), "{sent:?}");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hello"), "{stdout}");
    world.assert_queued_soon(0);

    // The same message id again, naming John's one-time prekey 7 (which
    // Mallory never claimed, so cannot seal to).
    let prekeys = world.account_dir("John").join("prekeys.toml");
    let held = |id: u32| {
        std::fs::read_to_string(&prekeys)
            .unwrap()
            .contains(&format!("id = {id}\ncreated_at"))
    };
    assert!(held(7));
    let named = envelope::RecipientPrekeys {
        one_time: Some(envelope::RecipientPrekey {
            id: 7,
            public_key: recipient_prekey(2).signed.public_key,
        }),
        ..to_john
    };
    let spoof = envelope::seal(&header, b"delete 7", &keys()[2], &named).unwrap();
    let sent = mallory.request(&send("John", &spoof));
    assert!(matches!(sent, Response::Sent { .. }), "{sent:?}");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    assert!(held(7), "one-time prekey 7 was deleted");
}

#[test]
fn a_sender_is_shown_as_registered_whatever_case_the_envelope_uses() {
    // The real server refuses such an envelope; one that delivers it
    // anyway cannot make John see a spelling the account does not have.
    let world = World::new();
    let slipping = slipping_proxy(&world);
    let mitm = &slipping.mitm;
    for user in ["Alice", "John"] {
        register_via(&world, mitm.port, user);
    }
    let header = Header::new(&name("ALICE"), &name("John"));
    let output = read_slipped(&world, &slipping, &header, b"in capitals");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("From: Alice\n"), "{stdout}");
    assert!(stdout.contains("    in capitals\n"), "{stdout}");
}
