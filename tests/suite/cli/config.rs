//! Settings precedence: flag, then environment, then `config.toml`, then
//! the default — for server, user, ca_cert, json and passphrase_file.

use crate::common::client::{json_error, json_object};
use crate::common::{World, msgr_bare};

/// A world with Alice and John registered in one shared config dir, and
/// that dir.
fn shared_keyring() -> (World, std::path::PathBuf) {
    let world = World::new();
    let config = world.dir.path().join("shared");
    for user in ["Alice", "John"] {
        msgr_bare()
            .arg("--config-dir")
            .arg(&config)
            .args(["--server", &format!("localhost:{}", world.server.port)])
            .args(["--user", user, "register", "--bits", "2048"])
            .assert()
            .success();
    }
    (world, config)
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let (world, config) = shared_keyring();
    let good = format!("localhost:{}", world.server.port);
    std::fs::write(
        config.join("config.toml"),
        format!("server = \"{good}\"\nuser = \"Alice\"\njson = true\n"),
    )
    .unwrap();
    let whoami = |envs: &[(&str, &str)], args: &[&str]| {
        let mut command = msgr_bare();
        command.arg("--config-dir").arg(&config).args(args);
        for (key, value) in envs {
            command.env(key, value);
        }
        command.arg("whoami").output().unwrap()
    };

    // The file alone: Alice, in JSON.
    let output = whoami(&[], &[]);
    assert_eq!(json_object(&output.stdout)["user"], "Alice");
    // The environment beats the file.
    let output = whoami(&[("MSGR_USER", "John")], &[]);
    assert_eq!(json_object(&output.stdout)["user"], "John");
    // The flag beats the environment.
    let output = whoami(&[("MSGR_USER", "John")], &["--user", "Alice"]);
    assert_eq!(json_object(&output.stdout)["user"], "Alice");
    // MSGR_JSON=0 beats json = true; --json beats MSGR_JSON=0.
    let output = whoami(&[("MSGR_JSON", "0")], &[]);
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("Account: Alice on ")
    );
    let output = whoami(&[("MSGR_JSON", "0")], &["--json"]);
    assert_eq!(json_object(&output.stdout)["user"], "Alice");
    // --json=false beats the file too.
    let output = whoami(&[], &["--json=false"]);
    assert!(
        String::from_utf8(output.stdout)
            .unwrap()
            .starts_with("Account: ")
    );

    // A wrong server in the environment loses to the flag and beats the file.
    msgr_bare()
        .arg("--config-dir")
        .arg(&config)
        .env("MSGR_SERVER", "localhost:1")
        .args(["--server", &good, "key", "John"])
        .assert()
        .success();
    let output = msgr_bare()
        .arg("--config-dir")
        .arg(&config)
        .env("MSGR_SERVER", "127.0.0.1:1")
        .args(["key", "John"])
        .output()
        .unwrap();
    let error = json_error(&output, "auth");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("Alice is not registered on 127.0.0.1:1 in the keyring "),
        "{error}"
    );
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let config = tempfile::tempdir().unwrap();
    let output = msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .args(["--json", "--user", "Alice", "read"])
        .output()
        .unwrap();
    let error = json_error(&output, "usage");
    assert_eq!(error["message"], "no server given");
    assert!(error["hint"].as_str().unwrap().contains("config.toml"));
    // Without json anywhere, output is for people.
    msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .args(["--user", "Alice", "read"])
        .assert()
        .code(2)
        .stderr("msgr: no server given; pass --server HOST:PORT, set MSGR_SERVER, or put server = \"HOST:PORT\" in config.toml\n");
}

#[test]
fn relative_paths_in_the_file_are_relative_to_the_config_dir() {
    let world = World::new();
    let config = world.config_dir("Alice");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("server.pem"), world.server.certificate_pem().0).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "server = \"localhost:{}\"\nuser = \"Alice\"\nca_cert = \"server.pem\"\n",
            world.server.port
        ),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    msgr_bare()
        .current_dir(elsewhere.path())
        .env("MSGR_CONFIG_DIR", &config)
        .args(["register", "--bits", "2048"])
        .assert()
        .success()
        .stderr("");
    assert!(
        !config.join("known_servers.toml").exists(),
        "verified by the CA file, not pinned"
    );
}

#[test]
fn an_unknown_key_in_the_file_is_a_usage_error_naming_the_known_ones() {
    let config = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("config.toml"), "sever = \"x:1\"\n").unwrap();
    msgr_bare()
        .arg("--config-dir")
        .arg(config.path())
        .arg("whoami")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "the known keys are server, user, ca_cert, json, passphrase_file, pin_policy and timeout",
        ));
}
