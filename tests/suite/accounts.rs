//! Accounts and usage errors: names, registration, key files, and the
//! documented exit statuses for what a user can get wrong.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
            .stderr(predicate::str::contains(
                "run `msgr register` to register on",
            ));
    }
}

/// `msgr --server SERVER --user USER --config-dir CONFIG`, for spellings of
/// the server other than the `localhost:PORT` of [`World::msgr`].
fn msgr_on(server: &str, user: &str, config: &Path) -> assert_cmd::Command {
    let mut command = msgr_bare();
    command
        .args(["--server", server, "--user", user, "--config-dir"])
        .arg(config);
    command
}

/// Every file and folder under a directory, by path, with its mode and
/// size, and the contents of each file.
type Tree = BTreeMap<PathBuf, (u32, u64, Vec<u8>)>;

/// The [`Tree`] of `dir`, which a command must not change; `None` if
/// `dir` does not exist.
fn tree(dir: &Path) -> Option<Tree> {
    fn walk(root: &Path, dir: &Path, found: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let metadata = std::fs::symlink_metadata(&path).unwrap();
            let contents = match metadata.is_file() {
                true => std::fs::read(&path).unwrap(),
                false => Vec::new(),
            };
            let relative = path.strip_prefix(root).unwrap().to_owned();
            found.insert(relative, (metadata.mode(), metadata.len(), contents));
            if metadata.is_dir() {
                walk(root, &path, found);
            }
        }
    }
    let metadata = std::fs::metadata(dir).ok()?;
    let mut found = BTreeMap::new();
    found.insert(PathBuf::new(), (metadata.mode(), 0, Vec::new()));
    walk(dir, dir, &mut found);
    Some(found)
}

/// Commands for an account the keyring does not hold, with the arguments
/// each needs: all fail before doing anything.
const LOOKING: &[&[&str]] = &[
    &["whoami"],
    &["contacts"],
    &["read"],
    &["read", "--out-dir", "saved"],
    &["create", "John", "hello"],
    &["key", "John"],
    &["login"],
    &["logout"],
    &["logout", "--all"],
    &["rotate"],
    &["unregister", "--yes"],
];

/// An account is tied to the exact spelling of its server: the error says
/// which keyring was searched and the spelling it holds the user under.
#[test]
fn another_spelling_of_the_server_names_the_one_the_keyring_holds() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.msgr("Alice").args(["key", "John"]).assert().success();
    let config = world.config_dir("Alice");
    let port = world.server.port;
    let before = tree(&config);
    for args in LOOKING {
        msgr_on(&format!("127.0.0.1:{port}"), "Alice", &config)
            .current_dir(world.dir.path())
            .args(*args)
            .assert()
            .code(4)
            .stdout("")
            .stderr(format!(
                "msgr: Alice is not registered on 127.0.0.1:{port} in the keyring {}; it holds Alice on localhost:{port}; \
                 use --server localhost:{port}, or run `msgr register` to register on 127.0.0.1:{port}\n",
                config.display()
            ));
        assert_eq!(tree(&config), before, "msgr {args:?} changed the keyring");
    }
    assert!(
        !world.dir.path().join("saved").exists(),
        "no --out-dir made"
    );
    // The folder is found in any letter case of the name and the host.
    msgr_on(&format!("LOCALHOST:{port}"), "alice", &config)
        .arg("whoami")
        .assert()
        .success();
    // A keyring holding the user under two spellings names both (the same
    // server refuses the name under a second one, so the folder is copied).
    let accounts = config.join("accounts");
    let copy = accounts.join(format!("alice@127.0.0.1:{port}"));
    std::fs::create_dir(&copy).unwrap();
    std::fs::copy(
        accounts.join(format!("alice@localhost:{port}/account.toml")),
        copy.join("account.toml"),
    )
    .unwrap();
    msgr_on(&format!("[::1]:{port}"), "ALICE", &config)
        .arg("whoami")
        .assert()
        .code(4)
        .stderr(format!(
            "msgr: ALICE is not registered on [::1]:{port} in the keyring {}; it holds ALICE on 127.0.0.1:{port} and localhost:{port}; \
             use --server with one of those, or run `msgr register` to register on [::1]:{port}\n",
            config.display()
        ));
}

