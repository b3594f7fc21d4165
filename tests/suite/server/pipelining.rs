//! Pipelined requests on one connection: the server reads `send`s ahead so
//! that they share group commits, yet answers every request in order, and
//! handles any other request only after the sends before it are answered;
//! a waiting `fetch` ends as soon as the next request arrives.

use std::io::Read;
use std::time::{Duration, Instant};

use crate::common::raw::{Client, error_code, keys, recipient_prekey, sealed, signed_in};
use crate::common::{name, start_server};
use msgr::wire::envelope::{self, Header};
use msgr::wire::protocol::{Base64Bytes, ErrorCode, FETCH_PAGE, Request, Response};

/// A `send` of `body` from Alice to her own queue.
fn note_to_self(body: &[u8]) -> Request {
    let alice = &keys()[0];
    let header = Header::new(&name("Alice"), &name("Alice"));
    let envelope = envelope::seal(&header, body, alice, &recipient_prekey(0)).unwrap();
    Request::Send {
        recipient: "Alice".into(),
        envelope: Base64Bytes(envelope),
    }
}

/// The ids of `sent` responses; panics on any other response.
fn sent_ids(responses: &[Response]) -> Vec<u64> {
    responses
        .iter()
        .map(|response| match response {
            Response::Sent { id } => *id,
            other => panic!("expected sent, got {other:?}"),
        })
        .collect()
}

fn assert_increasing(ids: &[u64]) {
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
}

fn first_page() -> Request {
    Request::Fetch {
        after: 0,
        limit: FETCH_PAGE,
        wait_ms: 0,
    }
}

#[test]
fn pipelined_sends_are_answered_in_order_and_a_fetch_after_them_sees_them_all() {
    let (_dir, server) = start_server(&[]);
    let mut alice = signed_in(&server, "Alice");
    let mut requests: Vec<Request> = (0..200)
        .map(|n| note_to_self(format!("note {n}").as_bytes()))
        .collect();
    requests.push(first_page());

    let mut responses = alice.pipeline(&requests);
    let Some(Response::Messages { messages }) = responses.pop() else {
        panic!("fetch: {responses:?}");
    };
    let ids = sent_ids(&responses);
    assert_eq!(ids.len(), 200);
    assert_increasing(&ids);
    let fetched: Vec<u64> = messages.iter().map(|message| message.id).collect();
    assert_eq!(fetched, ids);
    for (message, request) in messages.iter().zip(&requests) {
        let Request::Send { envelope, .. } = request else {
            unreachable!()
        };
        assert_eq!(message.envelope, *envelope);
    }
}

/// A `fetch` of the queue after `after` that waits up to 30 seconds.
fn waiting_fetch(after: u64) -> Request {
    Request::Fetch {
        after,
        limit: FETCH_PAGE,
        wait_ms: 30_000,
    }
}

/// The messages of a `messages` response; panics on any other response.
fn messages(response: Response) -> Vec<msgr::wire::protocol::QueuedMessage> {
    match response {
        Response::Messages { messages } => messages,
        other => panic!("expected messages, got {other:?}"),
    }
}

#[test]
fn a_waiting_fetch_is_answered_as_soon_as_the_next_request_arrives() {
    let (_dir, server) = start_server(&[]);
    let mut alice = signed_in(&server, "Alice");
    alice.send_raw(&waiting_fetch(0).to_frame());
    assert!(alice.stays_silent_for(Duration::from_millis(300)), "held");

    // The next request ends the wait: the fetch is answered with what it
    // has (nothing), then the request is handled as usual.
    let started = Instant::now();
    alice.send_raw(&note_to_self(b"hello").to_frame());
    assert!(messages(alice.response()).is_empty());
    let [id] = sent_ids(&[alice.response()])[..] else {
        unreachable!()
    };
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing was lost: the message waits for the next fetch, which is
    // answered at once as something is queued.
    let fetched = messages(alice.request(&waiting_fetch(0)));
    assert_eq!(fetched.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);

    // Pipelined behind a waiting fetch, a request ends it at once.
    let started = Instant::now();
    let responses = alice.pipeline(&[waiting_fetch(id), first_page()]);
    assert!(started.elapsed() < Duration::from_secs(10));
    let [held, page] = <[Response; 2]>::try_from(responses).unwrap();
    assert!(messages(held).is_empty());
    assert_eq!(messages(page).len(), 1);

    // Without another request, the wait still ends with a message.
    alice.send_raw(&waiting_fetch(id).to_frame());
    assert!(alice.stays_silent_for(Duration::from_millis(300)), "held");
    let mut john = Client::greeted(&server);
    john.log_in("John", &keys()[1]);
    john.request(&sealed("John", "Alice", b"hi"));
    assert_eq!(messages(alice.response()).len(), 1);
}

