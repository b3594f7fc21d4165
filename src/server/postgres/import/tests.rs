//! A populated SQLite store copied into PostgreSQL and used there: every
//! account, session, message, prekey, rotation, quota and the certificate
//! as they were, and new ids beyond the copied ones; a database with an
//! account, or a copy that fails part-way, left as it was; and a source
//! read slowly.

use std::time::Duration;

use super::*;
use crate::server::Store;
use crate::server::postgres::IDLE_IN_TRANSACTION_TIMEOUT;
use crate::server::postgres::testing::TestDatabase;
use crate::server::sqlite::{Export, SqliteStore};
use crate::server::store::fixtures::*;
use crate::server::store::{Enqueued, Quota, RotateOutcome, User};
use crate::server::tls;
use crate::wire::protocol::unix_now;

/// An SQLite store with live accounts (Alice, Bob, Carol), a deleted one
/// whose message is queued (Dave), sessions, one-time prekeys (one
/// handed out), a rotation (Carol's), and messages (the last one read,
/// so that the highest id given is no longer queued).
struct Populated {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    alice: User,
    bob: User,
    carol: User,
    dave: User,
    /// The id of the message read.
    read: u64,
}

fn populated() -> Populated {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let [alice, bob, carol, dave] = ["Alice", "Bob", "Carol", "Dave"].map(|n| user(&store, n));
    let now = unix_now();
    store.publish_prekeys(bob.id, &one_time(10..15)).unwrap();
    let handed_out = store.key_bundle("bob", true).unwrap().unwrap();
    assert_eq!(handed_out.one_time_prekey, Some(prekey(10)));
    for (who, token) in [(&alice, 1), (&bob, 2)] {
        let key = who.name.as_str().as_bytes();
        store
            .create_session(who.id, key, &[token; 32], now + 3600, now)
            .unwrap();
    }
    let rotated = store
        .rotate_key(
            carol.id,
            &rotation(b"Carol", b"Carol 2", now),
            &signed(2),
            &[0; 32],
        )
        .unwrap();
    assert_eq!(rotated, RotateOutcome::Rotated(0));
    queue(&store, &bob, &alice, b"one");
    queue(&store, &bob, &alice, b"two");
    queue(&store, &alice, &bob, b"three");
    queue(&store, &bob, &dave, b"from Dave");
    let read = queue(&store, &bob, &carol, b"read already");
    assert_eq!(store.ack(bob.id, &[read]).unwrap(), 1);
    store.unregister(dave.id).unwrap();
    Populated {
        _dir: dir,
        store,
        alice,
        bob,
        carol,
        dave,
        read,
    }
}

/// A page as large as any test queue.
fn everything() -> crate::server::store::Page {
    page(0, 100, 1 << 20)
}

#[test]
fn a_copy_holds_and_serves_all_the_store_held() {
    let Some(database) = TestDatabase::create("a_copy_holds_and_serves_all_the_store_held") else {
        return;
    };
    let source = populated();
    let (sqlite, pg) = (&source.store, database.open());
    let certificate = tls::generate().unwrap();
    let copied = pg
        .import(&mut sqlite.export().unwrap(), Some(&certificate))
        .unwrap();
    let expected = Copied {
        accounts: 3,
        deleted_accounts: 1,
        sessions: 2,
        messages: 4,
        signed_prekeys: 3,
        one_time_prekeys: 4,
        claimed_one_time_prekeys: 1,
        key_rotations: 1,
    };
    assert_eq!(copied, expected);

    for name in ["alice", "BOB", "Carol", "Dave"] {
        assert_eq!(pg.find_user(name).unwrap(), sqlite.find_user(name).unwrap());
    }
    let now = unix_now();
    for token in [[1; 32], [2; 32]] {
        let session = pg.find_session(&token, now).unwrap();
        assert!(session.is_some());
        assert_eq!(session, sqlite.find_session(&token, now).unwrap());
    }
    for who in [&source.alice, &source.bob] {
        let queued = pg.fetch(who.id, everything()).unwrap();
        assert_eq!(queued, sqlite.fetch(who.id, everything()).unwrap());
    }
    assert_eq!(
        ids(&pg.fetch(source.bob.id, everything()).unwrap()).len(),
        3
    );
    assert_eq!(pg.accounts().unwrap(), sqlite.accounts().unwrap());
    let (pg_stats, sqlite_stats) = (pg.stats(now).unwrap(), sqlite.stats(now).unwrap());
    assert_eq!(
        (
            pg_stats.accounts,
            pg_stats.queued_messages,
            pg_stats.queued_bytes
        ),
        (
            sqlite_stats.accounts,
            sqlite_stats.queued_messages,
            sqlite_stats.queued_bytes
        )
    );
    assert_eq!(pg_stats.oldest_queued_at, sqlite_stats.oldest_queued_at);
    assert_eq!(pg_stats.sessions, 2);

    // Prekeys: the next one-time prekey goes out, and the one handed out
    // before does not come back.
    let bundle = pg.key_bundle("bob", true).unwrap().unwrap();
    assert_eq!(bundle.one_time_prekey, Some(prekey(11)));
    assert_eq!(bundle.signed_prekey, signed_prekey_of(sqlite, "bob"));
    assert_eq!(
        pg.publish_prekeys(source.bob.id, &one_time(10..11))
            .unwrap(),
        3
    );
    let carol = pg.key_bundle("carol", false).unwrap().unwrap();
    assert_eq!(carol.user.public_key, b"Carol 2");
    assert_eq!(
        carol.rotations,
        sqlite
            .key_bundle("carol", false)
            .unwrap()
            .unwrap()
            .rotations
    );
    assert_eq!(carol.signed_prekey, Some(prekey(2)));

    // Quotas count the copied messages: Bob holds 3, 2 of them Alice's.
    let quota = |max_messages, sender_share| Quota {
        max_messages,
        max_bytes: 1 << 20,
        sender_share,
    };
    let full = pg
        .enqueue(source.bob.id, source.carol.id, b"x".to_vec(), quota(3, 100))
        .unwrap();
    assert!(
        matches!(full, Enqueued::MailboxFull(usage) if usage.messages == 3),
        "{full:?}"
    );
    let share = pg
        .enqueue(source.bob.id, source.alice.id, b"x".to_vec(), quota(4, 50))
        .unwrap();
    assert!(matches!(share, Enqueued::SenderShareFull(_)), "{share:?}");

    // New rows take ids beyond every id given before, the read message's
    // included.
    let Enqueued::Queued(id) = pg
        .enqueue(
            source.bob.id,
            source.carol.id,
            b"new".to_vec(),
            quota(4, 50),
        )
        .unwrap()
    else {
        panic!("queued")
    };
    assert!(id > source.read, "{id} after {}", source.read);
    assert!(user(&pg, "Erin").id > source.dave.id);
    let now = unix_now();
    let rotated = pg
        .rotate_key(
            source.alice.id,
            &rotation(b"Alice", b"Alice 2", now),
            &signed(3),
            &[1; 32],
        )
        .unwrap();
    assert_eq!(rotated, RotateOutcome::Rotated(0));
    assert_eq!(database.count("SELECT max(id) FROM key_rotations"), 2);

    let kept = pg.kept_certificate().unwrap().unwrap();
    assert_eq!(kept.cert_pem, certificate.cert_pem);
    assert_eq!(*kept.key_pem, *certificate.key_pem);
}

