//! Concurrency (issue 3, item 5): many senders at once to one recipient,
//! and several `msgr` processes on one account at once (two cron jobs),
//! all succeed; nothing is lost or shown twice, and the keyring stays
//! whole.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use crate::common::World;
use crate::common::raw::{Client, keys, sealed};
use msgr::wire::protocol::{Request, Response};

/// Server flags that keep the rate limits out of the way of the crowd.
const ROOMY: &[&str] = &[
    "--max-logins-per-minute",
    "10000",
    "--max-registrations-per-hour",
    "10000",
];

/// Run `f(i)` for each `i` in `0..n` on its own thread; results in order.
fn in_parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                scope.spawn({
                    let f = &f;
                    move || f(i)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

/// How often each body line appears in `read` output.
fn body_counts(stdout: &str) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    // Bodies are indented in human output.
    for line in stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("body-"))
    {
        *counts.entry(line).or_default() += 1;
    }
    counts
}

/// No temporary file left behind in any keyring folder.
fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp"), "left behind: {}", path.display());
        if path.is_dir() {
            assert_no_temp_files(&path);
        }
    }
}

#[test]
fn many_senders_at_once_to_one_recipient_lose_and_duplicate_nothing() {
    let world = World::with_server_args(ROOMY);
    let senders: Vec<String> = (0..6).map(|i| format!("sender{i}")).collect();
    in_parallel(senders.len() + 1, |i| match senders.get(i) {
        Some(name) => world.register(name),
        None => world.register("John"),
    });
    in_parallel(senders.len(), |i| {
        for n in 0..3 {
            world.send(&senders[i], "John", &format!("body-{i}-{n}"));
        }
    });
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    let counts = body_counts(&stdout);
    assert_eq!(counts.len(), 18, "{stdout}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[test]
fn concurrent_raw_sends_all_commit_with_distinct_ids() {
    let world = World::with_server_args(ROOMY);
    let [alice, john, _] = keys();
    let mut setup = Client::greeted(&world.server);
    setup.register("Alice", alice);
    setup.register("John", john);
    let ids: Vec<u64> = in_parallel(24, |_| {
        let mut client = Client::greeted(&world.server);
        client.log_in("Alice", alice);
        (0..4)
            .map(|_| match client.request(&sealed("Alice", "John", b"x")) {
                Response::Sent { id } => id,
                other => panic!("send: {other:?}"),
            })
            .collect::<Vec<_>>()
    })
    .concat();
    let distinct: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 96);
    setup.log_in("John", john);
    let stored: HashSet<u64> = setup.fetch().iter().map(|m| m.id).collect();
    assert_eq!(stored, distinct);
    let acked = setup.request(&Request::Ack { ids: ids.clone() });
    assert_eq!(acked, Response::Acked { count: 96 });
}

#[test]
fn concurrent_creates_and_reads_on_one_account_all_succeed_once() {
    let world = World::with_server_args(ROOMY);
    world.register("Alice");
    world.register("John");
    // Several cron jobs creating as Alice at once, before Alice has a
    // session or John's key is pinned: they all log in and pin together.
    in_parallel(6, |i| world.send("Alice", "John", &format!("body-{i}")));
    // Several readers as John at once: each message is shown by exactly one.
    let outputs = in_parallel(4, |_| world.read("John"));
    let mut all = String::new();
    for (code, stdout, stderr) in &outputs {
        assert_eq!(*code, 0, "{stderr}");
        all.push_str(stdout);
    }
    let counts = body_counts(&all);
    assert_eq!(counts.len(), 6, "{all}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");

    // The keyrings are whole: both accounts go on working.
    for user in ["Alice", "John"] {
        assert_no_temp_files(&world.config_dir(user));
    }
    world.send("Alice", "John", "body-after");
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.matches("body-").count()), (0, 1));
}
