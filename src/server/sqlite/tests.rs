//! The SQLite store against a real file: accounts, prekeys, sessions,
//! queues and quotas.

use super::*;
use crate::server::store::{MAX_SESSIONS_PER_ACCOUNT, Usage};
use crate::wire::protocol::{
    MAX_MESSAGE_AGE, ONE_TIME_PREKEY_USABLE, SignedPrekey, unix_now, username,
};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

fn prekey(id: u32) -> SignedPrekey {
    SignedPrekey {
        id,
        public_key: crate::wire::protocol::Base64Bytes(vec![id as u8; 32]),
        created_at: unix_now() + u64::from(id),
        signature: crate::wire::protocol::Base64Bytes(vec![9; 256]),
    }
}

/// The signed prekey `id` alone.
fn signed(id: u32) -> Prekeys {
    Prekeys {
        signed: Some(prekey(id)),
        one_time: Vec::new(),
        replace_one_time: false,
    }
}

/// One-time prekeys numbered `ids`.
fn one_time(ids: std::ops::Range<u32>) -> Prekeys {
    Prekeys {
        signed: None,
        one_time: ids.map(prekey).collect(),
        replace_one_time: false,
    }
}

/// The signed prekey `get_key` would hand out for `name`.
fn signed_prekey_of(store: &SqliteStore, name: &str) -> Option<SignedPrekey> {
    store
        .key_bundle(name, false)
        .unwrap()
        .and_then(|bundle| bundle.signed_prekey)
}

fn user(store: &SqliteStore, name: &str) -> User {
    match store
        .register(&username(name), name.as_bytes(), &signed(1), 3)
        .unwrap()
    {
        RegisterOutcome::Created(user) => user,
        other => panic!("registering {name}: {other:?}"),
    }
}

fn page(after: u64, limit: u32, max_bytes: usize) -> Page {
    Page {
        after,
        limit,
        max_bytes,
    }
}

const ROOMY: Quota = Quota {
    max_messages: 1000,
    max_bytes: 1 << 20,
    sender_share: 100,
};

fn queue(store: &SqliteStore, to: &User, from: &User, envelope: &[u8]) -> u64 {
    match store
        .enqueue(to.id, from.id, envelope.to_vec(), ROOMY)
        .unwrap()
    {
        Enqueued::Queued(id) => id,
        full => panic!("{full:?}"),
    }
}

/// A second connection to the store's file, as another process.
fn inspect(dir: &tempfile::TempDir) -> Connection {
    Connection::open(dir.path().join(DB_FILE)).unwrap()
}

fn ids(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

#[test]
fn names_are_unique_regardless_of_case() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    assert_eq!(alice.name, "Alice");
    assert_eq!(
        store
            .register(&username("alice"), b"other key", &signed(2), 3)
            .unwrap(),
        RegisterOutcome::NameTaken
    );
    assert_eq!(signed_prekey_of(&store, "alice"), Some(prekey(1)));
    assert_eq!(store.find_user("ALICE").unwrap(), Some(alice));
    assert_eq!(store.find_user("bob").unwrap(), None);
}

#[test]
fn registering_again_with_the_same_key_is_idempotent() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    assert_eq!(
        store
            .register(&username("Alice"), b"Alice", &signed(2), 3)
            .unwrap(),
        RegisterOutcome::AlreadyRegisteredSameKey(alice.clone())
    );
    assert_eq!(signed_prekey_of(&store, "Alice"), Some(prekey(2)));
}

#[test]
fn a_published_prekey_replaces_the_last() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    user(&store, "John");
    assert_eq!(store.publish_prekeys(alice.id, &signed(5)).unwrap(), 0);
    assert_eq!(signed_prekey_of(&store, "Alice"), Some(prekey(5)));
    assert_eq!(signed_prekey_of(&store, "John"), Some(prekey(1)));
    assert_eq!(store.key_bundle("nobody", true).unwrap(), None);
}

