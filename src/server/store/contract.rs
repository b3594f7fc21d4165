//! The [`Store`] contract, written once against `Arc<dyn Store>` and run
//! against each backend: a fresh SQLite store in a temporary directory
//! (`sqlite::…`) and a fresh PostgreSQL database (`postgres::…`, see
//! `crate::server::postgres::testing` for how the server is found).
//! Tests of what only one backend has (files, the schema's version,
//! several servers on one database) live beside that backend.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use super::fixtures::*;
use super::*;
use crate::server::postgres::testing::TestDatabase;
use crate::server::sqlite::SqliteStore;
use crate::wire::protocol::{
    MAX_MESSAGE_AGE, MAX_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_USABLE, SignedPrekey, unix_now, username,
};

/// A store, a way to open another on the same data (as another server
/// process would), and what must outlive them (a directory, a database).
struct Backend {
    store: Arc<dyn Store>,
    another: Box<dyn Fn() -> Arc<dyn Store>>,
    _home: Box<dyn Any>,
}

fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    Backend {
        store: Arc::new(SqliteStore::open(&path).unwrap()),
        another: Box::new(move || Arc::new(SqliteStore::open(&path).unwrap())),
        _home: Box::new(dir),
    }
}

fn postgres(test: &str) -> Option<Backend> {
    let database = TestDatabase::create(test)?;
    let config = database.config();
    Some(Backend {
        store: Arc::new(database.open()),
        another: Box::new(move || {
            Arc::new(crate::server::postgres::PgStore::open_config(config.clone(), None).unwrap())
        }),
        _home: Box::new(database),
    })
}

/// Each listed test, once per backend; those after `two_processes:` get
/// a second store on the same data too.
macro_rules! contract {
    ($($test:ident),* $(,)?; two_processes: $($two:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $test() {
                    super::$test(&super::sqlite().store);
                }
            )*
            $(
                #[test]
                fn $two() {
                    let backend = super::sqlite();
                    super::$two(&backend.store, &(backend.another)());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(backend) = super::postgres(stringify!($test)) {
                        super::$test(&backend.store);
                    }
                }
            )*
            $(
                #[test]
                fn $two() {
                    if let Some(backend) = super::postgres(stringify!($two)) {
                        super::$two(&backend.store, &(backend.another)());
                    }
                }
            )*
        }
    };
}

contract!(
    names_are_unique_regardless_of_case,
    registering_again_with_the_same_key_is_idempotent,
    one_key_is_registered_under_a_bounded_number_of_accounts,
    a_published_prekey_replaces_the_last,
    one_time_prekeys_are_handed_out_once_each_lowest_first,
    a_pool_made_anew_replaces_the_old_one,
    a_one_time_prekey_handed_out_never_returns_to_the_pool,
    a_pool_holds_at_most_its_limit,
    concurrent_claims_never_share_a_one_time_prekey,
    expiry_deletes_old_messages_and_prekeys_senders_no_longer_use,
    fetch_pages_oldest_first_and_ack_touches_only_own_messages,
    pages_stop_at_the_byte_budget_but_hold_at_least_one_message,
    an_account_keeps_its_newest_sessions_and_can_end_them_all,
    expired_sessions_are_ignored,
    a_connection_authenticates_only_with_a_live_session_of_its_own_account,
    a_session_ends_once,
    a_rotation_replaces_the_key_and_ends_other_sessions,
    a_rotation_from_another_key_or_dated_earlier_changes_nothing,
    one_sender_fills_only_its_share_of_a_mailbox,
    a_full_mailbox_refuses_by_count_and_by_bytes_until_acknowledged,
    concurrent_enqueues_all_commit_with_distinct_ids,
    concurrent_sends_never_pass_the_quota,
    a_send_finds_its_recipient_by_name_in_any_case,
    an_unregistered_account_frees_its_name_and_keeps_its_sent_messages,
    a_send_from_an_account_gone_fails_and_queues_nothing,
    accounts_and_totals_count_what_is_stored;
    two_processes:
    sessions_ended_by_another_process_are_journalled_for_this_one,
    what_one_process_stores_the_other_reads,
);

/// `futures` run together on a runtime of their own, their outputs in
/// order.
fn run_all<T: Send + 'static>(futures: Vec<StoreFuture<T>>) -> Vec<Result<T, StoreError>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
        let mut outputs = Vec::with_capacity(tasks.len());
        for task in tasks {
            outputs.push(task.await.unwrap());
        }
        outputs
    })
}

