//! What only the SQLite store has: its file, its logs, its schema version,
//! and what the file holds after each operation. The behaviour both
//! backends share is tested once, in `crate::server::store::contract`.

use super::*;
use crate::wire::protocol::{MAX_MESSAGE_AGE, SignedPrekey, unix_now, username};

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