#[test]
fn one_time_prekeys_are_handed_out_once_each_lowest_first() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    let john = user(&store, "John");
    assert_eq!(store.publish_prekeys(alice.id, &one_time(1..4)).unwrap(), 3);
    // A number the pool holds already is ignored, not doubled.
    assert_eq!(store.publish_prekeys(alice.id, &one_time(3..5)).unwrap(), 4);
    let peek = store.key_bundle("alice", false).unwrap().unwrap();
    assert_eq!(peek.one_time_prekey, None, "looking claims nothing");
    let claimed: Vec<u32> = (0..5)
        .map(|_| {
            let bundle = store.key_bundle("ALICE", true).unwrap().unwrap();
            assert_eq!(bundle.signed_prekey, Some(prekey(1)));
            bundle.one_time_prekey.map_or(0, |prekey| prekey.id)
        })
        .collect();
    assert_eq!(claimed, [1, 2, 3, 4, 0], "then the signed prekey alone");
    assert_eq!(store.one_time_prekeys(alice.id).unwrap(), 0);
    assert_eq!(store.one_time_prekeys(john.id).unwrap(), 0);
}

#[test]
fn expiry_deletes_old_messages_and_prekeys_senders_no_longer_use() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    let john = user(&store, "John");
    for body in [b"one", b"two"] {
        store
            .enqueue(john.id, alice.id, body.to_vec(), ROOMY)
            .unwrap();
    }
    let now = unix_now();
    let day = 24 * 60 * 60;
    let nothing = Expired::default();
    assert_eq!(
        store.expire(now + 29 * day, MAX_MESSAGE_AGE).unwrap(),
        nothing
    );
    assert_eq!(store.fetch(john.id, page(0, 10, 1 << 20)).unwrap().len(), 2);

    // A one-time prekey made too long ago is neither counted nor handed
    // out, and then deleted.
    let stale = SignedPrekey {
        created_at: now - ONE_TIME_PREKEY_USABLE - 1,
        ..prekey(1)
    };
    let pool = Prekeys {
        one_time: vec![stale, prekey(2)],
        ..one_time(0..0)
    };
    assert_eq!(store.publish_prekeys(alice.id, &pool).unwrap(), 1);
    let claimed = store.key_bundle("Alice", true).unwrap().unwrap();
    assert_eq!(claimed.one_time_prekey, Some(prekey(2)));
    assert_eq!(
        store.expire(now, MAX_MESSAGE_AGE).unwrap(),
        Expired {
            one_time_prekeys: 1,
            ..nothing
        }
    );

    // Thirty days on, the messages go; two weeks after its claim, the
    // record of prekey 2 goes too.
    assert_eq!(
        store
            .expire(now + MAX_MESSAGE_AGE + 1, MAX_MESSAGE_AGE)
            .unwrap(),
        Expired {
            messages: 2,
            claimed: 1,
            ..nothing
        }
    );
    assert!(
        store
            .fetch(john.id, page(0, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_pool_made_anew_replaces_the_old_one() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    store.publish_prekeys(alice.id, &one_time(1..4)).unwrap();
    let anew = Prekeys {
        replace_one_time: true,
        ..one_time(7..9)
    };
    assert_eq!(store.publish_prekeys(alice.id, &anew).unwrap(), 2);
    let next = store.key_bundle("Alice", true).unwrap().unwrap();
    assert_eq!(next.one_time_prekey.map(|prekey| prekey.id), Some(7));
}

#[test]
fn a_one_time_prekey_handed_out_never_returns_to_the_pool() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    assert_eq!(store.publish_prekeys(alice.id, &one_time(1..4)).unwrap(), 3);
    let claimed = store.key_bundle("Alice", true).unwrap().unwrap();
    assert_eq!(claimed.one_time_prekey.map(|prekey| prekey.id), Some(1));
    // The same prekeys again (an answer lost), added or replacing.
    assert_eq!(store.publish_prekeys(alice.id, &one_time(1..4)).unwrap(), 2);
    let replacing = Prekeys {
        replace_one_time: true,
        ..one_time(1..4)
    };
    assert_eq!(store.publish_prekeys(alice.id, &replacing).unwrap(), 2);
    let ids: Vec<Option<u32>> = (0..3)
        .map(|_| {
            let bundle = store.key_bundle("Alice", true).unwrap().unwrap();
            bundle.one_time_prekey.map(|prekey| prekey.id)
        })
        .collect();
    assert_eq!(ids, [Some(2), Some(3), None]);
}

#[test]
fn a_pool_holds_at_most_its_limit() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    let max = crate::wire::protocol::MAX_ONE_TIME_PREKEYS;
    assert_eq!(
        store.publish_prekeys(alice.id, &one_time(1..max)).unwrap(),
        max - 1
    );
    assert_eq!(
        store
            .publish_prekeys(alice.id, &one_time(max..max + 50))
            .unwrap(),
        max
    );
}

