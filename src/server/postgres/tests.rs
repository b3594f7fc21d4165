//! What only the PostgreSQL store has: URLs and the errors of opening,
//! migrations shared by servers starting together, several servers on one
//! database, group commit, and what the tables hold after an operation.
//! The behaviour both backends share is tested once, in
//! `crate::server::store::contract`.

use std::sync::Arc;

use super::testing::{Session, TestDatabase};
use super::*;
use crate::server::store::EndedSession;
use crate::server::store::fixtures::{
    ROOMY, on_threads, one_time, page, queue, rotation, signed, user,
};
use crate::wire::protocol::{MAX_MESSAGE_AGE, canonical_name, unix_now};

/// A database for the calling test, or return (skipped) without one.
macro_rules! database {
    ($test:literal) => {
        match TestDatabase::create($test) {
            Some(database) => database,
            None => return,
        }
    };
}

fn setup_error(result: Result<PgStore, StoreError>) -> String {
    match result {
        Err(StoreError::Setup(message)) => message,
        Err(other) => panic!("not a set-up error: {other}"),
        Ok(_) => panic!("opened"),
    }
}

#[test]
fn a_url_must_name_postgresql() {
    for url in [
        "mysql://msgr@db/msgr",
        "msgr@db/msgr",
        "host=db user=msgr",
        "",
    ] {
        assert_eq!(
            setup_error(PgStore::open(url)),
            "the database URL must start with postgresql:// or postgres://"
        );
    }
    let invalid = setup_error(PgStore::open("postgresql://msgr:hunter2@db:port/msgr"));
    assert!(
        invalid.starts_with("the database URL is not valid"),
        "{invalid}"
    );
    assert!(!invalid.contains("hunter2"), "{invalid}");
}

#[test]
fn a_dead_database_host_is_given_up_on_unless_the_url_says_otherwise() {
    let settings = |url: &str| {
        let config = parse_url(url).unwrap();
        (
            config.get_tcp_user_timeout().copied(),
            config.get_keepalives_idle(),
            config.get_keepalives_interval(),
            config.get_keepalives_retries(),
        )
    };
    let secs = Duration::from_secs;
    let msgr = (Some(secs(30)), secs(60), Some(secs(10)), Some(3));
    assert_eq!(settings("postgresql://msgr@db/msgr"), msgr);
    assert_eq!(
        settings("postgres://msgr@db?dbname=msgr&sslmode=disable"),
        msgr
    );
    assert_eq!(
        settings("postgresql://msgr@db/msgr?keepalives_idle=600&tcp_user_timeout=5"),
        (Some(secs(5)), secs(600), Some(secs(10)), Some(3))
    );
    // A password may hold what a query would start with.
    let config = parse_url("postgresql://msgr:pa?ss@db/msgr?keepalives_retries=9").unwrap();
    assert_eq!(config.get_password(), Some(&b"pa?ss"[..]));
    assert_eq!(config.get_dbname(), Some("msgr"));
    assert_eq!(config.get_keepalives_retries(), Some(9));
}

#[test]
fn errors_that_end_the_session_are_told_apart_as_the_database_out_of_reach() {
    let database = database!("errors_that_end_the_session");
    let store = database.open();
    let unavailable = |code: &str| {
        let raise = format!("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '{code}'; END $$");
        let failed = store.read(async |client| Ok(client.batch_execute(&raise).await?));
        failed.unwrap_err().is_unavailable()
    };
    // Shut down, connection lost, idle in a transaction too long.
    for ended in ["57P01", "08006", "25P03"] {
        assert!(unavailable(ended), "{ended}");
    }
    // A unique key, a deadlock, a transaction already failed.
    for other in ["23505", "40P01", "25P02"] {
        assert!(!unavailable(other), "{other}");
    }
}