fn names_are_unique_regardless_of_case(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    assert_eq!(alice.name, "Alice");
    assert_eq!(
        store
            .register(&username("alice"), b"other key", &signed(2), 3)
            .unwrap(),
        RegisterOutcome::NameTaken
    );
    assert_eq!(signed_prekey_of(store, "alice"), Some(prekey(1)));
    assert_eq!(store.find_user("ALICE").unwrap(), Some(alice));
    assert_eq!(store.find_user("bob").unwrap(), None);
}

fn registering_again_with_the_same_key_is_idempotent(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    assert_eq!(
        store
            .register(&username("Alice"), b"Alice", &signed(2), 3)
            .unwrap(),
        RegisterOutcome::AlreadyRegisteredSameKey(alice.clone())
    );
    assert_eq!(signed_prekey_of(store, "Alice"), Some(prekey(2)));
}

fn one_key_is_registered_under_a_bounded_number_of_accounts(store: &Arc<dyn Store>) {
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
    // Registering in parallel does not pass the bound either.
    let created = on_threads(8, |n| {
        vec![
            store
                .register(&username(&format!("racer{n}")), b"raced key", &signed(1), 3)
                .unwrap(),
        ]
    })
    .into_iter()
    .filter(|outcome| matches!(outcome, RegisterOutcome::Created(_)))
    .count();
    assert_eq!(created, 3);
}

fn a_published_prekey_replaces_the_last(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    user(store, "John");
    assert_eq!(store.publish_prekeys(alice.id, &signed(5)).unwrap(), 0);
    assert_eq!(signed_prekey_of(store, "Alice"), Some(prekey(5)));
    assert_eq!(signed_prekey_of(store, "John"), Some(prekey(1)));
    assert_eq!(store.key_bundle("nobody", true).unwrap(), None);
}