#[test]
fn concurrent_claims_never_share_a_one_time_prekey() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    store.publish_prekeys(alice.id, &one_time(1..101)).unwrap();
    let store = Arc::new(store);
    let claimed: Vec<u32> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    (0..15)
                        .filter_map(|_| store.key_bundle("Alice", true).unwrap())
                        .filter_map(|bundle| bundle.one_time_prekey)
                        .map(|prekey| prekey.id)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut unique = claimed.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(claimed.len(), 100, "every one handed out, then none");
    assert_eq!(unique.len(), 100, "none twice");
}

#[test]
fn fetch_pages_oldest_first_and_ack_touches_only_own_messages() {
    let (_dir, store) = open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    let sent: Vec<u64> = (0..5u8)
        .map(|i| queue(&store, &john, &alice, &[i; 10]))
        .collect();
    let for_alice = queue(&store, &alice, &john, b"hi");

    let first = store.fetch(john.id, page(0, 2, 1 << 20)).unwrap();
    assert_eq!(ids(&first), sent[..2]);
    assert_eq!(first[0].sender, "Alice");
    assert_eq!(first[1].envelope, vec![1; 10]);
    let rest = store.fetch(john.id, page(sent[1], 10, 1 << 20)).unwrap();
    assert_eq!(ids(&rest), sent[2..]);

    assert_eq!(store.ack(john.id, &[sent[0], for_alice, 9999]).unwrap(), 1);
    assert_eq!(
        ids(&store.fetch(alice.id, page(0, 10, 1 << 20)).unwrap()),
        [for_alice]
    );
    assert_eq!(
        ids(&store.fetch(john.id, page(0, 10, 1 << 20)).unwrap()),
        sent[1..]
    );
}

