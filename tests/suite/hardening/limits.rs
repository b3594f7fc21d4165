//! Bounded resources (issue 3, item 1): every limit is a `serve` flag with
//! a checked range, a full mailbox and a busy source address get clear
//! refusals, silent connections are timed out, and connections beyond the
//! limit wait without starving those in service.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::common::raw::{Client, error_code, keys, sealed, signed_in, tcp_from};
use crate::common::{Server, World, msgr_bare, start_server};
use msgr::wire::protocol::{ErrorCode, FETCH_PAGE, Request, Response};
use predicates::prelude::*;

/// `msgr serve 0` with `flags`, expected to refuse to start.
fn refused_serve(flags: &[&str]) -> assert_cmd::assert::Assert {
    let dir = tempfile::tempdir().unwrap();
    msgr_bare()
        .args(["serve", "0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(dir.path())
        .args(flags)
        .assert()
        .code(2)
}

#[test]
fn limits_out_of_range_stop_the_server_before_it_starts() {
    refused_serve(&["--max-message-bytes", "8388609"]).stderr(predicate::str::contains(
        "--max-message-bytes is at most 8388608 (8 MiB), so that every message fits in one \
         response to a client",
    ));
    for flag in [
        "--max-connections",
        "--max-pending",
        "--idle-timeout",
        "--handshake-timeout",
        "--max-logins-per-minute",
        "--session-ttl",
    ] {
        refused_serve(&[flag, "0"]).stderr(predicate::str::contains(format!(
            "{flag} must be at least 1"
        )));
    }
    refused_serve(&["--max-queued-bytes", "10"]).stderr(predicate::str::contains(
        "--max-queued-bytes must be at least --max-message-bytes",
    ));
}

#[test]
fn the_data_dir_and_database_are_made_private() {
    // It checks the data directory's modes.
    crate::common::sqlite_only();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("server");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_with(&data_dir, 0, &[]);
    let mode = |name: &str| {
        let meta = std::fs::metadata(data_dir.join(name)).unwrap();
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode(""), 0o700);
    for file in ["msgr.db", "msgr.db-wal", "msgr.db-shm", "key.pem"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
    assert!(server.log_text().contains("restricted it to its owner"));
}

#[test]
fn the_largest_allowed_messages_reach_the_reader_one_page_each() {
    let world = World::with_server_args(&["--max-message-bytes", "8388608"]);
    world.register("Alice");
    world.register("John");
    let body = "x".repeat(8 * 1024 * 1024 - 4096);
    for _ in 0..2 {
        world
            .msgr("Alice")
            .args(["create", "John", "-"])
            .write_stdin(body.clone())
            .assert()
            .success();
    }
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches(&body).count(), 2);
}

/// One account cannot fill another's mailbox for everyone: its messages
/// take at most their share of the quota, and others can still send.
#[test]
fn one_sender_fills_only_its_share_of_a_mailbox() {
    let world = World::with_server_args(&["--max-queued-messages", "4", "--sender-share", "50"]);
    for user in ["Alice", "Carol", "John"] {
        world.register(user);
    }
    world.send("Alice", "John", "one");
    world.send("Alice", "John", "two");
    world
        .msgr("Alice")
        .args(["create", "John", "three"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "your 2 messages waiting for John take all of your share of their mailbox \
             on this server, so the message was not sent",
        ));
    world.send("Carol", "John", "still room for me");
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("still room for me") && !stdout.contains("three"));
    world.assert_queued_soon(0);
    world.send("Alice", "John", "three");
}

#[test]
fn a_full_mailbox_is_a_clear_refusal_until_the_recipient_reads() {
    // One sender may fill all of it here.
    let world = World::with_server_args(&["--max-queued-messages", "2", "--sender-share", "100"]);
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "one");
    world.send("Alice", "John", "two");
    world
        .msgr("Alice")
        .args(["create", "John", "three"])
        .assert()
        .code(7)
        .stdout("")
        .stderr(
            "msgr: John's mailbox on this server is full, so the message was not sent; \
             send it again after the recipient has read their messages\n",
        );
    let output = world
        .msgr("Alice")
        .args(["--json", "create", "John", "three"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "{\"level\":\"error\",\"code\":\"refused\",\"exit_status\":7,\
         \"message\":\"John's mailbox on this server is full, so the message was not sent\",\
         \"hint\":\"send it again after the recipient has read their messages\"}\n"
    );
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("one") && stdout.contains("two") && !stdout.contains("three"));
    world.send("Alice", "John", "three");
}

