//! Accounts and usage errors: names, registration, key files, and the
//! documented exit statuses for what a user can get wrong.

use std::os::unix::fs::PermissionsExt;

use crate::common::{World, msgr_bare};
use predicates::prelude::*;

#[test]
fn a_name_taken_in_another_case_is_refused_and_leaves_no_key() {
    let world = World::new();
    world.register("Alice");
    world
        .msgr("alice")
        .args(["register", "--bits", "2048"])
        .assert()
        .code(7)
        .stderr(predicate::str::ends_with(format!(
            "msgr: the name alice is already taken on localhost:{}; choose another name with --user\n",
            world.server.port
        )));
    let accounts = world.config_dir("alice").join("accounts");
    let leftover: Vec<_> = std::fs::read_dir(accounts)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().file_name())
        .filter(|name| name == "identity.pem")
        .collect();
    assert!(leftover.is_empty(), "the refused key was removed");
}

#[test]
fn registering_twice_from_one_keyring_is_refused() {
    let world = World::new();
    world.register("Alice");
    world
        .msgr("Alice")
        .args(["register", "--bits", "2048"])
        .assert()
        .code(7)
        .stderr(predicate::str::contains(
            "Alice is already registered on localhost:",
        ))
        .stderr(predicate::str::contains("msgr login"));
}

#[test]
fn the_private_key_is_owner_only_and_an_open_one_is_refused() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let account = world.account_dir("Alice");
    let key = account.join("identity.pem");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&account), 0o700);
    assert_eq!(mode(&world.config_dir("Alice")), 0o700);
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .msgr("Alice")
        .args(["create", "John", "hi"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "accessible by other users (mode 644)",
        ))
        .stderr(predicate::str::contains("chmod 600"));
}