#[test]
fn pages_stop_at_the_byte_budget_but_hold_at_least_one_message() {
    let (_dir, store) = open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    let sent: Vec<u64> = (0..3)
        .map(|_| queue(&store, &john, &alice, &[0; 100]))
        .collect();
    assert_eq!(
        ids(&store.fetch(john.id, page(0, 10, 250)).unwrap()),
        sent[..2]
    );
    assert_eq!(
        ids(&store.fetch(john.id, page(0, 10, 10)).unwrap()),
        sent[..1]
    );
    assert!(
        store
            .fetch(john.id, page(sent[2], 10, 10))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_account_keeps_its_newest_sessions_and_can_end_them_all() {
    let (_dir, store) = open();
    let alice = user(&store, "Alice");
    let bob = user(&store, "Bob");
    store
        .create_session(bob.id, b"Bob", &[0; 32], 500, 1)
        .unwrap();
    let cap = MAX_SESSIONS_PER_ACCOUNT;
    for n in 1..=cap {
        let ended = store
            .create_session(alice.id, b"Alice", &[n as u8; 32], 100 + n, 1)
            .unwrap();
        assert_eq!(ended, Some(0));
    }
    let one_more = store
        .create_session(alice.id, b"Alice", &[255; 32], 1000, 1)
        .unwrap();
    assert_eq!(one_more, Some(1), "the one expiring first makes room");
    assert_eq!(store.find_session(&[1; 32], 2).unwrap(), None);
    assert!(store.find_session(&[2; 32], 2).unwrap().is_some());
    assert_eq!(store.delete_sessions(alice.id).unwrap(), cap);
    assert!(store.find_session(&[255; 32], 2).unwrap().is_none());
    assert!(
        store.find_session(&[0; 32], 2).unwrap().is_some(),
        "Bob's stays"
    );
}

#[test]
fn expired_sessions_are_ignored_and_pruned() {
    let (dir, store) = open();
    let alice = user(&store, "Alice");
    assert_eq!(
        store
            .create_session(alice.id, b"Alice", &[1; 32], 100, 50)
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        store
            .create_session(alice.id, b"an earlier key", &[3; 32], 100, 50)
            .unwrap(),
        None,
        "a login checked with a key since replaced starts no session"
    );
    let live = Session {
        user_id: alice.id,
        expires_at: 100,
    };
    assert_eq!(store.find_session(&[1; 32], 99).unwrap(), Some(live));
    assert_eq!(store.find_session(&[1; 32], 100).unwrap(), None);
    assert_eq!(store.find_session(&[2; 32], 0).unwrap(), None);

    store
        .create_session(alice.id, b"Alice", &[2; 32], 300, 200)
        .unwrap();
    let remaining: i64 = inspect(&dir)
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .unwrap();
    assert_eq!(remaining, 1);
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let (dir, store) = open();
    let alice = user(&store, "Alice");
    let id = queue(&store, &alice, &alice, b"note");
    drop(store);
    assert!(
        !dir.path().join("msgr.db-wal").exists(),
        "closing checkpoints the log"
    );
    let store = SqliteStore::open(dir.path()).unwrap();
    let version: usize = inspect(&dir)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::MIGRATIONS.len());
    assert_eq!(ids(&store.fetch(alice.id, page(0, 10, 100)).unwrap()), [id]);
}

#[test]
fn a_newer_schema_is_refused() {
    let (dir, store) = open();
    drop(store);
    inspect(&dir)
        .pragma_update(None, "user_version", schema::MIGRATIONS.len() + 1)
        .unwrap();
    assert!(matches!(
        SqliteStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn one_key_is_registered_under_a_bounded_number_of_accounts() {
    let (_dir, store) = open();
    let register = |name: &str| {
        store
            .register(&username(name), b"shared key", &signed(1), 2)
            .unwrap()
    };
    assert!(matches!(register("Alice"), RegisterOutcome::Created(_)));
    assert!(matches!(register("Bob"), RegisterOutcome::Created(_)));
    assert_eq!(register("Carol"), RegisterOutcome::KeyInUse);
    assert!(store.find_user("carol").unwrap().is_none());
    // A retried registration of an account the key has is still fine.
    assert!(matches!(
        register("alice"),
        RegisterOutcome::AlreadyRegisteredSameKey(_)
    ));
}

#[test]
fn one_sender_fills_only_its_share_of_a_mailbox() {
    let (_dir, store) = open();
    let (alice, john, carol) = (
        user(&store, "Alice"),
        user(&store, "John"),
        user(&store, "Carol"),
    );
    let quota = Quota {
        max_messages: 8,
        max_bytes: 1000,
        sender_share: 25,
    };
    let send = |from: &User, len: usize| store.enqueue(john.id, from.id, vec![0; len], quota);
    // A first message always goes, even one beyond the byte share.
    let Enqueued::Queued(first) = send(&alice, 300).unwrap() else {
        panic!("a first message goes")
    };
    assert_eq!(
        send(&alice, 1).unwrap(),
        Enqueued::SenderShareFull(Usage {
            messages: 1,
            bytes: 300
        }),
        "301 bytes would exceed a quarter of 1000"
    );
    assert!(matches!(send(&carol, 10).unwrap(), Enqueued::Queued(_)));
    assert!(matches!(send(&carol, 10).unwrap(), Enqueued::Queued(_)));
    assert!(
        matches!(send(&carol, 10).unwrap(), Enqueued::SenderShareFull(_)),
        "two of eight messages is a quarter"
    );
    // Read, Alice's share is free again.
    assert_eq!(store.ack(john.id, &[first]).unwrap(), 1);
    assert!(matches!(send(&alice, 100).unwrap(), Enqueued::Queued(_)));
}

#[test]
fn a_full_mailbox_refuses_by_count_and_by_bytes_until_acknowledged() {
    let (_dir, store) = open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    let quota = Quota {
        max_messages: 2,
        max_bytes: 25,
        sender_share: 100,
    };
    let send = |len: usize| {
        store
            .enqueue(john.id, alice.id, vec![0; len], quota)
            .unwrap()
    };
    let Enqueued::Queued(first) = send(10) else {
        panic!("first fits")
    };
    let full = Enqueued::MailboxFull(Usage {
        messages: 1,
        bytes: 10,
    });
    assert_eq!(send(16), full, "26 bytes would exceed 25");
    assert!(matches!(send(15), Enqueued::Queued(_)));
    assert!(matches!(
        send(1),
        Enqueued::MailboxFull(Usage { messages: 2, .. })
    ));
    // Another recipient's queue is separate.
    assert!(matches!(
        store
            .enqueue(alice.id, john.id, vec![0; 10], quota)
            .unwrap(),
        Enqueued::Queued(_)
    ));
    store.ack(john.id, &[first]).unwrap();
    assert!(matches!(send(10), Enqueued::Queued(_)));
}

#[test]
fn concurrent_enqueues_all_commit_with_distinct_ids() {
    let (dir, store) = open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    let (threads, each) = (16, 20);
    let ids: Vec<u64> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..threads)
            .map(|t| {
                let (store, alice, john) = (&store, &alice, &john);
                scope.spawn(move || {
                    (0..each)
                        .map(|i| queue(store, john, alice, format!("{t}-{i}").as_bytes()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect()
    });
    let distinct: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), threads * each);
    drop(store);
    // Everything acknowledged is on disk, and the totals agree.
    let db = inspect(&dir);
    let stored: i64 = db
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    let counted: i64 = db
        .query_row("SELECT messages FROM queue_totals", [], |r| r.get(0))
        .unwrap();
    assert_eq!((stored, counted), ((threads * each) as i64, stored));
}

#[test]
fn an_unregistered_account_frees_its_name_and_goes_with_its_last_message() {
    let (dir, store) = open();
    let alice = user(&store, "Alice");
    let john = user(&store, "John");
    queue(&store, &alice, &john, b"for alice");
    let sent = queue(&store, &john, &alice, b"from alice");
    store.unregister(alice.id).unwrap();
    assert!(store.find_user("alice").unwrap().is_none());
    assert_eq!(store.key_bundle("alice", true).unwrap(), None);
    let rows = |sql: &str| -> i64 { inspect(&dir).query_row(sql, [], |row| row.get(0)).unwrap() };
    assert_eq!(
        rows("SELECT count(*) FROM messages WHERE recipient_id = 1"),
        0
    );
    assert_eq!(
        rows("SELECT count(*) FROM signed_prekeys WHERE user_id = 1"),
        0
    );
    // John still reads what Alice sent, under her name, and the name is
    // free for another key at once.
    let page = store.fetch(john.id, page(0, 10, 1 << 20)).unwrap();
    assert_eq!(page[0].sender, "Alice");
    let again = user(&store, "alice");
    assert_ne!(again.id, alice.id);
    assert_eq!(rows("SELECT count(*) FROM users"), 3);
    // Once her last message is gone, so is the row that named her.
    store.ack(john.id, &[sent]).unwrap();
    store.expire(unix_now(), MAX_MESSAGE_AGE).unwrap();
    assert_eq!(rows("SELECT count(*) FROM users"), 2);
}

#[test]
fn sessions_ended_by_another_process_are_journalled_for_this_one() {
    let (dir, store) = open();
    let other = SqliteStore::open(dir.path()).unwrap();
    let alice = user(&store, "Alice");
    let john = user(&store, "John");
    let start = store.revocations_after(0).unwrap().last;
    other.delete_sessions(alice.id).unwrap();
    store.delete_sessions(john.id).unwrap();
    other.unregister(john.id).unwrap();
    let seen = store.revocations_after(start).unwrap();
    assert_eq!(seen.users, [alice.id, john.id], "its own ending left out");
    assert!(store.revocations_after(seen.last).unwrap().users.is_empty());
    // Each process sees the others'.
    assert_eq!(other.revocations_after(start).unwrap().users, [john.id]);
    // An hour on, the journal is emptied.
    store
        .expire(unix_now() + 2 * 60 * 60, MAX_MESSAGE_AGE)
        .unwrap();
    let rows: i64 = inspect(&dir)
        .query_row("SELECT count(*) FROM session_revocations", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rows, 0);
}