#[test]
fn the_mailbox_byte_quota_counts_envelope_bytes() {
    let (_dir, server) = start_server(&[
        "--max-message-bytes",
        "2000",
        "--max-queued-bytes",
        "2000",
        "--sender-share",
        "100",
    ]);
    let mut client = signed_in(&server, "Alice");
    let mut queued = 0;
    let refused = loop {
        let request = sealed("Alice", "John", b"fill");
        let Request::Send { envelope, .. } = &request else {
            unreachable!()
        };
        let size = envelope.0.len();
        match client.request(&request) {
            Response::Sent { .. } => queued += size,
            other => break (other, size),
        }
        assert!(queued <= 2000, "the quota was passed");
    };
    assert_eq!(error_code(&refused.0), ErrorCode::MailboxFull);
    assert!(queued + refused.1 > 2000);
    // Alice's own queue is not John's.
    let mut john = Client::greeted(&server);
    john.log_in("John", &keys()[1]);
    let reply = john.request(&sealed("John", "Alice", b"room here"));
    assert!(matches!(reply, Response::Sent { .. }), "{reply:?}");
}

#[test]
fn logins_and_registrations_are_rate_limited_per_source_address() {
    let (_dir, server) = start_server(&[
        "--max-logins-per-minute",
        "2",
        "--max-registrations-per-hour",
        "2",
    ]);
    let [alice, john, carol] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    client.register("John", john);
    let refused = client.register("Carol", carol);
    assert_eq!(error_code(&refused), ErrorCode::RateLimited);
    let Response::Error {
        message,
        retry_after,
        ..
    } = refused
    else {
        unreachable!()
    };
    assert_eq!(message, "too many register requests from your address");
    // Two an hour: one comes back half an hour after the last was spent.
    let wait = retry_after.expect("the wait is given");
    assert!((1700..=1800).contains(&wait), "{wait}");
    let token = client.login("Alice", alice);
    client.login("John", john);
    let refused = client.request(&Request::Login {
        user: "Alice".into(),
    });
    assert_eq!(error_code(&refused), ErrorCode::RateLimited);
    // A session already held still works: only new logins are limited.
    assert!(matches!(
        client.authenticate("Alice", &token),
        Response::Authenticated { .. }
    ));
    // Another source address has its own allowance.
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut elsewhere = Client::over(tcp_from(other, &server.addr)).greet();
    assert!(matches!(
        elsewhere.register("Carol", carol),
        Response::Registered { .. }
    ));
    elsewhere.log_in("Carol", carol);
}

/// Names cannot be listed quickly: `get_key` from a connection that acts
/// for nobody is limited per source address, while a logged-in one (a
/// sender sealing) is not; a name that breaks the rules costs no
/// registration allowance; and a huge name is not echoed back whole.
#[test]
fn anonymous_lookups_are_rate_limited_and_bad_names_cost_nothing() {
    let (_dir, server) = start_server(&[
        "--max-lookups-per-minute",
        "3",
        "--max-registrations-per-hour",
        "1",
    ]);
    let alice = &keys()[0];
    let mut client = Client::greeted(&server);
    let bad_name = Request::Register {
        user: "a b".into(),
        public_key: msgr::wire::protocol::Base64Bytes(alice.public_key().to_der()),
        signed_prekey: crate::common::raw::signed_prekey("Alice", 0),
        one_time_prekeys: Vec::new(),
        proof: msgr::wire::protocol::Base64Bytes(vec![0; 256]),
    };
    for _ in 0..3 {
        assert_eq!(
            error_code(&client.request(&bad_name)),
            ErrorCode::InvalidName
        );
    }
    assert!(matches!(
        client.register("Alice", alice),
        Response::Registered { .. }
    ));
    let lookup = |name: &str| Request::GetKey {
        user: name.into(),
        claim: false,
    };
    for _ in 0..3 {
        assert_eq!(
            error_code(&client.request(&lookup("nobody"))),
            ErrorCode::UnknownUser
        );
    }
    let refused = client.request(&lookup("Alice"));
    assert_eq!(error_code(&refused), ErrorCode::RateLimited);
    client.log_in("Alice", alice);
    for _ in 0..5 {
        assert!(matches!(
            client.request(&lookup("Alice")),
            Response::Key { .. }
        ));
    }
    let huge = client.request(&lookup(&"x".repeat(1 << 20)));
    let Response::Error { code, message, .. } = huge else {
        panic!("{huge:?}");
    };
    assert_eq!(code, ErrorCode::InvalidName);
    assert!(message.len() < 200, "{} bytes", message.len());
}

