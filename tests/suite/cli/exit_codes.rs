//! One test per exit status a user can hit (see the table in the README and
//! `ExitStatus` in src/cli/error.rs), each also checking the stable `code` of
//! the JSON error object.

use std::os::unix::fs::PermissionsExt;

use crate::common::client::json_error;
use crate::common::{Server, World, msgr_bare};

#[test]
fn status_1_local_failure() {
    let world = World::new();
    world.register("Alice");
    let key = world.account_dir("Alice").join("identity.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let output = world
        .msgr("Alice")
        .args(["--json", "login"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    json_error(&output, "local");
}

#[test]
fn status_2_usage() {
    let world = World::new();
    let output = world
        .msgr("Alice")
        .args(["--json", "create"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    json_error(&output, "usage");
    let output = world
        .msgr("bad/name")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    json_error(&output, "usage");
}

#[test]
fn status_3_cannot_connect() {
    let config = tempfile::tempdir().unwrap();
    let (_refusing, port) = crate::common::refusing_port();
    let output = msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .args(["--server", &format!("127.0.0.1:{port}"), "--user", "Alice"])
        .args(["--json", "register", "--bits", "2048"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let error = json_error(&output, "connection");
    assert!(
        error["hint"]
            .as_str()
            .unwrap()
            .contains("server is running")
    );
}

#[test]
fn status_4_not_registered_or_bad_credentials() {
    let world = World::new();
    let output = world
        .msgr("Ghost")
        .args(["--json", "login"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    json_error(&output, "auth");

    // A keyring holding another user's key under Alice's name: the server
    // refuses its answer to the login challenge.
    world.register("Alice");
    world.register("Bob");
    std::fs::remove_file(world.account_dir("Alice").join("session.toml")).ok();
    std::fs::copy(
        world.account_dir("Bob").join("identity.pem"),
        world.account_dir("Alice").join("identity.pem"),
    )
    .unwrap();
    let output = world
        .msgr("Alice")
        .args(["--json", "login"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4));
    let error = json_error(&output, "auth");
    assert_eq!(
        error["message"], "the server refused this keyring's key as Alice's",
        "{error}"
    );
}

#[test]
fn status_5_unknown_recipient() {
    let world = World::new();
    world.register("Alice");
    let output = world
        .msgr("Alice")
        .args(["--json", "key", "Nobody"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    json_error(&output, "unknown_user");
}

#[test]
fn status_6_changed_server_certificate() {
    let mut world = World::new();
    world.register("Alice");
    let port = world.server.port;
    world.server.signal_and_wait("TERM");
    world.server = Server::start_with(&world.dir.path().join("impostor"), port, &[]);
    let output = world
        .msgr("Alice")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    let error = json_error(&output, "trust");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(&world.server.fingerprint)
    );
}

#[test]
fn status_6_message_failing_verification() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "to be tampered with");
    let db = world.server.database();
    let mut envelope: Vec<u8> = db
        .query_row("SELECT envelope FROM messages", [], |r| r.get(0))
        .unwrap();
    let last = envelope.len() - 1;
    envelope[last] ^= 1;
    db.execute(
        "UPDATE messages SET envelope = ?1",
        rusqlite::params![envelope],
    )
    .unwrap();
    let output = world
        .msgr("John")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    assert!(output.stdout.is_empty(), "nothing shown");
    let lines = crate::common::client::json_lines(&output.stderr);
    assert_eq!(lines[0]["level"], "notice", "Alice's key is pinned first");
    assert_eq!(lines[1]["level"], "warning");
    assert!(
        lines[1]["message"]
            .as_str()
            .unwrap()
            .contains("failed verification")
    );
    json_error(&output, "trust");
}

#[test]
fn status_7_message_refused_by_a_size_limit() {
    let world = World::with_server_args(&["--max-message-bytes", "2048"]);
    world.register("Alice");
    world.register("John");
    let output = world
        .msgr("Alice")
        .args(["--json", "create", "John"])
        .write_stdin(vec![b'x'; 4096])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7));
    let error = json_error(&output, "refused");
    // The result object is printed even though nobody got the message.
    let result = crate::common::client::json_object(&output.stdout);
    assert_eq!(result["sent"], serde_json::json!([]));
    assert_eq!(result["failed"][0]["to"], "John");
    assert_eq!(result["failed"][0]["message"], error["message"]);
    // The error names the largest body that fits, and it does fit.
    let message = error["message"].as_str().unwrap();
    let largest: usize = message
        .strip_prefix("the message is 4096 bytes; the largest this server takes is ")
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .unwrap_or_else(|| panic!("{message}"))
        .parse()
        .unwrap();
    assert!(largest > 1000 && largest < 2048, "{largest}");
    world
        .msgr("Alice")
        .args(["create", "John"])
        .write_stdin(vec![b'x'; largest + 1])
        .assert()
        .code(7)
        .stderr(format!(
            "msgr: the message is {} bytes; the largest this server takes is {largest} bytes; send a smaller message\n",
            largest + 1
        ));
    world
        .msgr("Alice")
        .args(["create", "John"])
        .write_stdin(vec![b'x'; largest])
        .assert()
        .success();
}

#[test]
fn status_8_some_recipients_missed() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let output = world
        .msgr("Alice")
        .args(["--json", "create", "John,Nobody", "hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    let error = json_error(&output, "partial");
    assert_eq!(
        error["message"],
        "the message was sent to John but not to Nobody"
    );
}
