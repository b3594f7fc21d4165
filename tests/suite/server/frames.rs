//! The server on raw frames: a real `msgr serve` process, and the bare TLS
//! client of `crate::common::raw` that writes requests and reads responses byte
//! for byte, without the msgr client in between. Hostile input, limits and
//! authentication edges have their own `hardening_*` files.

use std::time::Duration;

use crate::common::raw::{Client, error_code, keys, prekeys, sealed};
use crate::common::{Server, name, start_server};
use msgr::wire::crypto::fingerprint;
use msgr::wire::envelope;
use msgr::wire::protocol::{
    ErrorCode, MAX_ONE_TIME_PREKEYS, PROTOCOL_VERSION, Request, Response, SignedPrekey,
};
use msgr::wire::signing::PrekeyKind;

#[test]
fn hello_reports_version_and_limit_over_the_announced_certificate() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::connect(&server);
    let leaf = client.stream.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(fingerprint(leaf.as_ref()), server.fingerprint);
    assert_eq!(
        client.hello(PROTOCOL_VERSION),
        Response::Hello {
            version: PROTOCOL_VERSION,
            max_envelope: 1024 * 1024 + 4096
        }
    );
}

#[test]
fn a_wrong_version_is_refused_and_the_connection_closed() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::connect(&server);
    let response = client.hello(PROTOCOL_VERSION + 1);
    assert_eq!(error_code(&response), ErrorCode::UnsupportedVersion);
    assert!(client.is_closed());
}

#[test]
fn garbage_json_gets_bad_request_and_the_connection_still_answers() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    client.send_raw(b"\0\0\0\x09{not json");
    assert_eq!(error_code(&client.response()), ErrorCode::BadRequest);
    let response = client.request(&Request::GetKey {
        user: "nobody".into(),
        claim: false,
    });
    assert_eq!(error_code(&response), ErrorCode::UnknownUser);
}

#[test]
fn a_4_gib_length_closes_the_connection_but_not_the_server() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    client.send_raw(&u32::MAX.to_be_bytes());
    assert_eq!(error_code(&client.response()), ErrorCode::TooLarge);
    assert!(client.is_closed());
    Client::greeted(&server);
}

#[test]
fn sending_needs_authentication() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    let response = client.request(&sealed("Alice", "John", b"hi"));
    assert_eq!(error_code(&response), ErrorCode::AuthRequired);
}

#[test]
fn names_are_unique_regardless_of_case_and_retries_are_idempotent() {
    let (_dir, server) = start_server(&[]);
    let [alice, other, _] = keys();
    let mut client = Client::greeted(&server);
    let registered = Response::Registered {
        user: "Alice".into(),
    };
    assert_eq!(client.register("Alice", alice), registered);
    assert_eq!(
        error_code(&client.register("alice", other)),
        ErrorCode::NameTaken
    );
    assert_eq!(client.register("Alice", alice), registered);
}

#[test]
fn register_login_send_fetch_and_ack() {
    let (_dir, server) = start_server(&[]);
    let [alice, john, _] = keys();
    let mut sender = Client::greeted(&server);
    sender.register("Alice", alice);
    sender.register("John", john);
    sender.log_in("Alice", alice);
    let Response::Sent { id } = sender.request(&sealed("Alice", "john", b"Hello John!")) else {
        panic!("send failed");
    };

    let mut reader = Client::greeted(&server);
    assert_eq!(reader.log_in("john", john), "John");
    let messages = reader.fetch();
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].id, messages[0].sender.as_str()), (id, "Alice"));
    let parsed = envelope::parse(&messages[0].envelope.0).unwrap();
    let body = parsed
        .open(&name("John"), &alice.public_key(), |_, _| {
            Some(&prekeys()[1])
        })
        .unwrap();
    assert_eq!(body, b"Hello John!");

    // Alice cannot acknowledge John's mail away; John can.
    let acked = |client: &mut Client| client.request(&Request::Ack { ids: vec![id] });
    assert_eq!(acked(&mut sender), Response::Acked { count: 0 });
    assert_eq!(acked(&mut reader), Response::Acked { count: 1 });
    assert!(reader.fetch().is_empty());
}

#[test]
fn a_waiting_fetch_returns_when_a_message_is_stored() {
    let (_dir, server) = start_server(&[]);
    let [alice, john, _] = keys();
    let mut reader = Client::greeted(&server);
    reader.register("Alice", alice);
    reader.register("John", john);
    reader.log_in("John", john);

    let started = std::time::Instant::now();
    assert!(
        reader.fetch_waiting(300).is_empty(),
        "an empty queue times out"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    let sender_server = server.addr.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut sender = Client::connect_to(&sender_server).greet();
        sender.log_in("Alice", &keys()[0]);
        sender.request(&sealed("Alice", "John", b"wake up"))
    });
    let started = std::time::Instant::now();
    let messages = reader.fetch_waiting(20_000);
    assert_eq!(messages.len(), 1, "woken by the new message");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no polling delay"
    );
    assert!(matches!(sender.join().unwrap(), Response::Sent { .. }));
}

