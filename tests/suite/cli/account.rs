//! `whoami`, `contacts` and `logout`: what the keyring knows about the
//! account, the pinned keys, and ending the session on both sides.

use crate::common::World;
use crate::common::client::json_object;
use predicates::prelude::*;

#[test]
fn whoami_shows_account_key_server_pin_and_session() {
    let world = World::new();
    world.register("Alice");
    let registered_fingerprint = {
        let output = world
            .msgr("Alice")
            .args(["--json", "whoami"])
            .output()
            .unwrap();
        let whoami = json_object(&output.stdout);
        assert_eq!(
            whoami["session_valid"], false,
            "registering does not log in"
        );
        assert_eq!(whoami["session_expires_at"], serde_json::Value::Null);
        whoami["fingerprint"].as_str().unwrap().to_owned()
    };
    world.msgr("Alice").arg("login").assert().success();
    let output = world.msgr("Alice").arg("whoami").output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("Account: Alice on localhost:{}", world.server.port)
    );
    assert_eq!(
        lines[1],
        format!("Key:     {registered_fingerprint} (not passphrase-protected)")
    );
    assert_eq!(lines[2], "History: 1 key (never rotated)");
    assert_eq!(
        lines[3],
        format!(
            "Server:  certificate pinned as {}",
            world.server.fingerprint
        )
    );
    assert!(
        predicate::str::is_match(r"^Session: valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
            .unwrap()
            .eval(lines[4]),
        "{text}"
    );
    assert_eq!(lines.len(), 5);
}

#[test]
fn whoami_before_registering_says_to_register() {
    let world = World::new();
    world
        .msgr("Ghost")
        .arg("whoami")
        .assert()
        .code(4)
        .stderr(predicate::str::contains(
            "which does not exist; run `msgr register` to register on",
        ));
}

#[test]
fn contacts_lists_pinned_keys_with_fingerprints() {
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    world
        .msgr("Alice")
        .arg("contacts")
        .assert()
        .success()
        .stdout("");
    world.send("Alice", "John", "pins John on the way");
    world
        .msgr("Alice")
        .args(["key", "Carol"])
        .assert()
        .success();
    let john = world
        .msgr("John")
        .arg("--json")
        .arg("whoami")
        .output()
        .unwrap();
    let john = json_object(&john.stdout)["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let carol = world
        .msgr("Carol")
        .arg("--json")
        .arg("whoami")
        .output()
        .unwrap();
    let carol = json_object(&carol.stdout)["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    world
        .msgr("Alice")
        .arg("contacts")
        .assert()
        .success()
        .stdout(format!("Carol {carol}\nJohn {john}\n"));
}

#[test]
fn logout_ends_the_session_locally_and_on_the_server() {
    let world = World::new();
    world.register("Alice");
    world.msgr("Alice").arg("login").assert().success();
    let sessions = || world.server.count("SELECT count(*) FROM sessions");
    assert_eq!(sessions(), 1);
    let session_file = world.account_dir("Alice").join("session.toml");
    assert!(session_file.exists());

    world
        .msgr("Alice")
        .arg("logout")
        .assert()
        .success()
        .stdout(format!(
            "Logged out Alice from localhost:{}\n",
            world.server.port
        ));
    assert_eq!(sessions(), 0, "the server forgot the token");
    assert!(!session_file.exists(), "the keyring forgot the token");
    world
        .msgr("Alice")
        .arg("logout")
        .assert()
        .success()
        .stdout(format!(
            "Alice had no session on localhost:{}\n",
            world.server.port
        ));
    // The next command simply logs in again.
    world
        .msgr("Alice")
        .args(["key", "Alice"])
        .assert()
        .success();
    world.msgr("Alice").args(["read"]).assert().success();
    assert_eq!(sessions(), 1);
}

/// `logout --all` ends every session of the account, such as one whose
/// token was copied to another machine, and those of other keyrings.
#[test]
fn logout_all_ends_every_session_of_the_account() {
    let world = World::new();
    world.register("Alice");
    world.msgr("Alice").arg("login").assert().success();
    let copied = world.stored_token("Alice");
    world.msgr("Alice").arg("login").assert().success();
    world
        .msgr("Alice")
        .args(["logout", "--all"])
        .assert()
        .success()
        .stdout(format!(
            "Ended every session of Alice on localhost:{}\n",
            world.server.port
        ));
    let sessions = world.server.count("SELECT count(*) FROM sessions");
    assert_eq!(sessions, 0);
    let mut elsewhere = crate::common::raw::Client::greeted(&world.server);
    assert_eq!(
        crate::common::raw::error_code(&elsewhere.authenticate("Alice", &copied)),
        msgr::wire::protocol::ErrorCode::AuthFailed
    );
    assert!(!world.account_dir("Alice").join("session.toml").exists());
}
