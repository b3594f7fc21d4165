//! `msgr admin` beside a running server, on its data directory or (with
//! `MSGR_TEST_BACKEND=postgres`) its database: the accounts and totals it lists,
//! an account deleted, sessions revoked (the server stops connections
//! acting with them), and an online backup that a server started on it
//! serves as it was.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::client::{json_lines, json_object};
use crate::common::raw::Client;
use crate::common::{Server, World, msgr_bare};

/// `msgr admin` on `data_dir`.
fn admin(data_dir: &Path) -> assert_cmd::Command {
    let mut command = msgr_bare();
    command.arg("admin").arg("--data-dir").arg(data_dir);
    command
}

/// `msgr admin` on the store `server` runs on, its data directory or its
/// database, and how messages name that store.
fn admin_of(server: &Server) -> (assert_cmd::Command, String) {
    match &server.database {
        None => (
            admin(&server.data_dir),
            server.data_dir.display().to_string(),
        ),
        Some(database) => {
            let url = database.url("postgresql");
            let mut command = msgr_bare();
            command.args(["admin", "--database", &url]);
            (command, url["postgresql://".len()..].to_owned())
        }
    }
}

fn fingerprint_of(world: &World, user: &str) -> String {
    let output = world
        .msgr(user)
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    json_object(&output.stdout)["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn users_and_stats_show_what_the_store_holds() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "twelve bytes");
    let output = admin_of(&world.server)
        .0
        .args(["users"])
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let users = json_lines(&output.stdout);
    let names: Vec<_> = users.iter().map(|u| u["user"].clone()).collect();
    assert_eq!(names, ["Alice", "John"]);
    let john = &users[1];
    assert_eq!(john["fingerprint"], fingerprint_of(&world, "John"));
    assert_eq!(john["queued_messages"], 1);
    assert!(john["queued_bytes"].as_u64().unwrap() > 12);
    assert!(john["registered_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(users[0]["sessions"], 1, "Alice logged in to send");

    let human = admin_of(&world.server).0.arg("stats").output().unwrap();
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(
        text.starts_with("accounts: 2\nqueued: 1 messages, "),
        "{text}"
    );
    assert!(text.contains("\noldest queued message: 20"), "{text}");
}

#[test]
fn revoked_sessions_stop_the_connections_acting_with_them() {
    let world = World::new();
    world.register("Alice");
    world.msgr("Alice").arg("login").assert().success();
    let mut connection = Client::greeted(&world.server);
    connection.assert_authenticated("Alice", &world.stored_token("Alice"));
    admin_of(&world.server)
        .0
        .args(["revoke-sessions", "alice"])
        .assert()
        .success()
        .stdout(
            "Ended 1 sessions of Alice; servers stop the connections acting with them within a second\n",
        );
    connection.assert_session_ends();
    // The account itself is untouched: it logs in again.
    world.msgr("Alice").arg("login").assert().success();
}

#[test]
fn delete_user_frees_the_name() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let (mut command, place) = admin_of(&world.server);
    command
        .args(["delete-user", "ALICE"])
        .assert()
        .success()
        .stdout("Deleted Alice (its key, queue and sessions); the name is free\n");
    world.msgr("John").args(["key", "Alice"]).assert().code(5);
    admin_of(&world.server)
        .0
        .args(["delete-user", "Alice"])
        .assert()
        .code(5)
        .stderr(format!(
            "msgr: there is no account named Alice in {place}; `msgr admin users` lists the accounts\n"
        ));
}

#[test]
fn a_backup_taken_while_serving_is_served_as_it_was() {
    // `msgr admin` works on the data directory.
    crate::common::sqlite_only();
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "in the backup");
    let copies = tempfile::tempdir().unwrap();
    let backup = copies.path().join("msgr.db");
    let data = world.server.data_dir.clone();
    admin(&data)
        .arg("backup")
        .arg(&backup)
        .assert()
        .success()
        .stdout(predicates::str::starts_with(format!(
            "Wrote a copy of the database to {} (",
            backup.display()
        )));
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    admin(&data)
        .arg("backup")
        .arg(&backup)
        .assert()
        .code(1)
        .stderr(predicates::str::contains("exists already"));
    world.send("Alice", "John", "after the backup");

    // Restored: the database replaced by the copy, on the same port.
    let status = world.server.signal_and_wait("TERM");
    assert!(status.success());
    for name in ["msgr.db", "msgr.db-wal", "msgr.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    std::fs::copy(&backup, data.join("msgr.db")).unwrap();
    world.server = crate::common::Server::start_with(&data, world.server.port, &[]);
    let (status, stdout, stderr) = world.read("John");
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("    in the backup\n"), "{stdout}");
    assert!(!stdout.contains("after the backup"), "{stdout}");
}

#[test]
fn admin_needs_a_database() {
    let empty = tempfile::tempdir().unwrap();
    admin(empty.path())
        .arg("users")
        .assert()
        .code(1)
        .stderr(no_database_in(empty.path()));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

/// What `msgr admin` says of a data directory without a database.
fn no_database_in(dir: &Path) -> String {
    format!(
        "msgr: there is no msgr database in {}; pass --data-dir with the data directory the server runs on\n",
        dir.display()
    )
}

/// A URL on which nothing listens: a command that uses it fails saying so.
const NOBODY: &str = "postgresql://nobody@127.0.0.1:1/none";

#[test]
fn a_flag_names_the_store_whatever_the_other_kinds_variable_says() {
    let empty = tempfile::tempdir().unwrap();
    // MSGR_DATABASE_URL set for the usual server; --data-dir wins.
    admin(empty.path())
        .env("MSGR_DATABASE_URL", NOBODY)
        .arg("users")
        .assert()
        .code(1)
        .stderr(no_database_in(empty.path()));
    // MSGR_DATA_DIR set; --database wins.
    msgr_bare()
        .env("MSGR_DATA_DIR", empty.path())
        .args(["admin", "--database", NOBODY, "users"])
        .assert()
        .code(1)
        .stderr(predicates::str::contains(
            "cannot reach PostgreSQL at nobody@127.0.0.1:1/none",
        ));
}

/// The first line of what `command` says on stderr as it fails as a usage
/// error.
fn usage_error(command: &mut assert_cmd::Command) -> String {
    let failed = command.assert().code(2);
    let stderr = String::from_utf8_lossy(&failed.get_output().stderr).into_owned();
    stderr.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn both_kinds_of_store_at_once_are_a_usage_error() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        usage_error(
            msgr_bare()
                .env("MSGR_DATA_DIR", empty.path())
                .env("MSGR_DATABASE_URL", NOBODY)
                .args(["admin", "users"])
        ),
        "error: MSGR_DATA_DIR and MSGR_DATABASE_URL are both set; unset one, or choose with --data-dir or --database"
    );
    assert_eq!(
        usage_error(admin(empty.path()).args(["--database", NOBODY, "users"])),
        "error: --data-dir and --database cannot be used together; a server keeps its state in one place"
    );
    // `migrate` names both itself: the variables are its defaults, not a
    // conflict.
    msgr_bare()
        .env("MSGR_DATA_DIR", empty.path())
        .env("MSGR_DATABASE_URL", NOBODY)
        .args(["admin", "migrate", "--data-dir"])
        .arg(empty.path())
        .assert()
        .code(1)
        .stderr(no_database_in(empty.path()));
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}
