//! The main user journeys, end to end: the README example, bodies from
//! stdin, no message shown twice, and nothing lost across restarts.

use crate::common::World;
use predicates::prelude::*;

#[test]
fn readme_example_delivers_the_message_with_sender_and_time() {
    let world = World::new();
    // Alice uses the default (3072-bit) key size, as a user would.
    world
        .msgr("Alice")
        .arg("register")
        .assert()
        .success()
        .stdout(predicate::str::contains("Registered Alice on localhost:"))
        .stderr(predicate::str::contains(
            "pinned its certificate fingerprint",
        ));
    world.register("John");
    world
        .msgr("Alice")
        .arg("login")
        .assert()
        .success()
        .stdout(predicate::str::starts_with(
            "Logged in as Alice on localhost:",
        ));
    world
        .msgr("Alice")
        .args(["key", "John"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"^John SHA256:[A-Za-z0-9+/]{43}\n$").unwrap());
    world
        .msgr("Alice")
        .args(["create", "John", "Hello John! How are you?"])
        .assert()
        .success()
        .stdout("Sent to John\n");

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "stderr: {stderr}");
    let date = regex_lite_date(&stdout);
    assert_eq!(
        stdout,
        format!("From: Alice\nDate: {date}\n\n    Hello John! How are you?\n\n")
    );
}

/// The `Date:` value of the first message, checked to be RFC 3339 UTC.
fn regex_lite_date(stdout: &str) -> String {
    let line = stdout.lines().nth(1).expect("a Date line");
    let date = line.strip_prefix("Date: ").expect("Date header");
    assert!(
        predicate::str::is_match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            .unwrap()
            .eval(date),
        "{date}"
    );
    date.to_owned()
}

#[test]
fn a_100_kb_body_from_stdin_arrives_intact() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let body: String = (0..100_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    world
        .msgr("Alice")
        .args(["create", "John"])
        .write_stdin(body.clone())
        .assert()
        .success();
    world
        .msgr("Alice")
        .args(["create", "John", "-"])
        .write_stdin("dash means stdin")
        .assert()
        .success();
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "stderr: {stderr}");
    assert!(
        stdout.contains(&format!("\n\n    {body}\n\n")),
        "the 100 KB body is not intact"
    );
    assert!(stdout.contains("\n\n    dash means stdin\n\n"));
    let first = stdout.find(&body).unwrap();
    assert!(
        first < stdout.find("dash means stdin").unwrap(),
        "oldest first"
    );
}

#[test]
fn messages_are_shown_once_even_when_the_server_redelivers_them() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "only once");
    let envelope: Vec<u8> = world
        .server
        .database()
        .query_row("SELECT envelope FROM messages", [], |row| row.get(0))
        .unwrap();

    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("only once"));
    let (code, stdout, _) = world.read("John");
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "second read shows nothing"
    );

    // A replay of the same envelope (by a hostile server) is acknowledged
    // but not shown again.
    let db = world.server.database();
    let (sender, recipient): (i64, i64) = db
        .query_row(
            "SELECT id, (SELECT id FROM users WHERE name = 'John') FROM users WHERE name = 'Alice'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    db.execute(
        "INSERT INTO messages (recipient_id, sender_id, envelope, received_at) VALUES (?1, ?2, ?3, 0)",
        rusqlite::params![recipient, sender, envelope],
    )
    .unwrap();
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""));
    world.assert_queued_soon(0); // the replay was acknowledged
}

#[test]
fn queued_messages_survive_a_restart_and_a_kill() {
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "before restart");
    world.restart();
    world.send("Alice", "John", "before kill");
    let status = world.server.signal_and_wait("KILL");
    assert!(!status.success());
    world.server = world.server.start_again();

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "stderr: {stderr}");
    let first = stdout
        .find("before restart")
        .expect("first message delivered");
    let second = stdout
        .find("before kill")
        .expect("second message delivered");
    assert!(first < second);
}

#[test]
fn several_requests_share_the_session_and_relogin_is_automatic() {
    // It deletes sessions in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // No explicit login: create logs in on its own and keeps the token.
    world.send("Alice", "John", "first");
    let session = world.account_dir("Alice").join("session.toml");
    assert!(session.exists(), "token kept in the keyring");
    // A token the server no longer knows is replaced on the same run.
    world
        .server
        .database()
        .execute("DELETE FROM sessions", [])
        .unwrap();
    world.send("Alice", "John", "second");
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("first") && stdout.contains("second"));
}
