//! Forward secrecy with one-time prekeys: each message is sealed to a
//! one-time prekey the server hands out once, whose private half the
//! recipient deletes once the message is shown; the pool refills itself;
//! an empty pool falls back to the signed prekey alone.

use std::path::Path;

use msgr::wire::envelope;

use crate::common::{World, msgr_bare};

/// The one-time prekey ids of every envelope queued on the server.
fn queued_one_time_ids(world: &World) -> Vec<Option<u32>> {
    let database = world.server.database();
    let mut query = database
        .prepare("SELECT envelope FROM messages ORDER BY id")
        .unwrap();
    query
        .query_map([], |row| row.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|envelope| {
            envelope::parse(&envelope.unwrap())
                .unwrap()
                .one_time_prekey_id
        })
        .collect()
}

/// How many one-time prekeys the server holds for `user`.
fn pool(world: &World, user: &str) -> i64 {
    world
        .server
        .database()
        .query_row(
            "SELECT count(*) FROM one_time_prekeys
             WHERE user_id = (SELECT id FROM users WHERE name = ?1)",
            [user],
            |row| row.get(0),
        )
        .unwrap()
}

/// An attacker who copies the recipient's whole keyring after a message was
/// read, and replays that message to the copy with its shown ids erased,
/// learns nothing: the one-time prekey it was sealed to is gone.
#[test]
fn a_keyring_copied_after_reading_cannot_open_the_message_again() {
    // It reads and re-inserts envelopes in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "the launch code is 0000");
    let captured: (i64, i64, Vec<u8>, i64) = world
        .server
        .database()
        .query_row(
            "SELECT recipient_id, sender_id, envelope, received_at FROM messages",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert!(
        envelope::parse(&captured.2)
            .unwrap()
            .one_time_prekey_id
            .is_some(),
        "sealed to a one-time prekey"
    );
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("the launch code is 0000"), "{stdout}");
    world.assert_queued_soon(0);

    let stolen = world.dir.path().join("stolen");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(world.config_dir("John"))
        .arg(&stolen)
        .status()
        .unwrap();
    assert!(copied.success());
    let account = std::fs::read_dir(stolen.join("accounts"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(account.join("seen.txt")).unwrap();
    world
        .server
        .database()
        .execute(
            "INSERT INTO messages (recipient_id, sender_id, envelope, received_at)
             VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![captured.0, captured.1, captured.2, captured.3],
        )
        .unwrap();
    let replay = read_with_keyring(&world, "John", &stolen);
    assert_eq!(replay.status.code(), Some(6));
    let stdout = String::from_utf8_lossy(&replay.stdout);
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(!stdout.contains("launch code"), "{stdout}");
    assert!(!stderr.contains("launch code"), "{stderr}");
    assert!(
        stderr.contains("one-time prekey") && stderr.contains("which this keyring does not hold"),
        "{stderr}"
    );
}

/// `read` as `user` with the keyring in `config_dir`.
fn read_with_keyring(world: &World, user: &str, config_dir: &Path) -> std::process::Output {
    msgr_bare()
        .args(["--server", &format!("localhost:{}", world.server.port)])
        .args(["--user", user, "--config-dir"])
        .arg(config_dir)
        .arg("read")
        .output()
        .unwrap()
}

/// The one-time prekeys Alice keeps for her next message to John.
fn kept_for_john(world: &World) -> Vec<u32> {
    let dir = world.account_dir("Alice").join("claimed").join("john");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut ids: Vec<u32> = entries
        .map(|entry| {
            entry
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn parallel_creates_each_get_their_own_one_time_prekey() {
    // It counts prekeys in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // The second round seals ahead to the prekeys the first one kept.
    for round in 0..2 {
        let children: Vec<_> = (0..8)
            .map(|i| {
                world
                    .msgr_process("Alice")
                    .args(["create", "John", &format!("message {round}.{i}")])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
    }
    let mut ids: Vec<u32> = queued_one_time_ids(&world)
        .into_iter()
        .map(|id| id.expect("every message sealed to a one-time prekey"))
        .collect();
    assert_eq!(ids.len(), 16);
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16, "no one-time prekey used twice");
    assert!(
        kept_for_john(&world).iter().all(|id| !ids.contains(id)),
        "a kept prekey is one no message used"
    );
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    for message in (0..2).flat_map(|round| (0..8).map(move |i| format!("message {round}.{i}\n"))) {
        assert!(stdout.contains(&message), "{stdout}");
    }
}

/// `create` seals its envelope while it connects, to a one-time prekey the
/// previous message to the same recipient claimed and kept; each message
/// claims exactly one.
#[test]
fn a_sender_keeps_one_claimed_prekey_for_the_next_message() {
    // It counts prekeys in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "first");
    let kept = kept_for_john(&world);
    assert_eq!(kept.len(), 1, "one prekey kept for the next message");
    assert_eq!(pool(&world, "John"), 98, "one used, one kept");
    world.send("Alice", "John", "second");
    let queued = queued_one_time_ids(&world);
    assert_eq!(queued.len(), 2);
    assert_eq!(queued[1], Some(kept[0]), "sealed to the kept prekey");
    assert_eq!(kept_for_john(&world).len(), 1);
    assert_ne!(kept_for_john(&world), kept, "another kept in its place");
    assert_eq!(pool(&world, "John"), 97, "one claimed per message");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("first\n") && stdout.contains("second\n"),
        "{stdout}"
    );
}

#[test]
fn the_pool_refills_when_it_runs_low_and_an_empty_one_falls_back() {
    // It deletes prekeys in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    assert_eq!(pool(&world, "John"), 100);
    // Drained (as by many senders) to below a fifth: John's next command
    // that logs in tops it up.
    world
        .server
        .database()
        .execute("DELETE FROM one_time_prekeys WHERE id > 19", [])
        .unwrap();
    assert_eq!(pool(&world, "John"), 19);
    let (code, _, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(pool(&world, "John"), 100);

    // Empty: the message is sealed to the signed prekey alone, and says so.
    world
        .server
        .database()
        .execute("DELETE FROM one_time_prekeys", [])
        .unwrap();
    world.send("Alice", "John", "no one-time prekey left");
    assert_eq!(queued_one_time_ids(&world), [None]);
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("no one-time prekey left"), "{stdout}");
}

/// A keyring that lost `prekeys.toml` (or was made anew) cannot open what
/// the server's old pool would bring: its next command replaces the pool.
#[test]
fn a_keyring_without_its_prekeys_replaces_the_servers_pool() {
    // It counts prekeys in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    std::fs::remove_file(world.account_dir("John").join("prekeys.toml")).unwrap();
    // The server still holds the old pool, numbered 1 to 100 like the new
    // one: added to, it would keep the old prekeys under those numbers.
    assert_eq!(pool(&world, "John"), 100);
    let (code, _, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(pool(&world, "John"), 100);
    world.send("Alice", "John", "sealed to the new pool");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sealed to the new pool"), "{stdout}");
}

/// The ids of the signed prekeys in `user`'s keyring.
fn signed_prekey_ids(world: &World, user: &str) -> Vec<i64> {
    let path = world.account_dir(user).join("prekeys.toml");
    let file: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
    file["signed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|prekey| prekey["id"].as_integer().unwrap())
        .collect()
}

/// A signed prekey replaced more than 30 days ago can open no message a
/// reader still shows: its private half goes with the next command.
#[test]
fn a_signed_prekey_replaced_over_thirty_days_ago_is_deleted() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // Prekey 1 made 40 days ago, replaced by prekey 2 (made and
    // published) 31 days ago.
    let path = world.account_dir("John").join("prekeys.toml");
    let mut file: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let day = 24 * 60 * 60;
    let now = msgr::wire::protocol::unix_now() as i64;
    let signed = file["signed"].as_array_mut().unwrap();
    signed[0]["created_at"] = toml::Value::Integer(now - 40 * day);
    let mut replacement = signed[0].clone();
    replacement["id"] = toml::Value::Integer(2);
    replacement["created_at"] = toml::Value::Integer(now - 31 * day);
    replacement["published_at"] = toml::Value::Integer(now - 31 * day);
    signed.push(replacement);
    std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
    assert_eq!(signed_prekey_ids(&world, "John"), [1, 2]);

    let (code, _, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    // Prekey 2, due for replacement, was replaced by 3 just now, and is
    // kept for the messages sealed to it.
    assert_eq!(signed_prekey_ids(&world, "John"), [2, 3]);
    world.send("Alice", "John", "sealed to prekey 3");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("sealed to prekey 3"), "{stdout}");
}