#[test]
fn tls_is_refused_rather_than_downgraded() {
    let message = setup_error(PgStore::open(
        "postgresql://msgr@127.0.0.1:1/msgr?sslmode=require",
    ));
    assert!(message.contains("over TLS"), "{message}");
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let message = setup_error(PgStore::open(
        "postgres://msgr:hunter2@127.0.0.1:1/mail?connect_timeout=5",
    ));
    assert!(
        message.starts_with("cannot reach PostgreSQL at msgr@127.0.0.1:1/mail: "),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn both_url_schemes_open_the_database() {
    let database = database!("both_url_schemes_open_the_database");
    let alice = user(
        &PgStore::open(&database.url("postgresql")).unwrap(),
        "Alice",
    );
    let store = PgStore::open(&database.url("postgres")).unwrap();
    assert_eq!(store.find_user("alice").unwrap(), Some(alice));
}

#[test]
fn an_unknown_user_or_database_is_refused_in_words() {
    let database = database!("an_unknown_user_or_database_is_refused_in_words");
    let mut config = database.config();
    config.user("msgr_no_such_role");
    let message = setup_error(PgStore::open_config(config, None));
    assert!(message.contains("refused the login"), "{message}");
    assert!(message.contains("msgr_no_such_role"), "{message}");

    let mut config = database.config();
    config.dbname("msgr_no_such_database");
    let message = setup_error(PgStore::open_config(config, None));
    assert!(message.contains("create the database first"), "{message}");
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let database = database!("reopening_keeps_data_and_schema_version");
    let store = database.open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    let Enqueued::Queued(id) = store
        .enqueue(john.id, alice.id, b"note".to_vec(), ROOMY)
        .unwrap()
    else {
        panic!("queued")
    };
    drop(store);
    let store = database.open();
    let version = database.count("SELECT version::bigint FROM msgr_schema_version");
    assert_eq!(version, schema::MIGRATIONS.len() as i64);
    let page = Page {
        after: 0,
        limit: 10,
        max_bytes: 100,
    };
    let stored = store.fetch(john.id, page).unwrap();
    assert_eq!((stored[0].id, &stored[0].sender[..]), (id, "Alice"));
}

#[test]
fn a_newer_schema_is_refused() {
    let database = database!("a_newer_schema_is_refused");
    drop(database.open());
    database.execute("UPDATE msgr_schema_version SET version = version + 1");
    let Err(StoreError::Corrupt(message)) = PgStore::open_config(database.config(), None) else {
        panic!("a newer schema must be refused")
    };
    assert_eq!(
        message,
        format!(
            "schema version {} is newer than this build of msgr understands",
            schema::MIGRATIONS.len() + 1
        )
    );
}

#[test]
fn servers_starting_together_migrate_once() {
    let database = database!("servers_starting_together_migrate_once");
    let stores: Vec<PgStore> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..4).map(|_| scope.spawn(|| database.open())).collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert_eq!(
        database.count("SELECT count(*) FROM msgr_schema_version"),
        1
    );
    let alice = user(&stores[0], "Alice");
    assert_eq!(stores[3].find_user("ALICE").unwrap(), Some(alice));
}

#[test]
fn two_servers_share_one_quota_and_one_prekey_pool() {
    let database = database!("two_servers_share_one_quota_and_one_prekey_pool");
    let nodes: [Arc<PgStore>; 2] = [Arc::new(database.open()), Arc::new(database.open())];
    let (alice, carol) = (user(&*nodes[0], "Alice"), user(&*nodes[1], "Carol"));
    let quota = Quota {
        max_messages: 25,
        ..ROOMY
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let queued = runtime.block_on(async {
        let sends: Vec<_> = (0..100)
            .map(|i| {
                let node = Arc::clone(&nodes[i % 2]);
                tokio::spawn(node.enqueue_for("carol".into(), alice.id, vec![1; 10], quota))
            })
            .collect();
        let mut queued = 0;
        for send in sends {
            if let Some((_, Enqueued::Queued(_))) = send.await.unwrap().unwrap() {
                queued += 1;
            }
        }
        queued
    });
    assert_eq!(queued, 25);
    let totals = database.count(&format!(
        "SELECT messages FROM queue_totals WHERE recipient_id = {}",
        carol.id
    ));
    assert_eq!(totals, 25);

    let pool = Prekeys {
        one_time: (1..41)
            .map(|id| crate::wire::protocol::SignedPrekey {
                id,
                public_key: crate::wire::protocol::Base64Bytes(vec![id as u8; 32]),
                created_at: unix_now(),
                signature: crate::wire::protocol::Base64Bytes(vec![9; 64]),
            })
            .collect(),
        ..Prekeys::default()
    };
    nodes[0].publish_prekeys(carol.id, &pool).unwrap();
    let mut claimed: Vec<u32> = on_threads(8, |n| {
        (0..6)
            .filter_map(|_| {
                nodes[n % 2]
                    .key_bundle("Carol", true)
                    .unwrap()?
                    .one_time_prekey
            })
            .map(|prekey| prekey.id)
            .collect()
    });
    claimed.sort_unstable();
    assert_eq!(claimed, (1..41).collect::<Vec<_>>(), "each once, none lost");
}

#[test]
fn concurrent_sends_share_commits() {
    let database = database!("concurrent_sends_share_commits");
    let store = Arc::new(database.open());
    let (alice, john) = (user(&*store, "Alice"), user(&*store, "John"));
    let before = store.writer_commits();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sends: Vec<_> = (0..200)
            .map(|i| {
                let send = Arc::clone(&store).enqueue_for(
                    "John".into(),
                    alice.id,
                    vec![i as u8; 100],
                    ROOMY,
                );
                tokio::spawn(send)
            })
            .collect();
        for send in sends {
            assert!(matches!(
                send.await.unwrap().unwrap(),
                Some((_, Enqueued::Queued(_)))
            ));
        }
    });
    let commits = store.writer_commits() - before;
    assert!(commits < 100, "200 sends took {commits} commits");
    let stored = database.count(&format!(
        "SELECT count(*) FROM messages WHERE recipient_id = {}",
        john.id
    ));
    assert_eq!(stored, 200);
}