#[test]
fn a_user_the_keyring_never_saw_is_told_to_register_or_check_the_keyring() {
    let world = World::new();
    world.register("Alice");
    let config = world.config_dir("Alice");
    let server = format!("localhost:{}", world.server.port);
    let before = tree(&config);
    for args in LOOKING {
        msgr_on(&server, "Ghost", &config)
            .current_dir(world.dir.path())
            .args(*args)
            .assert()
            .code(4)
            .stdout("")
            .stderr(format!(
                "msgr: Ghost is not registered on {server} in the keyring {}; it holds no account of Ghost on any other server; \
                 run `msgr register` to register on {server}, or check --user and --config-dir (or MSGR_CONFIG_DIR)\n",
                config.display()
            ));
        assert_eq!(tree(&config), before, "msgr {args:?} changed the keyring");
    }
}

/// A config directory that does not exist is not made by commands that
/// find no account in it.
#[test]
fn a_missing_keyring_stays_missing() {
    let world = World::new();
    world.register("John");
    let config = world.dir.path().join("nowhere").join("msgr");
    let server = format!("localhost:{}", world.server.port);
    for args in LOOKING {
        msgr_on(&server, "Alice", &config)
            .current_dir(world.dir.path())
            .args(*args)
            .assert()
            .code(4)
            .stdout("")
            .stderr(format!(
                "msgr: Alice is not registered on {server} in the keyring {}, which does not exist; \
                 run `msgr register` to register on {server}, or check --user and --config-dir (or MSGR_CONFIG_DIR)\n",
                config.display()
            ));
        assert!(
            !world.dir.path().join("nowhere").exists(),
            "msgr {args:?} made the keyring"
        );
    }
    assert!(
        !world.dir.path().join("saved").exists(),
        "no --out-dir made"
    );
    // `register` makes it, owner-only.
    msgr_on(&server, "Alice", &config)
        .args(["register", "--bits", "2048"])
        .assert()
        .success();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().mode() & 0o777;
    assert_eq!(mode(&config), 0o700);
    assert_eq!(mode(&config.join("accounts")), 0o700);
}

/// The servers listed come from folder names, which anyone who can write
/// to the keyring chooses: they are printed with control characters
/// shown, not obeyed.
#[test]
fn hostile_folder_names_in_the_keyring_are_printed_safely() {
    let world = World::new();
    world.register("Alice");
    let config = world.config_dir("Alice");
    let accounts = config.join("accounts");
    let hostile = accounts.join(OsStr::from_bytes(b"alice@evil\x1b[2J\xe2\x80\xae\xff:1"));
    std::fs::create_dir(&hostile).unwrap();
    std::fs::write(hostile.join("account.toml"), "").unwrap();
    // Neither unregistered folders nor other users are listed.
    std::fs::create_dir(accounts.join("alice@half-made:1")).unwrap();
    std::fs::create_dir(accounts.join("bob@elsewhere:1")).unwrap();
    std::fs::write(accounts.join("bob@elsewhere:1/account.toml"), "").unwrap();
    let port = world.server.port;
    msgr_on(&format!("127.0.0.1:{port}"), "Alice", &config)
        .arg("whoami")
        .assert()
        .code(4)
        .stderr(format!(
            "msgr: Alice is not registered on 127.0.0.1:{port} in the keyring {}; it holds Alice on evil^[[2J\\u{{202e}}\u{fffd}:1 and localhost:{port}; \
             use --server with one of those, or run `msgr register` to register on 127.0.0.1:{port}\n",
            config.display()
        ));
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
            "register",
            "--bits",
            "2048",
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
    // It empties the data directory.
    crate::common::sqlite_only();
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
    let queued_for_alice = world.server.count(
        "SELECT count(*) FROM messages m JOIN users u ON u.id = m.recipient_id
         WHERE u.name = 'Alice'",
    );
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