#[test]
fn a_database_with_an_account_is_refused_and_left_alone() {
    let Some(database) = TestDatabase::create("a_database_with_an_account_is_refused") else {
        return;
    };
    let source = populated();
    let pg = database.open();
    user(&pg, "Zed");
    let certificate = tls::generate().unwrap();
    let refused = pg.import(&mut source.store.export().unwrap(), Some(&certificate));
    assert!(matches!(refused, Err(CopyError::NotEmpty)), "{refused:?}");
    assert_eq!(database.count("SELECT count(*) FROM users"), 1);
    assert_eq!(database.count("SELECT count(*) FROM messages"), 0);
    assert!(pg.kept_certificate().unwrap().is_none());
}

/// The SQLite store's export, running `before` each time before the
/// messages are read.
struct BeforeMessages<F>(Export, F);

impl<F: FnMut() -> Result<(), StoreError>> Source for BeforeMessages<F> {
    fn accounts_after(
        &mut self,
        after: UserId,
        limit: usize,
    ) -> Result<Vec<AccountRow>, StoreError> {
        self.0.accounts_after(after, limit)
    }

    fn messages_after(
        &mut self,
        after: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        (self.1)()?;
        self.0.messages_after(after, limit, max_bytes)
    }

    fn last_message_id(&mut self) -> Result<i64, StoreError> {
        self.0.last_message_id()
    }
}

#[test]
fn a_copy_that_fails_part_way_leaves_nothing() {
    let Some(database) = TestDatabase::create("a_copy_that_fails_part_way_leaves_nothing") else {
        return;
    };
    let source = populated();
    let pg = database.open();
    let certificate = tls::generate().unwrap();
    let mut failing = BeforeMessages(source.store.export().unwrap(), || {
        Err(StoreError::Corrupt("a test's failure".into()))
    });
    let failed = pg.import(&mut failing, Some(&certificate));
    assert!(matches!(failed, Err(CopyError::Source(_))), "{failed:?}");
    for table in ["users", "sessions", "queue_totals", "one_time_prekeys"] {
        let count = database.count(&format!("SELECT count(*) FROM {table}"));
        assert_eq!(count, 0, "{table}");
    }
    assert!(pg.kept_certificate().unwrap().is_none());
    // And the copy can be made again.
    let copied = pg
        .import(&mut source.store.export().unwrap(), None)
        .unwrap();
    assert_eq!(copied.messages, 4);
}

#[test]
fn a_copy_may_read_its_source_for_longer_than_a_server_may_sit_in_a_transaction() {
    let Some(database) = TestDatabase::create("a_copy_may_read_its_source_slowly") else {
        return;
    };
    let source = populated();
    let pg = database.open();
    let mut pauses = 1;
    let mut slow = BeforeMessages(source.store.export().unwrap(), || {
        if pauses > 0 {
            pauses -= 1;
            std::thread::sleep(IDLE_IN_TRANSACTION_TIMEOUT + Duration::from_secs(1));
        }
        Ok(())
    });
    let copied = pg.import(&mut slow, None).unwrap();
    assert_eq!(copied.messages, 4);
    assert_eq!(database.count("SELECT count(*) FROM messages"), 4);
}