/// Another server's transaction holding a recipient's queue totals, as
/// its own batch for them would, until released.
struct HeldQueue(Session);

impl HeldQueue {
    fn take(database: &TestDatabase, recipient: &User) -> Self {
        Self(database.hold_queue(&canonical_name(recipient.name.as_str())))
    }

    fn release(self) {
        self.0.execute("ROLLBACK");
    }
}

/// Wait until a transaction of `database` waits for a lock.
fn until_a_transaction_waits(database: &TestDatabase) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !database.has_session_where("wait_event_type = 'Lock'") {
        assert!(
            std::time::Instant::now() < deadline,
            "no transaction waited"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A send of `body` from `sender` to `recipient`, submitted now.
fn send(
    store: &Arc<PgStore>,
    sender: &User,
    recipient: &User,
    body: &str,
) -> StoreFuture<Option<(User, Enqueued)>> {
    Arc::clone(store).enqueue_for(
        recipient.name.to_string(),
        sender.id,
        body.as_bytes().to_vec(),
        ROOMY,
    )
}

/// The bodies queued for `recipient`, in order.
fn queued_bodies(store: &PgStore, recipient: &User) -> Vec<String> {
    store
        .fetch(recipient.id, page(0, 100, 100_000))
        .unwrap()
        .into_iter()
        .map(|message| String::from_utf8(message.envelope).unwrap())
        .collect()
}

#[test]
fn a_send_from_an_account_that_does_not_exist_fails_alone() {
    let database = database!("a_send_from_an_account_that_does_not_exist_fails_alone");
    let store = Arc::new(database.open());
    let [alice, john, carol] = ["Alice", "John", "Carol"].map(|name| user(&*store, name));
    // While a batch for Carol waits for her queue, which another server
    // holds, three sends to John wait too and then share the next batch;
    // the one from an account that does not exist fails alone.
    let held = HeldQueue::take(&database, &carol);
    let first = send(&store, &alice, &carol, "first");
    until_a_transaction_waits(&database);
    let ghost = User {
        id: 999_999,
        ..alice.clone()
    };
    let sends = [&alice, &ghost, &alice].map(|sender| send(&store, sender, &john, "hi"));
    let before = store.writer_commits();
    held.release();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(matches!(
        runtime.block_on(first),
        Ok(Some((_, Enqueued::Queued(_))))
    ));
    let outcomes = sends.map(|send| runtime.block_on(send));
    assert!(matches!(outcomes[0], Ok(Some((_, Enqueued::Queued(_))))));
    assert!(matches!(outcomes[1], Err(StoreError::NotCommitted(_))));
    assert!(matches!(outcomes[2], Ok(Some((_, Enqueued::Queued(_))))));
    assert_eq!(
        store.writer_commits() - before,
        2,
        "Carol's batch, then one for the three"
    );
    assert_eq!(queued_bodies(&store, &john), ["hi", "hi"]);
    assert_eq!(
        database.count(&format!(
            "SELECT messages FROM queue_totals WHERE recipient_id = {}",
            john.id
        )),
        2
    );
}

/// Sends that arrive while a batch waits for the locks another server
/// holds join it once they are granted, if the batch holds what they need
/// (the recipient locked, the sender's share read); a send from another
/// sender or to another recipient waits for the next batch.
#[test]
fn sends_arriving_while_a_batch_waits_for_its_locks_join_it() {
    let database = database!("sends_arriving_while_a_batch_waits_for_its_locks_join_it");
    let store = Arc::new(database.open());
    let [alice, bob, john, carol] =
        ["Alice", "Bob", "John", "Carol"].map(|name| user(&*store, name));
    let held = HeldQueue::take(&database, &john);
    let before = store.writer_commits();
    let mut sends = vec![send(&store, &alice, &john, "first")];
    until_a_transaction_waits(&database);
    sends.push(send(&store, &bob, &john, "from another sender"));
    sends.push(send(&store, &alice, &carol, "to another recipient"));
    sends.extend((2..=4).map(|n| send(&store, &alice, &john, &format!("number {n}"))));
    held.release();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for send in sends {
        assert!(matches!(
            runtime.block_on(send),
            Ok(Some((_, Enqueued::Queued(_))))
        ));
    }
    assert_eq!(
        queued_bodies(&store, &john),
        [
            "first",
            "number 2",
            "number 3",
            "number 4",
            "from another sender"
        ],
        "Alice's later sends joined her first one's batch"
    );
    assert_eq!(store.writer_commits() - before, 2);
}

/// A batch locks its accounts against deletion only: while it waits for
/// the locks another server holds (as some batch nearly always does on a
/// busy mailbox), its sender and recipient can still log in, publish
/// prekeys and rotate their keys.
#[test]
fn a_waiting_batch_keeps_no_one_from_logging_in_or_changing_keys() {
    let database = database!("a_waiting_batch_keeps_no_one_from_logging_in_or_changing_keys");
    let store = Arc::new(database.open());
    let [alice, john] = ["Alice", "John"].map(|name| user(&*store, name));
    let held = HeldQueue::take(&database, &john);
    let sent = send(&store, &alice, &john, "hi");
    until_a_transaction_waits(&database);
    let (done, finished) = std::sync::mpsc::channel();
    let changes = Arc::clone(&store);
    let accounts = [alice.clone(), john.clone()];
    let changing = std::thread::spawn(move || {
        let now = unix_now();
        for (n, account) in (1u8..).zip(&accounts) {
            let key = account.public_key.as_slice();
            let session = changes.create_session(account.id, key, &[n; 32], now + 60, now);
            assert_eq!(session.unwrap(), Some(0), "{} logs in", account.name);
            changes
                .publish_prekeys(account.id, &one_time(1..3))
                .unwrap();
        }
        let new_key = b"John's new key";
        let rotated = changes.rotate_key(
            john.id,
            &rotation(b"John", new_key, now),
            &signed(2),
            &[2; 32],
        );
        assert!(
            matches!(rotated, Ok(RotateOutcome::Rotated(_))),
            "{rotated:?}"
        );
        done.send(()).unwrap();
    });
    let unblocked = finished.recv_timeout(std::time::Duration::from_secs(10));
    held.release();
    changing.join().expect("the logins and key changes succeed");
    assert!(
        unblocked.is_ok(),
        "the logins and key changes waited for the batch"
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    assert!(matches!(
        runtime.block_on(sent),
        Ok(Some((_, Enqueued::Queued(_))))
    ));
    assert_eq!(queued_bodies(&store, &john), ["hi"]);
}

/// A key lookup without a claim reads the account, its signed prekey and
/// its rotations as of one moment: a rotation that commits while the
/// lookup runs shows in all of them or in none, never the old key with
/// the new key's signed prekey (which the sender would take for a forgery).
#[test]
fn a_key_lookup_sees_a_rotation_in_all_its_reads_or_in_none() {
    let database = database!("a_key_lookup_sees_a_rotation_in_all_its_reads_or_in_none");
    let store = Arc::new(database.open());
    user(&*store, "John");
    let key_and_prekey =
        |bundle: KeyBundle| (bundle.user.public_key, bundle.signed_prekey.unwrap().id);
    // Its statements prepared on the connection, the lookup waits only
    // where it reads the table held below.
    assert_eq!(
        key_and_prekey(store.key_bundle("John", false).unwrap().unwrap()),
        (b"John".to_vec(), 1)
    );

    // A rotation's transaction holds the signed prekeys: the lookup reads
    // John's account, then waits to read his signed prekey, while the
    // rotation replaces both and commits.
    let rotating = database.session();
    rotating.execute("BEGIN; LOCK TABLE signed_prekeys IN ACCESS EXCLUSIVE MODE");
    let lookup = Arc::clone(&store).key_bundle_for("John".into(), false);
    until_a_transaction_waits(&database);
    rotating.execute(
        "UPDATE users SET public_key = 'new key' WHERE name_key = 'john';
         UPDATE signed_prekeys SET id = 2
         WHERE user_id = (SELECT id FROM users WHERE name_key = 'john');
         COMMIT",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let looked_up = runtime.block_on(lookup).unwrap().unwrap();
    assert_eq!(
        key_and_prekey(looked_up),
        (b"John".to_vec(), 1),
        "as before the rotation"
    );
    let after = store.key_bundle("John", false).unwrap().unwrap();
    assert_eq!(key_and_prekey(after), (b"new key".to_vec(), 2));
}

/// A batch whose envelopes are more than one insert statement carries is
/// inserted by several, in order, and committed once.
#[test]
fn a_batch_larger_than_one_statement_is_committed_once_in_order() {
    let database = database!("a_batch_larger_than_one_statement_is_committed_once_in_order");
    let store = Arc::new(database.open());
    let [alice, john] = ["Alice", "John"].map(|name| user(&*store, name));
    let quota = Quota {
        max_messages: 1000,
        max_bytes: 1 << 30,
        sender_share: 100,
    };
    let submit = |envelope: Vec<u8>| {
        Arc::clone(&store).enqueue_for("John".into(), alice.id, envelope, quota)
    };
    let held = HeldQueue::take(&database, &john);
    let before = store.writer_commits();
    let mut sends = vec![submit(vec![0; 10])];
    until_a_transaction_waits(&database);
    // 12 MiB more join it: two statements' worth with the first.
    sends.extend((1..=4).map(|n| submit(vec![n; 3 << 20])));
    held.release();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let ids: Vec<u64> = sends
        .into_iter()
        .map(|send| match runtime.block_on(send) {
            Ok(Some((_, Enqueued::Queued(id)))) => id,
            other => panic!("queued: {other:?}"),
        })
        .collect();
    assert!(ids.is_sorted(), "{ids:?}");
    assert_eq!(store.writer_commits() - before, 1);
    let stored: Vec<(u64, u8, usize)> = store
        .fetch(john.id, page(0, 10, 1 << 30))
        .unwrap()
        .into_iter()
        .map(|message| (message.id, message.envelope[0], message.envelope.len()))
        .collect();
    let expected: Vec<(u64, u8, usize)> = ids
        .iter()
        .zip([
            (0, 10),
            (1, 3 << 20),
            (2, 3 << 20),
            (3, 3 << 20),
            (4, 3 << 20),
        ])
        .map(|(id, (first, len))| (*id, first, len))
        .collect();
    assert_eq!(stored, expected);
}

#[test]
fn the_store_works_from_another_runtimes_blocking_threads() {
    let database = database!("the_store_works_from_another_runtimes_blocking_threads");
    let store: Arc<dyn Store> = Arc::new(database.open());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let found = runtime.block_on(async {
        let store = Arc::clone(&store);
        tokio::task::spawn_blocking(move || {
            user(&*store, "Alice");
            store.find_user("alice").unwrap()
        })
        .await
        .unwrap()
    });
    assert!(found.is_some());
    // Dropped inside a runtime, as the server's last holder may.
    runtime.block_on(async move { drop(store) });
}

#[test]
fn an_unregistered_account_goes_with_its_last_message() {
    let database = database!("an_unregistered_account_goes_with_its_last_message");
    let store = database.open();
    let (alice, john) = (user(&store, "Alice"), user(&store, "John"));
    store
        .enqueue(alice.id, john.id, b"for alice".to_vec(), ROOMY)
        .unwrap();
    let Enqueued::Queued(sent) = store
        .enqueue(john.id, alice.id, b"from alice".to_vec(), ROOMY)
        .unwrap()
    else {
        panic!("queued")
    };
    store.unregister(alice.id).unwrap();
    let rows = |sql: &str| database.count(sql);
    let of_alice = |table: &str, column: &str| {
        rows(&format!(
            "SELECT count(*) FROM {table} WHERE {column} = {}",
            alice.id
        ))
    };
    assert_eq!(of_alice("messages", "recipient_id"), 0);
    assert_eq!(of_alice("queue_totals", "recipient_id"), 0);
    assert_eq!(of_alice("signed_prekeys", "user_id"), 0);
    assert_eq!(
        rows("SELECT count(*) FROM users"),
        2,
        "a row names her still"
    );
    store.ack(john.id, &[sent]).unwrap();
    store.expire(unix_now(), MAX_MESSAGE_AGE).unwrap();
    assert_eq!(rows("SELECT count(*) FROM users"), 1);
    assert_eq!(rows("SELECT count(*) FROM sender_totals"), 0);
}

/// A deleted account's row stays while a batch queues a message from it,
/// even if no other message from it is left when the deleted accounts are
/// cleaned up: its reader is shown who sent it.
#[test]
fn a_deleted_account_stays_while_a_batch_queues_its_message() {
    let database = database!("a_deleted_account_stays_while_a_batch_queues_its_message");
    let store = Arc::new(database.open());
    let [alice, john, carol] = ["Alice", "John", "Carol"].map(|name| user(&*store, name));
    let to_carol = queue(&*store, &carol, &alice, b"to carol");
    store.unregister(alice.id).unwrap();
    // Her last send, from a connection still open, waits in a batch for
    // John's queue while the clean-up finds nothing else of hers queued.
    let held = HeldQueue::take(&database, &john);
    let last = send(&store, &alice, &john, "sent as she left");
    until_a_transaction_waits(&database);
    store.ack(carol.id, &[to_carol]).unwrap();
    let cleanup = std::thread::spawn({
        let store = Arc::clone(&store);
        move || store.expire(unix_now(), MAX_MESSAGE_AGE)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !cleanup.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    held.release();
    cleanup.join().unwrap().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Ok(Some((_, Enqueued::Queued(id)))) = runtime.block_on(last) else {
        panic!("her send was queued")
    };
    let queued = store.fetch(john.id, page(0, 10, 100_000)).unwrap();
    assert_eq!(queued.len(), 1, "John sees her message");
    assert_eq!((queued[0].id, &queued[0].sender[..]), (id, "Alice"));
    // Once John has read it, her row goes.
    store.ack(john.id, &[id]).unwrap();
    store.expire(unix_now(), MAX_MESSAGE_AGE).unwrap();
    assert_eq!(
        database.count(&format!(
            "SELECT count(*) FROM users WHERE id = {}",
            alice.id
        )),
        0
    );
}

#[test]
fn expired_sessions_are_pruned() {
    let database = database!("expired_sessions_are_pruned");
    let store = database.open();
    let alice = user(&store, "Alice");
    store
        .create_session(alice.id, b"Alice", &[1; 32], 100, 50)
        .unwrap();
    store
        .create_session(alice.id, b"Alice", &[2; 32], 300, 200)
        .unwrap();
    assert_eq!(database.count("SELECT count(*) FROM sessions"), 1);
}

#[test]
fn two_servers_under_mixed_load_neither_deadlock_nor_lose_count() {
    let database = database!("two_servers_under_mixed_load_neither_deadlock_nor_lose_count");
    let nodes: [Arc<PgStore>; 2] = [Arc::new(database.open()), Arc::new(database.open())];
    let people: Vec<User> = (0..6)
        .map(|n| user(&*nodes[0], &format!("person{n}")))
        .collect();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    std::thread::scope(|scope| {
        // Sends in both directions between everyone, from both servers.
        scope.spawn(|| {
            runtime.block_on(async {
                let sends: Vec<_> = (0..300)
                    .map(|i| {
                        let node = Arc::clone(&nodes[i % 2]);
                        let from = people[i % people.len()].id;
                        let to = format!("PERSON{}", (i * 7 + 1) % people.len());
                        tokio::spawn(node.enqueue_for(to, from, vec![0; 50], ROOMY))
                    })
                    .collect();
                for send in sends {
                    send.await.unwrap().unwrap().unwrap();
                }
            })
        });
        // Reads and acknowledgements, logins, expiry, on both servers.
        for (n, person) in people.iter().enumerate() {
            let node = Arc::clone(&nodes[n % 2]);
            scope.spawn(move || {
                let page = Page {
                    after: 0,
                    limit: 20,
                    max_bytes: 1 << 20,
                };
                for round in 0..15u8 {
                    let ids: Vec<u64> = node
                        .fetch(person.id, page)
                        .unwrap()
                        .iter()
                        .map(|message| message.id)
                        .collect();
                    node.ack(person.id, &ids).unwrap();
                    let token = [round.wrapping_add(n as u8 * 16); 32];
                    node.create_session(person.id, person.name.as_str().as_bytes(), &token, 100, 1)
                        .unwrap();
                    node.expire(unix_now(), MAX_MESSAGE_AGE).unwrap();
                }
            });
        }
    });
    // Whatever is left, the totals count exactly.
    let left = database.count("SELECT count(*) FROM messages");
    let counted = database.count("SELECT coalesce(sum(messages), 0)::bigint FROM queue_totals");
    let by_sender = database.count("SELECT coalesce(sum(messages), 0)::bigint FROM sender_totals");
    assert_eq!((counted, by_sender), (left, left));
}

/// What a server heard through [`Store::watch_arrivals`].
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    Arrived(UserId),
    LookAgain,
}

struct Recorder(std::sync::Mutex<std::sync::mpsc::Sender<Heard>>);

impl Arrivals for Recorder {
    fn arrived(&self, user: UserId) {
        let _ = self.0.lock().unwrap().send(Heard::Arrived(user));
    }

    fn look_again(&self) {
        let _ = self.0.lock().unwrap().send(Heard::LookAgain);
    }
}

#[test]
fn a_server_hears_of_the_messages_other_servers_queue_and_not_of_its_own() {
    let database = database!("a_server_hears_of_other_servers_sends");
    let (here, there) = (database.open(), Arc::new(database.open()));
    let (alice, bob, carol) = (
        user(&here, "Alice"),
        user(&here, "Bob"),
        user(&here, "Carol"),
    );
    let (sender, heard) = std::sync::mpsc::channel();
    let recheck = here.watch_arrivals(Arc::new(Recorder(sender.into())));
    assert_eq!(recheck, Some(arrivals::RECHECK_EVERY));
    let wait = || heard.recv_timeout(Duration::from_secs(10)).unwrap();
    // Listening: whatever came before it is looked for again.
    assert_eq!(wait(), Heard::LookAgain);

    // Hints come in commit order: had this server heard its own send to
    // Bob, that would come first.
    here.enqueue(bob.id, alice.id, vec![1; 10], ROOMY).unwrap();
    // Anyone on the database may notify the channel: nonsense is ignored,
    // and the listener goes on.
    database.execute("NOTIFY msgr_arrivals, 'not a hint'");
    there
        .enqueue(carol.id, alice.id, vec![1; 10], ROOMY)
        .unwrap();
    assert_eq!(wait(), Heard::Arrived(carol.id));
    // A group commit through the writer is heard the same way.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(Arc::clone(&there).enqueue_for("bob".into(), alice.id, vec![2; 10], ROOMY))
        .unwrap();
    assert_eq!(wait(), Heard::Arrived(bob.id));
}

#[test]
fn a_single_logout_is_journalled_for_the_other_servers() {
    let database = database!("a_single_logout_is_journalled");
    let (here, there) = (database.open(), database.open());
    let alice = user(&here, "Alice");
    let now = unix_now();
    for token in [[1; 32], [2; 32]] {
        there
            .create_session(alice.id, b"Alice", &token, now + 100, now)
            .unwrap()
            .unwrap();
    }
    let start = there.revocations_after(0).unwrap().last;
    assert!(here.delete_session(&[1; 32]).unwrap());
    assert!(!here.delete_session(&[1; 32]).unwrap(), "ended already");
    let seen = there.revocations_after(start).unwrap();
    assert_eq!(
        seen.sessions,
        [EndedSession {
            user: alice.id,
            token_hash: [1; 32],
            expires_at: now + 100,
        }]
    );
    assert!(seen.users.is_empty(), "one session, not all");
    // The server that ended it knows already.
    assert_eq!(here.revocations_after(start).unwrap().sessions, []);
}

#[test]
fn every_server_gets_the_first_certificate_kept() {
    let database = database!("every_server_gets_the_first_certificate");
    let (here, there) = (database.open(), database.open());
    assert!(here.kept_certificate().unwrap().is_none());
    let first = crate::server::tls::generate().unwrap();
    let second = crate::server::tls::generate().unwrap();
    let kept = here.keep_certificate(&first).unwrap();
    assert_eq!(kept.cert_pem, first.cert_pem);
    // A server that made one at the same moment gets the one kept.
    let kept = there.keep_certificate(&second).unwrap();
    assert_eq!(kept.cert_pem, first.cert_pem);
    assert_eq!(*kept.key_pem, *first.key_pem);
    let found = there.kept_certificate().unwrap().unwrap();
    assert_eq!(found.cert_pem, first.cert_pem);
    crate::server::tls::from_self_signed(&found).expect("a usable certificate");
}
