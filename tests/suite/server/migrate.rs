//! `msgr admin migrate` and `msgr admin --database`: an SQLite server's
//! data directory copied into PostgreSQL, served from there on the same
//! port with the same certificate, nothing lost; the copy refused while a
//! server runs on the directory or into a database that holds accounts;
//! and the operator's commands on the database servers share.

use std::path::Path;
use std::sync::Arc;

use crate::common::client::{json_lines, json_object};
use crate::common::{Server, TestDatabase, World, msgr_bare, sqlite_only};
use msgr::server::postgres::PgStore;

/// `msgr admin migrate --data-dir DIR --database URL`.
fn migrate(data_dir: &Path, database: &TestDatabase) -> assert_cmd::Command {
    let mut command = msgr_bare();
    command
        .args(["admin", "migrate", "--data-dir"])
        .arg(data_dir)
        .args(["--database", &database.url("postgresql")]);
    command
}

/// `msgr admin --database URL`.
fn admin(database: &TestDatabase) -> assert_cmd::Command {
    let mut command = msgr_bare();
    command.args(["admin", "--database", &database.url("postgresql")]);
    command
}

/// The database as msgr's messages name it: `user@host:port/database`.
fn target(database: &TestDatabase) -> String {
    let store = PgStore::open(&database.url("postgresql")).unwrap();
    store.target().to_owned()
}

/// A stopped SQLite server whose Alice sent Bob two messages.
fn stopped_with_two_messages() -> World {
    sqlite_only();
    let mut world = World::new();
    world.register("Alice");
    world.register("Bob");
    world.send("Alice", "Bob", "first");
    world.send("Alice", "Bob", "second");
    let status = world.server.signal_and_wait("TERM");
    assert!(status.success(), "server exited with {status}");
    world
}

#[test]
fn a_migrated_server_serves_all_with_the_same_certificate() {
    let Some(database) = TestDatabase::create("a_migrated_server_serves_all") else {
        return;
    };
    let database = Arc::new(database);
    let mut world = stopped_with_two_messages();
    let fingerprint = world.server.fingerprint.clone();
    let output = migrate(&world.server.data_dir, &database).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("Copied 2 accounts, ") && text.contains(", 2 queued messages, "),
        "{text}"
    );
    assert!(
        text.ends_with(&format!(
            " and the certificate {fingerprint} into {}; start the servers with --database\n",
            target(&database)
        )),
        "{text}"
    );

    let log_dir = world.dir.path().join("shared");
    world.server = Server::start_shared_on(&log_dir, &database, world.server.port, &[]);
    assert_eq!(world.server.fingerprint, fingerprint);
    // The clients' pins of the certificate and of each other hold.
    let (code, stdout, stderr) = world.read("Bob");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("first") && stdout.contains("second"),
        "{stdout}"
    );
    world.send("Alice", "Bob", "third");
    let (code, stdout, stderr) = world.read("Bob");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("third") && !stdout.contains("first"),
        "{stdout}"
    );
}

#[test]
fn admin_works_on_the_database_servers_share() {
    let Some(database) = TestDatabase::create("admin_works_on_the_database") else {
        return;
    };
    let database = Arc::new(database);
    let mut world = stopped_with_two_messages();
    migrate(&world.server.data_dir, &database)
        .assert()
        .success();
    let log_dir = world.dir.path().join("shared");
    world.server = Server::start_shared_on(&log_dir, &database, world.server.port, &[]);
    let target = target(&database);

    let output = admin(&database).args(["--json", "users"]).output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let users = json_lines(&output.stdout);
    let names: Vec<_> = users.iter().map(|u| u["user"].clone()).collect();
    assert_eq!(names, ["Alice", "Bob"]);
    assert_eq!(users[1]["queued_messages"], 2);
    let stats = admin(&database).arg("stats").output().unwrap();
    let text = String::from_utf8(stats.stdout).unwrap();
    assert!(
        text.starts_with("accounts: 2\nqueued: 2 messages, "),
        "{text}"
    );

    world.msgr("Alice").arg("login").assert().success();
    let sessions_of_alice = || {
        database.count(
            "SELECT count(*) FROM sessions JOIN users ON users.id = sessions.user_id \
             WHERE users.name_key = 'alice'",
        )
    };
    let sessions = sessions_of_alice();
    assert!(sessions > 0);
    admin(&database)
        .args(["revoke-sessions", "alice"])
        .assert()
        .success()
        .stdout(format!(
            "Ended {sessions} sessions of Alice; servers stop the connections acting with \
             them within a second\n"
        ));
    assert_eq!(sessions_of_alice(), 0);
    admin(&database)
        .args(["delete-user", "Carol"])
        .assert()
        .code(5)
        .stderr(format!(
            "msgr: there is no account named Carol in {target}; `msgr admin users` lists the accounts\n"
        ));
    admin(&database)
        .args(["backup", "copy.db"])
        .assert()
        .code(2)
        .stderr(format!(
            "msgr: `msgr admin backup` copies a data directory's database, not PostgreSQL's at \
             {target}; back PostgreSQL up with pg_dump, which takes a consistent copy while the \
             servers run\n"
        ));
    admin(&database)
        .arg("--data-dir")
        .arg(world.dir.path())
        .arg("users")
        .assert()
        .code(2);
    // Alice logs in again by herself, and still reaches Bob.
    world.send("Alice", "Bob", "after the revocation");
}

#[test]
fn a_copy_is_refused_beside_a_server_or_into_a_database_with_accounts() {
    let Some(database) = TestDatabase::create("a_copy_is_refused") else {
        return;
    };
    sqlite_only();
    let mut world = World::new();
    world.register("Alice");
    world.register("Bob");
    world.send("Alice", "Bob", "kept");
    let data_dir = world.server.data_dir.clone();
    migrate(&data_dir, &database)
        .assert()
        .code(1)
        .stderr(predicates::str::contains(format!(
            " is in use by another msgr serve (process {}), ",
            world.server.pid()
        )));
    assert_eq!(
        database.count("SELECT count(*) FROM pg_tables WHERE tablename = 'users'"),
        0
    );

    let status = world.server.signal_and_wait("TERM");
    assert!(status.success(), "server exited with {status}");
    let output = migrate(&data_dir, &database)
        .arg("--json")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let copied = json_object(&output.stdout);
    assert_eq!(copied["accounts"], 2);
    assert_eq!(copied["deleted_accounts"], 0);
    assert_eq!(copied["queued_messages"], 1);
    assert_eq!(copied["signed_prekeys"], 2);
    assert_eq!(copied["certificate"], world.server.fingerprint.as_str());
    assert_eq!(copied["database"], target(&database).as_str());

    migrate(&data_dir, &database)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "msgr: {} holds accounts already; msgr copies a data directory into an empty \
             database only; nothing was copied; make an empty database (createdb) and give \
             --database its URL\n",
            target(&database)
        ));
    assert_eq!(database.count("SELECT count(*) FROM users"), 2);
    assert_eq!(database.count("SELECT count(*) FROM messages"), 1);

    let empty = world.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    migrate(&empty, &database)
        .assert()
        .code(1)
        .stderr(predicates::str::starts_with(format!(
            "msgr: there is no msgr database in {}",
            empty.display()
        )));
    assert!(!empty.join("lock").exists());
}