#[test]
fn a_refused_send_gets_its_error_in_its_place_between_successful_ones() {
    let (_dir, server) = start_server(&[]);
    let mut alice = signed_in(&server, "Alice");
    let alice_key = &keys()[0];
    let to_nobody = envelope::seal(
        &Header::new(&name("Alice"), &name("Nobody")),
        b"lost",
        alice_key,
        &recipient_prekey(1),
    )
    .unwrap();
    let Request::Send {
        envelope: for_john, ..
    } = sealed("Alice", "John", b"for John")
    else {
        unreachable!()
    };
    let requests = [
        sealed("Alice", "John", b"one"),
        // Refused once the store finds no such user.
        Request::Send {
            recipient: "Nobody".into(),
            envelope: Base64Bytes(to_nobody),
        },
        sealed("Alice", "John", b"two"),
        // Refused at once: the envelope is addressed to John.
        Request::Send {
            recipient: "Alice".into(),
            envelope: for_john,
        },
        sealed("Alice", "John", b"three"),
    ];

    let responses = alice.pipeline(&requests);
    assert_eq!(error_code(&responses[1]), ErrorCode::UnknownUser);
    assert_eq!(error_code(&responses[3]), ErrorCode::BadRequest);
    let ids = sent_ids(&[
        responses[0].clone(),
        responses[2].clone(),
        responses[4].clone(),
    ]);
    assert_increasing(&ids);

    let mut john = Client::greeted(&server);
    john.log_in("John", &keys()[1]);
    let fetched: Vec<u64> = john.fetch().iter().map(|message| message.id).collect();
    assert_eq!(fetched, ids);
}

#[test]
fn authentication_and_logout_take_effect_for_the_sends_pipelined_after_them() {
    let (_dir, server) = start_server(&[]);
    let mut client = signed_in(&server, "John");
    let token = client.login("Alice", &keys()[0]);
    let requests = [
        Request::Authenticate {
            user: "Alice".into(),
            token,
        },
        sealed("Alice", "John", b"hi"),
        Request::Logout,
        sealed("Alice", "John", b"too late"),
    ];

    let responses = client.pipeline(&requests);
    assert!(
        matches!(responses[0], Response::Authenticated { .. }),
        "{responses:?}"
    );
    assert!(
        matches!(responses[1], Response::Sent { .. }),
        "{responses:?}"
    );
    assert_eq!(responses[2], Response::LoggedOut);
    assert_eq!(error_code(&responses[3]), ErrorCode::AuthRequired);
}

#[test]
fn pipelined_largest_messages_beyond_the_byte_bound_all_get_through() {
    let (_dir, server) = start_server(&["--max-message-bytes", "8388608"]);
    let mut alice = signed_in(&server, "Alice");
    // Three 8 MiB envelopes: more than one connection may have in flight.
    let body = vec![b'x'; 8 * 1024 * 1024 - 4096];
    let requests: Vec<Request> = (0..3).map(|_| sealed("Alice", "John", &body)).collect();
    let ids = sent_ids(&alice.pipeline(&requests));
    assert_increasing(&ids);
}

#[test]
fn a_shutdown_amid_pipelined_sends_exits_cleanly_and_keeps_every_answered_send() {
    let (_dir, mut server) = start_server(&[]);
    let mut alice = signed_in(&server, "Alice");
    let frames: Vec<u8> = (0..200)
        .flat_map(|n| sealed("Alice", "John", format!("message {n}").as_bytes()).to_frame())
        .collect();
    alice.send_raw(&frames);
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "exit status {status}");

    // The server stops reading requests, answers those it has taken on,
    // and closes only after reading what is left, so the kernel does not
    // reset the connection and drop answers still in transit.
    let mut received = Vec::new();
    alice
        .stream
        .read_to_end(&mut received)
        .expect("the connection ends with close_notify, not a reset");
    let mut responses = Vec::new();
    let mut rest = &received[..];
    while let Ok(Some((payload, used))) = msgr::wire::protocol::decode_frame(rest, 1 << 24) {
        responses.push(Response::from_payload(payload).unwrap());
        rest = &rest[used..];
    }
    let ids = sent_ids(&responses);
    assert_increasing(&ids);
    let stored = server.count("SELECT count(*) FROM messages");
    assert_eq!(stored, ids.len() as i64, "every stored send was answered");
}