#[test]
fn logout_ends_the_session_for_good() {
    let (_dir, server) = start_server(&[]);
    let [alice, ..] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    let token = client.login("Alice", alice);
    assert!(matches!(
        client.authenticate("Alice", &token),
        Response::Authenticated { .. }
    ));
    assert_eq!(client.request(&Request::Logout), Response::LoggedOut);
    assert_eq!(
        error_code(&client.request(&Request::Logout)),
        ErrorCode::AuthRequired
    );
    assert_eq!(
        error_code(&client.authenticate("Alice", &token)),
        ErrorCode::AuthFailed
    );
}

#[test]
fn a_name_no_account_can_have_fails_authentication_and_nothing_else() {
    let (_dir, server) = start_server(&[]);
    let [alice, ..] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    let token = client.login("Alice", alice);
    for name in ["Alice\0", "Al\0ice", "", "#1", &"a".repeat(300)] {
        let refused = client.authenticate(name, &token);
        assert_eq!(
            refused,
            Response::error(
                ErrorCode::AuthFailed,
                "the session token is unknown, expired or not this user's"
            ),
            "{name:?}"
        );
    }
    client.assert_authenticated("Alice", &token);
}

#[test]
fn an_envelope_must_name_the_authenticated_sender() {
    let (_dir, server) = start_server(&[]);
    let [alice, john, _] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    client.register("John", john);
    client.log_in("Alice", alice);
    let response = client.request(&sealed("John", "Alice", b"forged"));
    assert_eq!(error_code(&response), ErrorCode::BadRequest);
}

#[test]
fn sigterm_exits_cleanly_and_keeps_queued_messages() {
    // It checks the SQLite file's integrity.
    crate::common::sqlite_only();
    let (_dir, mut server) = start_server(&[]);
    let [alice, john, _] = keys();
    let mut idle = Client::greeted(&server);
    idle.register("Alice", alice);
    idle.register("John", john);
    idle.log_in("Alice", alice);
    assert!(matches!(
        idle.request(&sealed("Alice", "John", b"kept")),
        Response::Sent { .. }
    ));

    // An idle connection must not hold the shutdown up.
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "exit status {status}");
    assert!(server.log_text().contains("shut down cleanly"));
    assert!(idle.is_closed());
    // Closed cleanly: the write-ahead log was checkpointed and removed.
    assert!(!server.data_dir.join("msgr.db-wal").exists());
    let integrity: String = server
        .database()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let server = Server::start(&server.data_dir);
    let mut reader = Client::greeted(&server);
    reader.log_in("John", john);
    assert_eq!(reader.fetch().len(), 1);
}

/// One-time prekeys go into the pool only signed as such by the account's
/// key, at most a pool's worth at once; each is handed out to one claim,
/// which only an account can make; looking a key up claims nothing.
#[test]
fn one_time_prekeys_are_checked_pooled_and_handed_out_once() {
    let (_dir, server) = start_server(&[]);
    let mut alice = crate::common::raw::signed_in(&server, "Alice");
    let one_time = |kind, id| {
        let now = msgr::wire::protocol::unix_now();
        SignedPrekey::sign(kind, &name("Alice"), id, now, &prekeys()[0], &keys()[0]).unwrap()
    };
    let publish = |prekeys: Vec<SignedPrekey>| Request::PublishPrekeys {
        signed_prekey: None,
        one_time_prekeys: prekeys,
        replace_one_time_prekeys: false,
    };
    let as_signed = publish(vec![one_time(PrekeyKind::Signed, 1)]);
    assert_eq!(
        error_code(&alice.request(&as_signed)),
        ErrorCode::BadRequest
    );
    let too_many = publish(
        (1..=MAX_ONE_TIME_PREKEYS + 1)
            .map(|id| one_time(PrekeyKind::OneTime, id))
            .collect(),
    );
    assert_eq!(error_code(&alice.request(&too_many)), ErrorCode::BadRequest);
    assert_eq!(
        alice.request(&publish(vec![
            one_time(PrekeyKind::OneTime, 1),
            one_time(PrekeyKind::OneTime, 2)
        ])),
        Response::PrekeysPublished {
            one_time_prekeys: 2
        }
    );
    let key = |claim| Request::GetKey {
        user: "alice".into(),
        claim,
    };
    let handed = |response: Response| match response {
        Response::Key {
            one_time_prekey, ..
        } => one_time_prekey.map(|prekey| prekey.id),
        other => panic!("{other:?}"),
    };
    let mut anonymous = Client::greeted(&server);
    assert_eq!(
        error_code(&anonymous.request(&key(true))),
        ErrorCode::AuthRequired
    );
    assert_eq!(handed(anonymous.request(&key(false))), None);
    let mut john = Client::greeted(&server);
    john.register("John", &keys()[1]);
    john.log_in("John", &keys()[1]);
    assert_eq!(handed(john.request(&key(true))), Some(1));
    assert_eq!(handed(john.request(&key(true))), Some(2));
    assert_eq!(handed(john.request(&key(true))), None);
}
