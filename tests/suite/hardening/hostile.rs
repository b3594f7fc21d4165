//! Hostile bytes (issue 3, item 2): whatever a peer sends — plain text,
//! HTTP, random bytes inside or instead of TLS, lying or truncated length
//! prefixes, unknown requests, valid frames with invalid fields — it gets
//! an error response or a closed connection, and the server goes on
//! serving everyone else without its memory following the lies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::raw::{Client, READ_TIMEOUT, error_code, keys, sealed, send, signed_in};
use crate::common::{Server, start_server};
use msgr::wire::protocol::{Base64Bytes, ErrorCode, PROTOCOL_VERSION, Request, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The server still greets, registers and looks up for a newcomer.
fn assert_still_serving(server: &Server) {
    let mut client = Client::greeted(server);
    let response = client.request(&Request::GetKey {
        user: "nobody".into(),
        claim: false,
    });
    assert_eq!(error_code(&response), ErrorCode::UnknownUser);
}

/// Read until the server closes the socket; panics if it does not within
/// the read timeout. Returns what it sent first (such as a TLS alert).
fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    socket.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut received = Vec::new();
    match socket.read_to_end(&mut received) {
        Ok(_) => received,
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => received,
        Err(error) => panic!("the server kept the connection open: {error}"),
    }
}

/// Send TLS close_notify, then collect every response until the server
/// closes; every one must be an error. Write errors are ignored: the
/// server may have closed first.
fn finish_and_collect_errors(client: &mut Client) -> Vec<ErrorCode> {
    client.stream.conn.send_close_notify();
    let _ = client.stream.flush();
    let mut bytes = Vec::new();
    match client.stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => panic!("the server kept the connection open: {error}"),
    }
    let mut codes = Vec::new();
    let mut rest = &bytes[..];
    while let Some((payload, used)) = msgr::wire::protocol::decode_frame(rest, 1 << 24).unwrap() {
        codes.push(error_code(&Response::from_payload(payload).unwrap()));
        rest = &rest[used..];
    }
    codes
}

#[test]
fn plain_text_and_http_are_not_tls_and_get_closed() {
    let (_dir, server) = start_server(&["--handshake-timeout", "2"]);
    for greeting in [
        &b"hello there\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"\x16\x03\x01\xff\xff",
    ] {
        let mut socket = TcpStream::connect(&server.addr).unwrap();
        socket.write_all(greeting).unwrap();
        let reply = read_until_closed(&mut socket);
        assert!(
            !String::from_utf8_lossy(&reply).contains("HTTP"),
            "no plaintext answer"
        );
    }
    assert_still_serving(&server);
}

