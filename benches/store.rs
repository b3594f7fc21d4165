//! The SQLite store: durable insert (one send, one fsync), 64 concurrent
//! inserts (group commit), fetching a page, and acknowledging a page, with
//! 100,000 messages already queued for another recipient.

use std::sync::Arc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use msgr::server::Store;
use msgr::server::sqlite::SqliteStore;
use msgr::server::store::{Page, Quota, UserId};

/// A typical sealed envelope of a short message with 3072-bit keys.
const ENVELOPE_BYTES: usize = 850;
/// Messages queued for a bystander before measuring.
const BACKGROUND: usize = 100_000;
const QUOTA: Quota = Quota {
    max_messages: u64::MAX,
    max_bytes: u64::MAX,
    sender_share: 100,
};
const PAGE: Page = Page {
    after: 0,
    limit: 256,
    max_bytes: 8 * 1024 * 1024,
};

/// A store in a temp dir with users `alice`, `john` and `bystander`, the
/// bystander holding [`BACKGROUND`] messages.
fn store() -> (tempfile::TempDir, Arc<SqliteStore>, UserId, UserId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let id = |name: &str| {
        let key = msgr::wire::crypto::PrivateKey::generate(2048)
            .unwrap()
            .public_key()
            .to_der();
        let prekeys = msgr::server::store::Prekeys {
            signed: Some(msgr::wire::protocol::SignedPrekey {
                id: 1,
                public_key: msgr::wire::protocol::Base64Bytes(vec![1; 32]),
                created_at: 0,
                signature: msgr::wire::protocol::Base64Bytes(vec![2; 256]),
            }),
            one_time: Vec::new(),
            replace_one_time: false,
        };
        store
            .register(&name.parse().unwrap(), &key, &prekeys, u64::MAX)
            .unwrap();
        store.find_user(name).unwrap().unwrap().id
    };
    let (alice, john, bystander) = (id("alice"), id("john"), id("bystander"));
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                for _ in 0..BACKGROUND / 64 {
                    store
                        .enqueue(bystander, alice, vec![7; ENVELOPE_BYTES], QUOTA)
                        .unwrap();
                }
            });
        }
    });
    (dir, store, alice, john)
}

fn store_operations(c: &mut Criterion) {
    let (_dir, store, alice, john) = store();
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    group.bench_function("insert/one", |b| {
        b.iter(|| {
            store
                .enqueue(john, alice, vec![7; ENVELOPE_BYTES], QUOTA)
                .unwrap()
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("insert/64-concurrent", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for _ in 0..64 {
                    scope.spawn(|| {
                        store
                            .enqueue(john, alice, vec![7; ENVELOPE_BYTES], QUOTA)
                            .unwrap()
                    });
                }
            })
        })
    });
    group.throughput(Throughput::Elements(u64::from(PAGE.limit)));
    group.bench_function("fetch/page-256", |b| {
        b.iter(|| store.fetch(john, PAGE).unwrap())
    });
    group.bench_function("ack/page-256", |b| {
        b.iter_batched(
            || {
                let ids: Vec<u64> = (0..PAGE.limit)
                    .map(|_| {
                        match store
                            .enqueue(john, alice, vec![7; ENVELOPE_BYTES], QUOTA)
                            .unwrap()
                        {
                            msgr::server::store::Enqueued::Queued(id) => id,
                            full => panic!("unexpected {full:?}"),
                        }
                    })
                    .collect();
                ids
            },
            |ids| store.ack(john, &ids).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = store_operations
}
criterion_main!(benches);
