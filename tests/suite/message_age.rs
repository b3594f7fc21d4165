//! A bounded message age: the server deletes messages queued longer than
//! `--max-message-age`, and a client refuses (and reports) a message whose
//! sender signed a send time more than 30 days ago, or from before its
//! keyring made its first prekey — a copy kept or replayed after its time.

use std::time::{Duration, Instant};

use msgr::wire::envelope::{self, Header, RecipientPrekey, RecipientPrekeys};
use msgr::wire::protocol::{MAX_MESSAGE_AGE, Request, Response, UserName, unix_now};
use msgr::wire::signing::PrekeyKind;

use crate::common::raw::{Client, keys, send};
use crate::common::{World, name};

#[test]
fn the_server_deletes_messages_older_than_its_maximum_age() {
    // Three seconds, so that the message is surely still there when
    // counted right after its send.
    let world = World::with_server_args(&["--max-message-age", "3"]);
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "read me soon");
    assert_eq!(world.queued(), 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    while world.queued() > 0 {
        assert!(Instant::now() < deadline, "the message never expired");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
}

/// Queue for John (registered with the CLI) a message from a raw Alice,
/// genuinely signed by her, stamped `sent_at` (seconds since the epoch).
fn send_stamped(world: &World, sent_at: u64) {
    let alice = &keys()[0];
    let mut client = Client::greeted(&world.server);
    client.register("Alice", alice);
    client.log_in("Alice", alice);
    let Response::Key {
        signed_prekey: Some(signed),
        public_key,
        ..
    } = client.request(&Request::GetKey {
        user: "John".into(),
        claim: false,
    })
    else {
        panic!("John has a signed prekey");
    };
    let john = msgr::wire::crypto::PublicKey::from_der(&public_key.0).unwrap();
    let john_name: UserName = name("John");
    let prekey = RecipientPrekeys {
        signed: RecipientPrekey {
            id: signed.id,
            public_key: signed
                .verify(PrekeyKind::Signed, &john_name, &john)
                .unwrap(),
        },
        one_time: None,
    };
    let header = Header {
        sent_at_ms: sent_at * 1000,
        ..Header::new(&name("Alice"), &john_name)
    };
    let sealed = envelope::seal(&header, b"from long ago", alice, &prekey).unwrap();
    match client.request(&send("John", &sealed)) {
        Response::Sent { .. } => {}
        other => panic!("send: {other:?}"),
    }
}

/// `read` as John: refuses the message, reports it and drops it.
fn assert_refused(world: &World, sent_at: u64, why: &str) {
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (6, ""), "{stderr}");
    let sent =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(sent_at));
    let warning = format!(" from Alice sent {sent}, {why}; it was discarded\n");
    let line = stderr
        .lines()
        .find(|line| line.starts_with("msgr: message "));
    assert!(
        line.is_some_and(|line| format!("{line}\n").ends_with(&warning)),
        "{stderr}"
    );
    world.assert_queued_soon(0);
}

#[test]
fn a_message_sent_more_than_thirty_days_ago_is_refused() {
    let world = World::new();
    world.register("John");
    let sent_at = unix_now() - MAX_MESSAGE_AGE - 60;
    send_stamped(&world, sent_at);
    assert_refused(&world, sent_at, "more than 30 days ago");
}

#[test]
fn a_message_sent_before_the_keyring_existed_is_refused() {
    let world = World::new();
    world.register("John");
    let sent_at = unix_now() - 2 * 60 * 60;
    send_stamped(&world, sent_at);
    assert_refused(&world, sent_at, "before this keyring was made");
}