#[test]
fn random_bytes_instead_of_tls_records_close_the_connection() {
    let (_dir, server) = start_server(&[]);
    let mut rng = StdRng::seed_from_u64(3);
    for _ in 0..5 {
        let mut client = Client::greeted(&server);
        let garbage: Vec<u8> = (0..rng.gen_range(1..4096)).map(|_| rng.r#gen()).collect();
        // Straight onto the TCP socket, under the TLS layer; then end the
        // stream, so a record header promising more cannot keep it open.
        client.stream.sock.write_all(&garbage).unwrap();
        client
            .stream
            .sock
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
        read_until_closed(&mut client.stream.sock);
    }
    assert_still_serving(&server);
}

#[test]
fn random_bytes_inside_tls_get_errors_or_a_close() {
    let (_dir, server) = start_server(&[]);
    let mut rng = StdRng::seed_from_u64(2);
    for _ in 0..20 {
        let mut client = Client::greeted(&server);
        let garbage: Vec<u8> = (0..rng.gen_range(1..4096)).map(|_| rng.r#gen()).collect();
        let _ = client.stream.write_all(&garbage);
        for code in finish_and_collect_errors(&mut client) {
            assert!(
                matches!(code, ErrorCode::BadRequest | ErrorCode::TooLarge),
                "{code:?}"
            );
        }
    }
    assert_still_serving(&server);
}

#[test]
fn well_framed_garbage_gets_bad_request_and_the_connection_stays() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    let mut rng = StdRng::seed_from_u64(1);
    let nested = "[".repeat(100_000);
    let mut payloads: Vec<Vec<u8>> = vec![
        br#"{"type":"shutdown"}"#.to_vec(),
        br#"{"type":"login","user":"a","admin":true}"#.to_vec(),
        br#"{"type":"fetch","after":-1,"limit":1}"#.to_vec(),
        br#"{"type":"ack","ids":[1.5]}"#.to_vec(),
        b"\xff\xfe\x00not utf-8".to_vec(),
        nested.into_bytes(),
        Vec::new(),
    ];
    payloads.extend((0..30).map(|_| (0..rng.gen_range(1..512)).map(|_| rng.r#gen()).collect()));
    for payload in payloads {
        let mut frame = Vec::new();
        msgr::wire::protocol::encode_frame(&payload, &mut frame);
        client.send_raw(&frame);
        assert_eq!(error_code(&client.response()), ErrorCode::BadRequest);
    }
    let response = client.request(&Request::GetKey {
        user: "nobody".into(),
        claim: false,
    });
    assert_eq!(error_code(&response), ErrorCode::UnknownUser);
}

#[test]
fn requests_before_hello_are_refused_and_closed() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::connect(&server);
    let response = client.request(&Request::Login { user: "a".into() });
    assert_eq!(error_code(&response), ErrorCode::BadRequest);
    assert!(client.is_closed());

    let mut client = Client::connect(&server);
    client.send_raw(&u32::MAX.to_be_bytes());
    assert_eq!(error_code(&client.response()), ErrorCode::TooLarge);
    assert!(client.is_closed());
    assert_still_serving(&server);
}

#[test]
fn a_truncated_frame_is_dropped_without_harm() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    let frame = Request::GetKey {
        user: "John".into(),
        claim: false,
    }
    .to_frame();
    client.send_raw(&frame[..frame.len() - 3]);
    assert!(finish_and_collect_errors(&mut client).is_empty());
    assert_still_serving(&server);
}

// Over 60 lines: a table of hostile requests and their expected codes,
// sent on one connection, then proof that it still serves.
#[test]
fn invalid_fields_get_precise_errors() {
    let (_dir, server) = start_server(&[]);
    let [alice, john, _] = keys();
    let mut client = signed_in(&server, "Alice");
    let der = alice.public_key().to_der();
    let cases: Vec<(Request, ErrorCode)> = vec![
        (get_key("../etc/passwd"), ErrorCode::InvalidName),
        (get_key(""), ErrorCode::InvalidName),
        (get_key(&"x".repeat(33)), ErrorCode::InvalidName),
        (get_key("Ca rol"), ErrorCode::InvalidName),
        (get_key("nobody"), ErrorCode::UnknownUser),
        (Request::Login { user: "é".into() }, ErrorCode::InvalidName),
        (
            register("a b", der.clone(), vec![0; 256]),
            ErrorCode::InvalidName,
        ),
        (
            register("Carol", b"not a key".to_vec(), vec![0; 256]),
            ErrorCode::BadRequest,
        ),
        (
            register("Carol", der.clone(), vec![0; 256]),
            ErrorCode::BadRequest,
        ),
        (
            register(
                "Carol",
                der,
                alice
                    .sign(&msgr::wire::signing::envelope(b"something else"))
                    .unwrap(),
            ),
            ErrorCode::BadRequest,
        ),
        (send("", b"x"), ErrorCode::InvalidName),
        (send("John", b""), ErrorCode::BadRequest),
        (send("John", b"MSGR\x01garbage"), ErrorCode::BadRequest),
        (sealed("Alice", "nobody", b"hi"), ErrorCode::UnknownUser),
        (misdirected(), ErrorCode::BadRequest),
    ];
    for (request, expected) in cases {
        let response = client.request(&request);
        assert_eq!(error_code(&response), expected, "{request:?}: {response:?}");
    }
    // Out-of-range numbers are harmless, not errors.
    let odd_ack = client.request(&Request::Ack {
        ids: vec![0, u64::MAX, i64::MAX as u64 + 1],
    });
    assert_eq!(odd_ack, Response::Acked { count: 0 });
    for (after, limit) in [(u64::MAX, 10), (0, 0), (0, u32::MAX)] {
        let page = client.request(&Request::Fetch {
            after,
            limit,
            wait_ms: 0,
        });
        assert_eq!(page, Response::Messages { messages: vec![] });
    }
    assert!(matches!(
        client.register("John", john),
        Response::Registered { .. }
    ));
}

#[test]
fn bad_base64_in_a_field_is_a_bad_request() {
    let (_dir, server) = start_server(&[]);
    let mut client = Client::greeted(&server);
    let payload = br#"{"type":"register","user":"Carol","public_key":"@@@","proof":""}"#;
    let mut frame = Vec::new();
    msgr::wire::protocol::encode_frame(payload, &mut frame);
    client.send_raw(&frame);
    assert_eq!(error_code(&client.response()), ErrorCode::BadRequest);
}

#[test]
fn an_envelope_over_the_limit_is_refused_but_the_connection_stays() {
    let (_dir, server) = start_server(&["--max-message-bytes", "1000"]);
    let mut client = signed_in(&server, "Alice");
    let response = client.request(&send("John", &[0; 1001]));
    assert_eq!(error_code(&response), ErrorCode::TooLarge);
    let response = client.request(&sealed("Alice", "John", b"small"));
    assert!(matches!(response, Response::Sent { .. }), "{response:?}");
}

#[test]
fn lying_length_prefixes_do_not_make_the_server_allocate() {
    // Each connection announces the largest frame the server takes (about
    // 11 MiB at this limit) and sends a few bytes of it.
    let (_dir, server) = start_server(&[
        "--max-message-bytes",
        "8388608",
        "--max-connections-per-source",
        "64",
    ]);
    let before = memory_kib(server.pid());
    let liars: Vec<Client> = (0..40)
        .map(|_| {
            let mut client = Client::greeted(&server);
            client.send_raw(&11_000_000u32.to_be_bytes());
            client.send_raw(br#"{"type":"send","recipient":"John","envelope":""#);
            client
        })
        .collect();
    assert_still_serving(&server);
    let after = memory_kib(server.pid());
    // Allocating the announced lengths would take 440 MiB.
    assert!(
        after.saturating_sub(before) < 100 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    drop(liars);
}

/// Until a connection logs in its frames are small — 1 KiB before `hello`,
/// 256 KiB after — so that the most connections the server admits, each
/// holding a nearly complete frame of its largest allowed size, hold little
/// memory, whatever the largest message; only an account's connection may
/// send a message-sized frame.
#[test]
fn frames_before_logging_in_are_small_and_memory_stays_bounded() {
    let (_dir, server) = start_server(&[
        "--max-message-bytes",
        "8388608",
        "--max-connections",
        "64",
        "--max-pending",
        "64",
        "--max-connections-per-source",
        "64",
    ]);
    let frame = |length: usize| (length as u32).to_be_bytes();
    let mut before_hello = Client::connect(&server);
    before_hello.send_raw(&frame(2000));
    assert_eq!(error_code(&before_hello.response()), ErrorCode::TooLarge);
    assert!(before_hello.is_closed());
    let mut anonymous = Client::greeted(&server);
    anonymous.send_raw(&frame(300 * 1024));
    assert_eq!(error_code(&anonymous.response()), ErrorCode::TooLarge);
    assert!(anonymous.is_closed());

    let before = memory_kib(server.pid());
    let greeted: Vec<Client> = (0..64)
        .map(|_| {
            let mut client = Client::greeted(&server);
            client.send_raw(&frame(256 * 1024));
            client.send_raw(&vec![b' '; 255 * 1024]);
            client
        })
        .collect();
    let pending: Vec<Client> = (0..64)
        .map(|_| {
            let mut client = Client::connect(&server);
            client.send_raw(&frame(1024));
            client.send_raw(&[b' '; 1000]);
            client
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let after = memory_kib(server.pid());
    // 64 × 256 KiB of frames, plus TLS buffers; unlimited, the announced
    // 8 MiB messages would be 700 MiB.
    let grown = after.saturating_sub(before);
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
    drop((greeted, pending));
    assert_still_serving(&server);
}

/// Resident plus swapped-out memory of process `pid`, in KiB.
fn memory_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|line| line.starts_with("VmRSS:") || line.starts_with("VmSwap:"))
        .map(|line| {
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[test]
fn a_wrong_protocol_version_is_refused_without_a_slot() {
    let (_dir, server) = start_server(&["--max-connections", "1"]);
    let _holder = Client::greeted(&server);
    let started = Instant::now();
    let mut client = Client::connect(&server);
    let response = client.hello(PROTOCOL_VERSION + 7);
    assert_eq!(error_code(&response), ErrorCode::UnsupportedVersion);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// An envelope sealed for John, sent to Alice's queue.
fn misdirected() -> Request {
    let Request::Send { envelope, .. } = sealed("Alice", "John", b"for John") else {
        unreachable!()
    };
    Request::Send {
        recipient: "Alice".into(),
        envelope,
    }
}

fn get_key(user: &str) -> Request {
    Request::GetKey {
        user: user.into(),
        claim: false,
    }
}

/// A `register` for `user` (any string) with Alice's prekey: every case
/// here is refused before the prekey is looked at.
fn register(user: &str, public_key: Vec<u8>, proof: Vec<u8>) -> Request {
    Request::Register {
        user: user.into(),
        public_key: Base64Bytes(public_key),
        signed_prekey: crate::common::raw::signed_prekey("Alice", 0),
        one_time_prekeys: Vec::new(),
        proof: Base64Bytes(proof),
    }
}