/// Folders of the keyring left open to others (made by hand, or by an
/// older setup) are made owner-only by the next command.
#[test]
fn keyring_folders_open_to_others_are_tightened() {
    let world = World::new();
    world.register("Alice");
    let account = world.account_dir("Alice");
    let folders = [
        world.config_dir("Alice"),
        account.parent().unwrap().to_owned(),
        account.clone(),
    ];
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    for folder in &folders {
        std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    world.msgr("Alice").arg("whoami").assert().success();
    for folder in &folders {
        assert_eq!(mode(folder), 0o700, "{}", folder.display());
    }
}

#[test]
fn an_unknown_recipient_is_a_clear_error() {
    let world = World::new();
    world.register("Alice");
    world
        .msgr("Alice")
        .args(["create", "Nobody", "hello?"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(
            "msgr: there is no user named Nobody on this server; check the spelling of the name\n",
        );
}

#[test]
fn commands_before_registering_say_to_register() {
    let world = World::new();
    for command in ["read", "login"] {
        world
            .msgr("Ghost")
            .arg(command)
            .assert()
            .code(4)
            .stderr(predicate::str::contains("run `msgr register` first"));
    }
}

#[test]
fn bad_names_and_missing_options_are_usage_errors() {
    let world = World::new();
    world.msgr("bad/name").arg("read").assert().code(2).stderr(
        "msgr: user name \"bad/name\" may only contain letters, digits, '.', '_' and '-'\n",
    );
    world.register("Alice");
    world
        .msgr("Alice")
        .args(["create", &"x".repeat(33), "hi"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("longer than 32 characters"));
    let config = tempfile::tempdir().unwrap();
    msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .args(["--user", "Alice", "read"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no server given"));
    msgr_bare().arg("frobnicate").assert().code(2);
}

#[test]
fn an_unreachable_server_is_a_connection_error() {
    let config = tempfile::tempdir().unwrap();
    let (_refusing, port) = crate::common::refusing_port();
    msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .args([
            "--server",
            &format!("127.0.0.1:{port}"),
            "--user",
            "Alice",
            "key",
            "John",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::starts_with(format!(
            "msgr: cannot connect to 127.0.0.1:{port}"
        )))
        .stderr(predicate::str::contains("check that the server is running"));
}

#[test]
fn settings_come_from_the_environment_and_config_toml() {
    let world = World::new();
    world.register("Alice");
    let config = world.config_dir("Alice");
    std::fs::write(
        config.join("config.toml"),
        format!(
            "server = \"localhost:{}\"\nuser = \"Alice\"\n",
            world.server.port
        ),
    )
    .unwrap();
    msgr_bare()
        .env("MSGR_CONFIG_DIR", &config)
        .args(["key", "Alice"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("Alice SHA256:"));
    // The environment overrides the file; here it names an unknown user.
    msgr_bare()
        .env("MSGR_CONFIG_DIR", &config)
        .env("MSGR_USER", "Ghost")
        .arg("read")
        .assert()
        .code(4);
}

#[test]
fn after_the_server_lost_its_data_register_registers_the_same_key_again() {
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "before the loss");
    let fingerprint = |world: &World| {
        let output = world
            .msgr("Alice")
            .args(["--json", "whoami"])
            .output()
            .unwrap();
        crate::common::client::json_object(&output.stdout)["fingerprint"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = fingerprint(&world);
    world.lose_server_data();
    let port = world.server.port;
    world
        .msgr("Alice")
        .arg("read")
        .assert()
        .code(4)
        .stderr(format!(
            "msgr: localhost:{port} does not know Alice, though this keyring registered it there; if the server lost its data, run `msgr register` to register the same key again\n"
        ));
    world
        .msgr("Alice")
        .arg("register")
        .assert()
        .success()
        .stdout(format!(
            "Registered Alice on localhost:{port}; key fingerprint {before}\n"
        ))
        .stderr(format!(
            "msgr: localhost:{port} did not know Alice (it may have lost its data); registered this keyring's key again\n"
        ));
    assert_eq!(fingerprint(&world), before);
    // Registered again, the account works, and John's pin of the same key
    // still holds.
    world.msgr("John").arg("register").assert().success();
    world.send("John", "Alice", "after the loss");
    let (status, stdout, stderr) = world.read("Alice");
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("    after the loss"), "{stdout}");
    // A keyring the server does know is still refused a second registration.
    world
        .msgr("Alice")
        .arg("register")
        .assert()
        .code(7)
        .stderr(predicate::str::contains("is already registered"));
}

#[test]
fn unregister_deletes_the_account_and_its_folder_and_frees_the_name() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("John", "Alice", "never read");
    world.send("Alice", "John", "sent before leaving");
    let token = world.stored_token("Alice");
    let folder = world.account_dir("Alice");
    let port = world.server.port;
    world
        .msgr("Alice")
        .args(["unregister", "--yes"])
        .assert()
        .success()
        .stdout(format!(
            "Unregistered Alice on localhost:{port}; deleted {}\n",
            folder.display()
        ));
    assert!(!folder.exists());
    // The server forgot the account: its key, its queue, its sessions.
    world.msgr("John").args(["key", "Alice"]).assert().code(5);
    let refused = crate::common::raw::Client::greeted(&world.server).request(
        &msgr::wire::protocol::Request::Authenticate {
            user: "Alice".into(),
            token,
        },
    );
    assert!(
        matches!(refused, msgr::wire::protocol::Response::Error { .. }),
        "{refused:?}"
    );
    let queued_for_alice: i64 = world
        .server
        .database()
        .query_row(
            "SELECT count(*) FROM messages m JOIN users u ON u.id = m.recipient_id
             WHERE u.name = 'Alice'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(queued_for_alice, 0);
    // What Alice sent before leaving is still John's to read.
    let (status, stdout, stderr) = world.read("John");
    assert_eq!(status, 0, "{stderr}");
    assert!(stdout.contains("From: Alice\n") && stdout.contains("    sent before leaving"));
    // The name is free: a new key can take it.
    world.register("Alice");
}

#[test]
fn unregister_needs_a_confirmation() {
    let world = World::new();
    world.register("Alice");
    world
        .msgr("Alice")
        .arg("unregister")
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "msgr: Alice was not unregistered: there is no terminal to confirm it at; nothing was deleted; pass --yes to delete without being asked\n",
        );
    let (deleted, screen) = world.on_terminal("Alice", &["unregister"], "n\n", &[]);
    assert!(!deleted, "{screen}");
    assert!(screen.contains("This cannot be undone. [y/N]"), "{screen}");
    assert!(
        screen.contains("the deletion was not confirmed"),
        "{screen}"
    );
    // Nothing changed.
    assert!(world.account_dir("Alice").exists());
    world.msgr("Alice").arg("login").assert().success();
    let (deleted, screen) = world.on_terminal("Alice", &["unregister"], "y\n", &[]);
    assert!(deleted, "{screen}");
    assert!(!world.account_dir("Alice").exists());
}
