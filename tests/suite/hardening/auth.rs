//! Authentication edges (issue 3, item 7): revoked, malformed and other
//! users' tokens are refused (expired ones: `server::in_process`); several
//! sessions per user may live at once and `logout` ends only its own (the
//! policy in SECURITY.md); and the server's log, even at trace level,
//! never holds a token or a body.

use crate::common::raw::{Client, error_code, keys, sealed};
use crate::common::{Server, World, start_server};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use msgr::wire::protocol::{Base64Bytes, ErrorCode, Request, Response};

/// A greeted connection on a server where Alice and John are registered.
fn with_accounts(server: &Server) -> Client {
    let [alice, john, _] = keys();
    let mut client = Client::greeted(server);
    client.register("Alice", alice);
    client.register("John", john);
    client
}

fn send_is(client: &mut Client, expected: ErrorCode) {
    let response = client.request(&sealed("Alice", "John", b"hi"));
    assert_eq!(error_code(&response), expected);
}

#[test]
fn logout_revokes_only_its_own_session() {
    let (_dir, server) = start_server(&[]);
    let mut first = with_accounts(&server);
    let alice = &keys()[0];
    let mut second = Client::greeted(&server);
    let (one, two) = (first.login("Alice", alice), second.login("Alice", alice));
    assert_ne!(one, two);
    for (client, token) in [(&mut first, &one), (&mut second, &two)] {
        assert!(matches!(
            client.authenticate("Alice", token),
            Response::Authenticated { .. }
        ));
    }
    // Another connection acting with the first session.
    let mut elsewhere = Client::greeted(&server);
    assert!(matches!(
        elsewhere.authenticate("Alice", &one),
        Response::Authenticated { .. }
    ));
    assert_eq!(first.request(&Request::Logout), Response::LoggedOut);
    send_is(&mut first, ErrorCode::AuthRequired);
    send_is(&mut elsewhere, ErrorCode::AuthFailed);
    let mut third = Client::greeted(&server);
    assert_eq!(
        error_code(&third.authenticate("Alice", &one)),
        ErrorCode::AuthFailed
    );
    // The other session, on its open connection and on a new one, lives on.
    assert!(matches!(
        second.request(&sealed("Alice", "John", b"still here")),
        Response::Sent { .. }
    ));
    assert!(matches!(
        third.authenticate("Alice", &two),
        Response::Authenticated { .. }
    ));
}

/// `logout_all` ends every session of the account, on every connection.
#[test]
fn logout_all_ends_every_session_of_the_account() {
    let (_dir, server) = start_server(&[]);
    let mut first = with_accounts(&server);
    let (alice, john) = (&keys()[0], &keys()[1]);
    let mut second = Client::greeted(&server);
    let mut johns = Client::greeted(&server);
    let (one, two) = (first.login("Alice", alice), second.login("Alice", alice));
    johns.log_in("John", john);
    assert_eq!(first.request(&Request::LogoutAll), Response::LoggedOut);
    send_is(&mut first, ErrorCode::AuthRequired);
    send_is(&mut second, ErrorCode::AuthFailed);
    for token in [&one, &two] {
        let mut later = Client::greeted(&server);
        assert_eq!(
            error_code(&later.authenticate("Alice", token)),
            ErrorCode::AuthFailed
        );
    }
    // John's session is his own.
    assert!(matches!(
        johns.request(&sealed("John", "Alice", b"still here")),
        Response::Sent { .. }
    ));
}

#[test]
fn malformed_tokens_are_refused_and_the_connection_stays_usable() {
    let (_dir, server) = start_server(&[]);
    let mut client = with_accounts(&server);
    let real = client.login("Alice", &keys()[0]);
    let mut flipped = real.0.clone();
    flipped[0] ^= 1;
    for token in [
        Vec::new(),
        vec![0; 31],
        vec![0; 32],
        [&real.0[..], &[0u8][..]].concat(),
        real.0[..31].to_vec(),
        flipped,
    ] {
        let response = client.authenticate("Alice", &Base64Bytes(token));
        assert_eq!(error_code(&response), ErrorCode::AuthFailed);
        send_is(&mut client, ErrorCode::AuthRequired);
    }
    for payload in [
        &br#"{"type":"authenticate","user":"Alice","token":"not base64!"}"#[..],
        br#"{"type":"authenticate","user":"Alice"}"#,
        br#"{"type":"authenticate","user":"Alice","token":42}"#,
    ] {
        let mut frame = Vec::new();
        msgr::wire::protocol::encode_frame(payload, &mut frame);
        client.send_raw(&frame);
        assert_eq!(error_code(&client.response()), ErrorCode::BadRequest);
    }
    assert!(matches!(
        client.authenticate("alice", &real),
        Response::Authenticated { .. }
    ));
}