/// A server whose data volume is down to its reserve takes no messages,
/// and says so, rather than fill the disk.
#[test]
fn sends_stop_before_the_disk_fills() {
    // The free-space reserve is the data volume's.
    crate::common::sqlite_only();
    // A reserve of 1 EiB: more than any disk here has free.
    let world = World::with_server_args(&["--min-free-disk", "1152921504606846976"]);
    world.register("Alice");
    world.register("John");
    world
        .msgr("Alice")
        .args(["create", "John", "no room"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "the server is running out of disk space and takes no messages now",
        ));
    assert_eq!(world.queued(), 0);
}

/// One key cannot open accounts without bound.
#[test]
fn a_key_is_registered_under_a_bounded_number_of_accounts() {
    let (_dir, server) = start_server(&["--max-accounts-per-key", "1"]);
    let alice = &keys()[0];
    let mut client = Client::greeted(&server);
    assert!(matches!(
        client.register("Alice", alice),
        Response::Registered { .. }
    ));
    let refused = client.register("Alicia", alice);
    let Response::Error { code, message, .. } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(code, ErrorCode::KeyInUse);
    assert_eq!(
        message,
        "this key is registered under 1 account(s) on this server already"
    );
    assert!(matches!(
        client.register("Alice", alice),
        Response::Registered { .. }
    ));
}