fn one_time_prekeys_are_handed_out_once_each_lowest_first(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    let john = user(store, "John");
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

fn a_pool_made_anew_replaces_the_old_one(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    store.publish_prekeys(alice.id, &one_time(1..4)).unwrap();
    let anew = Prekeys {
        replace_one_time: true,
        ..one_time(7..9)
    };
    assert_eq!(store.publish_prekeys(alice.id, &anew).unwrap(), 2);
    let next = store.key_bundle("Alice", true).unwrap().unwrap();
    assert_eq!(next.one_time_prekey.map(|prekey| prekey.id), Some(7));
}

fn a_one_time_prekey_handed_out_never_returns_to_the_pool(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
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

fn a_pool_holds_at_most_its_limit(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    let max = MAX_ONE_TIME_PREKEYS;
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

fn concurrent_claims_never_share_a_one_time_prekey(store: &Arc<dyn Store>) {
    let alice = user(store.as_ref(), "Alice");
    store.publish_prekeys(alice.id, &one_time(1..101)).unwrap();
    let claimed: Vec<u32> = on_threads(8, |_| {
        (0..15)
            .filter_map(|_| store.key_bundle("Alice", true).unwrap())
            .filter_map(|bundle| bundle.one_time_prekey)
            .map(|prekey| prekey.id)
            .collect()
    });
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), 100, "every one handed out, then none");
    assert_eq!(unique.len(), 100, "none twice");
}

fn expiry_deletes_old_messages_and_prekeys_senders_no_longer_use(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    let john = user(store, "John");
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
    // The totals followed: a quota of two messages takes two again.
    let two = Quota {
        max_messages: 2,
        ..ROOMY
    };
    for _ in 0..2 {
        let queued = store.enqueue(john.id, alice.id, vec![1], two).unwrap();
        assert!(matches!(queued, Enqueued::Queued(_)));
    }
}

fn fetch_pages_oldest_first_and_ack_touches_only_own_messages(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let (alice, john) = (user(store, "Alice"), user(store, "John"));
    let sent: Vec<u64> = (0..5u8)
        .map(|i| queue(store, &john, &alice, &[i; 10]))
        .collect();
    let for_alice = queue(store, &alice, &john, b"hi");

    let first = store.fetch(john.id, page(0, 2, 1 << 20)).unwrap();
    assert_eq!(ids(&first), sent[..2]);
    assert_eq!(first[0].sender, "Alice");
    assert_eq!(first[1].envelope, vec![1; 10]);
    let rest = store.fetch(john.id, page(sent[1], 10, 1 << 20)).unwrap();
    assert_eq!(ids(&rest), sent[2..]);

    assert_eq!(
        store
            .ack(john.id, &[sent[0], for_alice, 9999, u64::MAX])
            .unwrap(),
        1
    );
    assert_eq!(
        ids(&store.fetch(alice.id, page(0, 10, 1 << 20)).unwrap()),
        [for_alice]
    );
    assert_eq!(
        ids(&store.fetch(john.id, page(0, 10, 1 << 20)).unwrap()),
        sent[1..]
    );
    assert!(
        store
            .fetch(john.id, page(u64::MAX, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
}

fn pages_stop_at_the_byte_budget_but_hold_at_least_one_message(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let (alice, john) = (user(store, "Alice"), user(store, "John"));
    let sent: Vec<u64> = (0..3)
        .map(|_| queue(store, &john, &alice, &[0; 100]))
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

fn an_account_keeps_its_newest_sessions_and_can_end_them_all(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    let bob = user(store, "Bob");
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

fn expired_sessions_are_ignored(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
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
    assert_eq!(store.find_session(&[3; 32], 0).unwrap(), None);
}

fn a_connection_authenticates_only_with_a_live_session_of_its_own_account(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let (alice, bob) = (user(store, "Alice"), user(store, "Bob"));
    store.publish_prekeys(alice.id, &one_time(1..4)).unwrap();
    for (account, token) in [(&alice, [1; 32]), (&bob, [2; 32])] {
        let key = account.name.as_str().as_bytes();
        store
            .create_session(account.id, key, &token, 100, 50)
            .unwrap()
            .unwrap();
    }
    let found = store.authenticate("ALICE", &[1; 32], 99).unwrap();
    assert_eq!(
        found,
        Some(Authenticated {
            user: alice.clone(),
            session: Session {
                user_id: alice.id,
                expires_at: 100,
            },
            one_time_prekeys: 3,
        })
    );
    assert_eq!(
        store.authenticate("Alice", &[2; 32], 99).unwrap(),
        None,
        "Bob's session"
    );
    assert_eq!(
        store.authenticate("Alice", &[1; 32], 100).unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.authenticate("Carol", &[1; 32], 99).unwrap(),
        None,
        "no account"
    );
    assert_eq!(
        store.authenticate("Alice", &[3; 32], 99).unwrap(),
        None,
        "no session"
    );
}

fn a_session_ends_once(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    store
        .create_session(alice.id, b"Alice", &[1; 32], 100, 1)
        .unwrap();
    assert!(store.delete_session(&[1; 32]).unwrap());
    assert!(!store.delete_session(&[1; 32]).unwrap());
    assert_eq!(store.find_session(&[1; 32], 2).unwrap(), None);
    assert_eq!(store.delete_sessions(alice.id).unwrap(), 0);
}

fn a_rotation_replaces_the_key_and_ends_other_sessions(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    for token in [1u8, 2] {
        store
            .create_session(alice.id, b"Alice", &[token; 32], 100, 1)
            .unwrap();
    }
    let first = rotation(b"Alice", b"Alice 2", 10);
    let prekeys = Prekeys {
        signed: Some(prekey(7)),
        replace_one_time: true,
        ..one_time(20..23)
    };
    assert_eq!(
        store
            .rotate_key(alice.id, &first, &prekeys, &[1; 32])
            .unwrap(),
        RotateOutcome::Rotated(3)
    );
    let bundle = store.key_bundle("alice", false).unwrap().unwrap();
    assert_eq!(bundle.user.public_key, b"Alice 2");
    assert_eq!(bundle.signed_prekey, Some(prekey(7)));
    assert_eq!(bundle.rotations, std::slice::from_ref(&first));
    assert!(store.find_session(&[1; 32], 2).unwrap().is_some(), "kept");
    assert!(store.find_session(&[2; 32], 2).unwrap().is_none(), "ended");
    assert_eq!(
        store
            .create_session(alice.id, b"Alice", &[3; 32], 100, 1)
            .unwrap(),
        None,
        "a login checked with the old key starts nothing"
    );
    // The same rotation again (an answer lost) stores the prekeys again.
    let again = Prekeys {
        signed: Some(prekey(8)),
        ..one_time(0..0)
    };
    assert_eq!(
        store
            .rotate_key(alice.id, &first, &again, &[1; 32])
            .unwrap(),
        RotateOutcome::Rotated(3)
    );
    assert_eq!(signed_prekey_of(store, "Alice"), Some(prekey(8)));
    let second = rotation(b"Alice 2", b"Alice 3", 20);
    assert_eq!(
        store
            .rotate_key(alice.id, &second, &again, &[1; 32])
            .unwrap(),
        RotateOutcome::Rotated(3)
    );
    let chain = store.key_bundle("Alice", false).unwrap().unwrap().rotations;
    assert_eq!(chain, [first, second]);
}

fn a_rotation_from_another_key_or_dated_earlier_changes_nothing(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let alice = user(store, "Alice");
    let nothing = Prekeys::default();
    let stranger = rotation(b"someone else", b"Alice 2", 10);
    assert_eq!(
        store
            .rotate_key(alice.id, &stranger, &nothing, &[0; 32])
            .unwrap(),
        RotateOutcome::NotFromCurrentKey
    );
    let later = rotation(b"Alice", b"Alice 2", 50);
    store
        .rotate_key(alice.id, &later, &nothing, &[0; 32])
        .unwrap();
    let earlier = rotation(b"Alice 2", b"Alice 3", 40);
    assert_eq!(
        store
            .rotate_key(alice.id, &earlier, &nothing, &[0; 32])
            .unwrap(),
        RotateOutcome::EarlierThanLast
    );
    // Back to a key the account had: not this account's last rotation.
    let back = rotation(b"Alice 1", b"Alice 2", 60);
    assert_eq!(
        store
            .rotate_key(alice.id, &back, &nothing, &[0; 32])
            .unwrap(),
        RotateOutcome::NotFromCurrentKey
    );
    let user = store.find_user("Alice").unwrap().unwrap();
    assert_eq!(user.public_key, b"Alice 2");
}

fn one_sender_fills_only_its_share_of_a_mailbox(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let (alice, john, carol) = (
        user(store, "Alice"),
        user(store, "John"),
        user(store, "Carol"),
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

fn a_full_mailbox_refuses_by_count_and_by_bytes_until_acknowledged(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let (alice, john) = (user(store, "Alice"), user(store, "John"));
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

fn concurrent_enqueues_all_commit_with_distinct_ids(store: &Arc<dyn Store>) {
    let (alice, john) = (user(store.as_ref(), "Alice"), user(store.as_ref(), "John"));
    let (threads, each) = (8, 20);
    // Half through the blocking call, half through the asynchronous path.
    let mut sent: Vec<u64> = on_threads(threads, |t| {
        (0..each)
            .map(|i| queue(store.as_ref(), &john, &alice, format!("{t}-{i}").as_bytes()))
            .collect()
    });
    let sends = (0..threads * each)
        .map(|i| {
            Arc::clone(store).enqueue_for(
                "john".into(),
                alice.id,
                format!("async {i}").into_bytes(),
                ROOMY,
            )
        })
        .collect();
    for outcome in run_all(sends) {
        let (recipient, Enqueued::Queued(id)) = outcome.unwrap().unwrap() else {
            panic!("queued")
        };
        assert_eq!(recipient, john);
        sent.push(id);
    }
    let distinct: HashSet<_> = sent.iter().collect();
    assert_eq!(distinct.len(), 2 * threads * each);
    sent.sort_unstable();
    let stored = store.fetch(john.id, page(0, 1000, usize::MAX)).unwrap();
    assert_eq!(ids(&stored), sent, "every one stored, in id order");
    // The totals agree: the quota is full at exactly this many.
    let exact = Quota {
        max_messages: sent.len() as u64,
        ..ROOMY
    };
    let one_more = store.enqueue(john.id, alice.id, vec![0], exact).unwrap();
    assert!(matches!(
        one_more,
        Enqueued::MailboxFull(Usage { messages, .. }) if messages == sent.len() as u64
    ));
}

fn concurrent_sends_never_pass_the_quota(store: &Arc<dyn Store>) {
    let (alice, bob) = (user(store.as_ref(), "Alice"), user(store.as_ref(), "Bob"));
    let quota = Quota {
        max_messages: 10,
        max_bytes: 1 << 20,
        sender_share: 100,
    };
    let sends = (0..60)
        .map(|i| {
            let sender = if i % 2 == 0 { alice.id } else { bob.id };
            Arc::clone(store).enqueue_for("Carol".into(), sender, vec![i as u8; 10], quota)
        })
        .collect();
    assert!(
        run_all(sends).into_iter().all(|o| o.unwrap().is_none()),
        "nobody is called Carol yet"
    );
    user(store.as_ref(), "Carol");
    let sends = (0..60)
        .map(|i| {
            let sender = if i % 2 == 0 { alice.id } else { bob.id };
            Arc::clone(store).enqueue_for("carol".into(), sender, vec![i as u8; 10], quota)
        })
        .collect();
    let queued = run_all(sends)
        .into_iter()
        .filter(|outcome| matches!(outcome, Ok(Some((_, Enqueued::Queued(_))))))
        .count();
    assert_eq!(queued, 10);
}

fn a_send_finds_its_recipient_by_name_in_any_case(store: &Arc<dyn Store>) {
    let (alice, john) = (user(store.as_ref(), "Alice"), user(store.as_ref(), "John"));
    let full = Quota {
        max_messages: 1,
        ..ROOMY
    };
    let sends = vec![
        Arc::clone(store).enqueue_for("JOHN".into(), alice.id, b"hello".to_vec(), full),
        Arc::clone(store).enqueue_for("nobody".into(), alice.id, b"hello".to_vec(), full),
    ];
    let mut outcomes = run_all(sends).into_iter();
    let Some((recipient, Enqueued::Queued(id))) = outcomes.next().unwrap().unwrap() else {
        panic!("queued for John")
    };
    assert_eq!(recipient, john);
    assert!(outcomes.next().unwrap().unwrap().is_none());
    let refused = run_all(vec![Arc::clone(store).enqueue_for(
        "john".into(),
        alice.id,
        b"again".to_vec(),
        full,
    )]);
    assert!(matches!(
        refused[..],
        [Ok(Some((
            _,
            Enqueued::MailboxFull(Usage {
                messages: 1,
                bytes: 5
            })
        )))]
    ));
    let stored = store.fetch(john.id, page(0, 10, 1 << 20)).unwrap();
    assert_eq!(ids(&stored), [id]);
    assert_eq!(stored[0].envelope, b"hello");
}

fn an_unregistered_account_frees_its_name_and_keeps_its_sent_messages(shared: &Arc<dyn Store>) {
    let store = shared.as_ref();
    let alice = user(store, "Alice");
    let john = user(store, "John");
    store.publish_prekeys(alice.id, &one_time(1..4)).unwrap();
    store
        .create_session(alice.id, b"Alice", &[1; 32], 100, 1)
        .unwrap();
    queue(store, &alice, &john, b"for alice");
    let sent = queue(store, &john, &alice, b"from alice");
    store.unregister(alice.id).unwrap();
    assert!(store.find_user("alice").unwrap().is_none());
    assert_eq!(store.key_bundle("alice", true).unwrap(), None);
    assert_eq!(store.find_session(&[1; 32], 2).unwrap(), None);
    assert!(
        store
            .fetch(alice.id, page(0, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
    // John still reads what Alice sent, under her name, and the name is
    // free for another key at once.
    let page_of_john = store.fetch(john.id, page(0, 10, 1 << 20)).unwrap();
    assert_eq!(page_of_john[0].sender, "Alice");
    let again = store
        .register(&username("alice"), b"a new key", &signed(1), 3)
        .unwrap();
    let RegisterOutcome::Created(again) = again else {
        panic!("the name is free: {again:?}")
    };
    assert_ne!(again.id, alice.id);
    assert_eq!(store.one_time_prekeys(again.id).unwrap(), 0);
    // A send by name reaches the new account, not the deleted one.
    let sends =
        vec![Arc::clone(shared).enqueue_for("Alice".into(), john.id, b"hi".to_vec(), ROOMY)];
    let [Ok(Some((recipient, Enqueued::Queued(_))))] = &run_all(sends)[..] else {
        panic!("queued for the new Alice")
    };
    assert_eq!(recipient.id, again.id);
    assert_eq!(store.ack(john.id, &[sent]).unwrap(), 1);
    store.expire(unix_now(), MAX_MESSAGE_AGE).unwrap();
    assert!(
        store
            .fetch(john.id, page(0, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
}

fn a_send_from_an_account_gone_fails_and_queues_nothing(shared: &Arc<dyn Store>) {
    let store = shared.as_ref();
    let alice = user(store, "Alice");
    let john = user(store, "John");
    // Nothing from Alice is queued, so her account's row goes at once.
    store.unregister(alice.id).unwrap();
    let sends =
        vec![Arc::clone(shared).enqueue_for("John".into(), alice.id, b"hi".to_vec(), ROOMY)];
    let outcome = run_all(sends).pop().unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(
        store
            .fetch(john.id, page(0, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
    let stats = store.stats(unix_now()).unwrap();
    assert_eq!((stats.queued_messages, stats.queued_bytes), (0, 0));
}

fn accounts_and_totals_count_what_is_stored(store: &Arc<dyn Store>) {
    let store = store.as_ref();
    let now = unix_now();
    let empty = store.stats(now).unwrap();
    assert_eq!(
        (empty.accounts, empty.queued_messages, empty.queued_bytes),
        (0, 0, 0)
    );
    assert_eq!((empty.oldest_queued_at, empty.sessions), (None, 0));
    let (bob, alice, gone) = (
        user(store, "bob"),
        user(store, "Alice"),
        user(store, "Gone"),
    );
    queue(store, &alice, &bob, &[0; 10]);
    queue(store, &alice, &gone, &[0; 20]);
    queue(store, &bob, &gone, &[0; 5]);
    store
        .create_session(alice.id, b"Alice", &[1; 32], now + 100, now)
        .unwrap();
    store
        .create_session(bob.id, b"bob", &[2; 32], now + 100, now)
        .unwrap();
    store.unregister(gone.id).unwrap();
    let accounts = store.accounts().unwrap();
    let names: Vec<&str> = accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["Alice", "bob"], "by name, the deleted one left out");
    assert_eq!(accounts[0].public_key, b"Alice");
    assert_eq!(
        (
            accounts[0].queued_messages,
            accounts[0].queued_bytes,
            accounts[0].sessions
        ),
        (2, 30, 1)
    );
    assert!(accounts[0].created_at >= now && accounts[0].created_at <= unix_now());
    let stats = store.stats(now).unwrap();
    assert_eq!(
        (stats.accounts, stats.queued_messages, stats.queued_bytes),
        (2, 3, 35)
    );
    assert!(stats.oldest_queued_at.is_some_and(|at| at >= now));
    assert_eq!(stats.sessions, 2);
    assert_eq!(
        store.stats(now + 100).unwrap().sessions,
        0,
        "expired by then"
    );
    assert!(stats.database_bytes > 0);
}

fn sessions_ended_by_another_process_are_journalled_for_this_one(
    store: &Arc<dyn Store>,
    other: &Arc<dyn Store>,
) {
    let alice = user(store.as_ref(), "Alice");
    let john = user(store.as_ref(), "John");
    let start = store.revocations_after(0).unwrap().last;
    other.delete_sessions(alice.id).unwrap();
    store.delete_sessions(john.id).unwrap();
    other.unregister(john.id).unwrap();
    let seen = store.revocations_after(start).unwrap();
    assert_eq!(seen.users, [alice.id, john.id], "its own ending left out");
    assert!(store.revocations_after(seen.last).unwrap().users.is_empty());
    // Each process sees the others'.
    assert_eq!(other.revocations_after(start).unwrap().users, [john.id]);
    // A rotation ends the other sessions too.
    let rotated = rotation(b"Alice", b"Alice 2", 10);
    other
        .rotate_key(alice.id, &rotated, &Prekeys::default(), &[0; 32])
        .unwrap();
    let after_rotation = store.revocations_after(seen.last).unwrap();
    assert_eq!(after_rotation.users, [alice.id]);
    // An hour on, the journal is emptied.
    store
        .expire(unix_now() + 2 * 60 * 60, MAX_MESSAGE_AGE)
        .unwrap();
    assert!(store.revocations_after(0).unwrap().users.is_empty());
    assert!(other.revocations_after(0).unwrap().users.is_empty());
}

fn what_one_process_stores_the_other_reads(store: &Arc<dyn Store>, other: &Arc<dyn Store>) {
    let alice = user(store.as_ref(), "Alice");
    let john = user(other.as_ref(), "John");
    let id = queue(other.as_ref(), &john, &alice, b"across");
    let stored = store.fetch(john.id, page(0, 10, 1 << 20)).unwrap();
    assert_eq!(ids(&stored), [id]);
    assert_eq!(
        other
            .register(&username("ALICE"), b"another key", &signed(1), 3)
            .unwrap(),
        RegisterOutcome::NameTaken
    );
    assert_eq!(store.ack(john.id, &[id]).unwrap(), 1);
    assert!(
        other
            .fetch(john.id, page(0, 10, 1 << 20))
            .unwrap()
            .is_empty()
    );
}