#[test]
fn another_users_token_is_refused_and_drops_the_earlier_identity() {
    let (_dir, server) = start_server(&[]);
    let mut client = with_accounts(&server);
    let [alice, john, _] = keys();
    let alices = client.login("Alice", alice);
    client.log_in("John", john);
    let response = client.authenticate("John", &alices);
    assert_eq!(error_code(&response), ErrorCode::AuthFailed);
    // The failed attempt leaves the connection acting for nobody.
    let fetch = client.request(&Request::Fetch {
        after: 0,
        limit: 1,
        wait_ms: 0,
    });
    assert_eq!(error_code(&fetch), ErrorCode::AuthRequired);
    let unknown = client.authenticate("Nobody", &alices);
    assert_eq!(error_code(&unknown), ErrorCode::AuthFailed);
}

#[test]
fn the_server_log_never_shows_tokens_or_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_logging(&dir.path().join("server"), 0, &[], "trace");
    let [alice, john, _] = keys();
    let body = "a secret body 7f3a9c";
    let mut sender = with_accounts(&server);
    let token = sender.login("Alice", alice);
    sender.authenticate("Alice", &token);
    let Request::Send { envelope, .. } = sealed("Alice", "John", body.as_bytes()) else {
        unreachable!()
    };
    let sent = sender.request(&Request::Send {
        recipient: "John".into(),
        envelope: envelope.clone(),
    });
    assert!(matches!(sent, Response::Sent { .. }));
    assert_eq!(sender.request(&Request::Logout), Response::LoggedOut);
    let mut reader = Client::greeted(&server);
    reader.log_in("John", john);
    let ids = reader.fetch().iter().map(|m| m.id).collect();
    reader.request(&Request::Ack { ids });
    drop((sender, reader));

    let log = server.log_text();
    assert!(log.contains("message queued"), "the log is being written");
    let secrets = [
        ("the token", STANDARD.encode(&token.0)),
        ("the token's hex", hex(&token.0)),
        (
            "the envelope",
            STANDARD.encode(&envelope.0)[..40].to_owned(),
        ),
        ("the body", body.to_owned()),
    ];
    for (what, secret) in secrets {
        assert!(!log.contains(&secret), "the log shows {what}");
    }
}

#[test]
fn a_full_cli_flow_leaves_no_body_in_the_trace_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_logging(&dir.path().join("server"), 0, &[], "trace");
    let world = World { dir, server };
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "the cli body 51c2e8");
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("the cli body 51c2e8"));
    let log = world.server.log_text();
    assert!(log.contains("message queued"));
    assert!(!log.contains("51c2e8"), "the log shows the body");
    assert!(!log.contains("PRIVATE KEY"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Asking for login challenges, or answering one wrongly, stores nothing:
/// a session row exists only once a challenge was answered with the
/// account's signature.
#[test]
fn only_a_signed_login_makes_a_session() {
    let (_dir, server) = start_server(&[]);
    let mut client = with_accounts(&server);
    for _ in 0..5 {
        assert!(matches!(
            client.request(&Request::Login {
                user: "Alice".into()
            }),
            Response::LoginChallenge { .. }
        ));
    }
    let wrong = Request::LoginProof {
        signature: msgr::wire::protocol::Base64Bytes(vec![0; 384]),
    };
    assert_eq!(error_code(&client.request(&wrong)), ErrorCode::AuthFailed);
    let sessions = || server.count("SELECT count(*) FROM sessions");
    assert_eq!(sessions(), 0);
    client.log_in("Alice", &keys()[0]);
    assert_eq!(sessions(), 1);
}