/// The wait is said once, in the hint, and given to scripts as a number.
#[test]
fn a_rate_limited_client_exits_7_and_says_how_long_to_wait() {
    let world = World::with_server_args(&["--max-registrations-per-hour", "1"]);
    world.register("Alice");
    let output = world
        .msgr("John")
        .args(["--json", "register", "--bits", "2048"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    // After the notice of the server's certificate pinned, the error.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap();
    let error: serde_json::Value = serde_json::from_str(last).unwrap();
    // One an hour, spent moments ago (the seconds since, rounded down).
    let wait = error["retry_after"]
        .as_u64()
        .expect("retry_after is a number");
    assert!((3500..=3600).contains(&wait), "{wait}");
    assert_eq!(
        last,
        format!(
            "{{\"level\":\"error\",\"code\":\"refused\",\"exit_status\":7,\
             \"message\":\"too many register requests from your address\",\
             \"hint\":\"try again in {wait} seconds\",\"retry_after\":{wait}}}"
        )
    );
    let output = world
        .msgr("John")
        .args(["register", "--bits", "2048"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let wait = stderr
        .strip_prefix("msgr: too many register requests from your address; try again in ")
        .and_then(|rest| rest.strip_suffix(" seconds\n"))
        .and_then(|seconds| seconds.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!((3500..=3600).contains(&wait), "{wait}");
}

/// How long until the server closes `socket`, which sends nothing more.
fn time_to_close(socket: &mut TcpStream) -> Duration {
    let started = Instant::now();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sink = Vec::new();
    let result = socket.read_to_end(&mut sink);
    assert!(
        !matches!(&result, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "not closed within 10 s"
    );
    started.elapsed()
}

#[test]
fn silent_connections_are_closed_after_the_timeouts() {
    let (_dir, server) = start_server(&["--handshake-timeout", "1", "--idle-timeout", "2"]);
    // No TLS at all.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    let waited = time_to_close(&mut silent);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    // TLS, but no hello: the handshake timeout covers the hello too.
    let mut unannounced = Client::connect(&server);
    assert!(time_to_close(&mut unannounced.stream.sock) < Duration::from_secs(3));
    // Greeted but not logged in, then idle: no longer than a handshake.
    let mut anonymous = Client::greeted(&server);
    let waited = time_to_close(&mut anonymous.stream.sock);
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(1900),
        "{waited:?}"
    );
    // Logged in, then idle: the idle timeout.
    let mut idle = signed_in(&server, "Alice");
    let waited = time_to_close(&mut idle.stream.sock);
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    // Half a frame, then nothing: the idle timeout too.
    let mut stalled = Client::greeted(&server);
    stalled.send_raw(b"\0\0\0\x40{\"type\"");
    let waited = time_to_close(&mut stalled.stream.sock);
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

/// One address cannot take every connection slot: beyond its share its
/// new connections are told the server is busy, and another address is
/// served at once. A client that waited for a slot in vain says the server
/// is busy, not that the connection broke.
#[test]
fn one_address_cannot_take_every_connection_slot() {
    let world = World::with_server_args(&[
        "--max-connections",
        "3",
        "--max-connections-per-source",
        "2",
        "--handshake-timeout",
        "1",
    ]);
    world.register("John");
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    // Logged in, so that they may idle.
    let alice = &keys()[0];
    let _held: Vec<Client> = (0..2)
        .map(|_| {
            let mut held = Client::over(tcp_from(other, &world.server.addr)).greet();
            held.register("Alice", alice);
            held.log_in("Alice", alice);
            held
        })
        .collect();
    let mut third = Client::over(tcp_from(other, &world.server.addr));
    let refused = third.hello(msgr::wire::protocol::PROTOCOL_VERSION);
    assert_eq!(error_code(&refused), ErrorCode::Busy, "{refused:?}");

    // Had this client been kept waiting for a slot, the handshake timeout
    // would have ended it with "busy".
    world.msgr("John").args(["key", "John"]).assert().success();

    // The last slot taken (by a logged-in connection, which may idle) from
    // this address: the next client waits a handshake timeout for one,
    // then is told the server is busy.
    let mut last = Client::greeted(&world.server);
    last.register("Carol", &keys()[2]);
    last.log_in("Carol", &keys()[2]);
    world
        .msgr("John")
        .args(["key", "John"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "the server is busy: no connection slot came free in time",
        ));
}

#[test]
fn connections_beyond_the_limit_wait_without_starving_those_in_service() {
    let (_dir, server) = start_server(&["--max-connections", "1"]);
    let mut served = Client::greeted(&server);
    let mut waiting = Client::connect(&server);
    waiting.send_raw(
        &Request::Hello {
            version: msgr::wire::protocol::PROTOCOL_VERSION,
        }
        .to_frame(),
    );
    assert!(
        waiting.stays_silent_for(Duration::from_millis(300)),
        "no hello back while the only slot is taken"
    );
    for _ in 0..5 {
        let response = served.request(&Request::GetKey {
            user: "nobody".into(),
            claim: false,
        });
        assert_eq!(error_code(&response), ErrorCode::UnknownUser);
    }
    drop(served);
    assert!(matches!(waiting.response(), Response::Hello { .. }));
}

/// An `ack` carries at most a fetch page's ids, deleted in one statement,
/// so no `ack` holds the database writer for long.
#[test]
fn an_ack_carries_at_most_a_page_of_ids() {
    let (_dir, server) = start_server(&[]);
    let mut alice = signed_in(&server, "Alice");
    for body in [b"one", b"two", b"six"] {
        assert!(matches!(
            alice.request(&sealed("Alice", "John", body)),
            Response::Sent { .. }
        ));
    }
    let mut john = signed_in(&server, "John");
    let queued: Vec<u64> = john.fetch().iter().map(|message| message.id).collect();
    assert_eq!(queued.len(), 3);
    let page = u64::from(FETCH_PAGE);
    let too_many = Request::Ack {
        ids: (1..=page + 1).collect(),
    };
    assert_eq!(error_code(&john.request(&too_many)), ErrorCode::BadRequest);
    assert_eq!(john.fetch().len(), 3, "nothing was deleted");
    let mut ids: Vec<u64> = (1_000_000..).take(FETCH_PAGE as usize - 3).collect();
    ids.extend(&queued);
    assert_eq!(
        john.request(&Request::Ack { ids }),
        Response::Acked { count: 3 }
    );
    assert!(john.fetch().is_empty());
}

/// Large frames being read or waiting for the database share one
/// server-wide budget of bytes: with room for one, a second connection's
/// large message is not read until the first one has been handled.
#[test]
fn large_frames_share_a_server_wide_budget() {
    let (_dir, server) = start_server(&[
        "--max-message-bytes",
        "1048576",
        "--max-buffered-bytes",
        "1700000",
    ]);
    let mut first = signed_in(&server, "Alice");
    let mut second = signed_in(&server, "Alice");
    let large = || sealed("Alice", "John", &vec![b'x'; 700_000]).to_frame();
    let (one, two) = (large(), large());
    assert!(one.len() + two.len() > 1_700_000, "two do not fit at once");
    let half = one.len() / 2;
    first.send_raw(&one[..half]);
    // Time for the server to read the first frame's length and take its
    // share of the budget; nothing on the wire says when it has.
    std::thread::sleep(Duration::from_secs(1));
    second.send_raw(&two);
    assert!(
        second.stays_silent_for(Duration::from_millis(800)),
        "the second large message waits while the first holds the budget"
    );
    first.send_raw(&one[half..]);
    assert!(matches!(first.response(), Response::Sent { .. }));
    assert!(matches!(second.response(), Response::Sent { .. }));
}
