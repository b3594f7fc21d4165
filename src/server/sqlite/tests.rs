//! What only the SQLite store has: its file, its logs, its schema version,
//! and what the file holds after each operation. The behaviour both
//! backends share is tested once, in `crate::server::store::contract`.

use super::*;
use crate::server::store::fixtures::*;
use crate::wire::protocol::{MAX_MESSAGE_AGE, unix_now};

fn open() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    (dir, store)
}

/// A second connection to the store's file, as another process.
fn inspect(dir: &tempfile::TempDir) -> Connection {
    Connection::open(dir.path().join(DB_FILE)).unwrap()
}

/// A read of several statements sees the database as of one moment, so
/// that a key lookup never mixes an account's key with the signed prekey
/// of a rotation committed between them.
#[test]
fn a_read_sees_one_moment() {
    let (dir, store) = open();
    let john = user(&store, "John");
    let (before, after) = store
        .readers
        .read_at_one_moment(|conn| {
            let before = queries::find_user(conn, "John")?;
            // Another connection's commit in between.
            inspect(&dir)
                .execute(
                    "UPDATE users SET public_key = X'00' WHERE id = ?1",
                    [john.id],
                )
                .unwrap();
            Ok((before, queries::find_user(conn, "John")?))
        })
        .unwrap();
    assert_eq!(before, Some(john.clone()));
    assert_eq!(after, Some(john));
    let now = store.find_user("John").unwrap().unwrap();
    assert_eq!(now.public_key, [0]);
}

#[test]
fn expired_sessions_are_pruned() {
    let (dir, store) = open();
    let alice = user(&store, "Alice");
    store
        .create_session(alice.id, b"Alice", &[1; 32], 100, 50)
        .unwrap();
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
    let ids: Vec<u64> = on_threads(threads, |t| {
        (0..each)
            .map(|i| queue(&store, &john, &alice, format!("{t}-{i}").as_bytes()))
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
fn an_export_reads_one_moment_a_part_at_a_time() {
    use crate::server::store::copy::{AccountRow, Source};

    let (_dir, store) = open();
    let [alice, bob] = ["Alice", "Bob"].map(|name| user(&store, name));
    let ids: Vec<i64> = (0..3)
        .map(|_| queue(&store, &bob, &alice, &[7; 100]) as i64)
        .collect();
    let mut export = store.export().unwrap();
    // Changes after the export began are not in it.
    let carol = user(&store, "Carol");
    queue(&store, &carol, &alice, b"later");

    let names = |accounts: Vec<AccountRow>| -> Vec<String> {
        accounts.into_iter().map(|account| account.name).collect()
    };
    assert_eq!(
        names(export.accounts_after(UserId::MIN, 10).unwrap()),
        ["Alice", "Bob"]
    );
    assert_eq!(names(export.accounts_after(alice.id, 1).unwrap()), ["Bob"]);
    let mut message_ids = |after, limit, max_bytes| -> Vec<i64> {
        let messages = export.messages_after(after, limit, max_bytes).unwrap();
        messages.into_iter().map(|message| message.id).collect()
    };
    assert_eq!(message_ids(i64::MIN, 2, 1 << 20), ids[..2]);
    assert_eq!(message_ids(i64::MIN, 10, 150), ids[..2]);
    assert_eq!(message_ids(i64::MIN, 10, 1), ids[..1]);
    assert_eq!(message_ids(ids[0], 10, 1 << 20), ids[1..]);
    assert!(message_ids(ids[2], 10, 1 << 20).is_empty());
    assert_eq!(export.last_message_id().unwrap(), ids[2]);
}
