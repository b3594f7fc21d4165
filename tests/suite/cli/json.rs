//! `--json`: every client command prints machine-readable results on
//! stdout (one object, or one object per line for `read` and `contacts`)
//! and, in JSON mode, every line on stderr is a JSON object too.

use crate::common::World;
use crate::common::client::{json_error, json_lines, json_object};
use predicates::prelude::*;

fn is_fingerprint(value: &serde_json::Value) -> bool {
    predicate::str::is_match(r"^SHA256:[A-Za-z0-9+/]{43}$")
        .unwrap()
        .eval(value.as_str().unwrap_or_default())
}

fn is_rfc3339(value: &serde_json::Value) -> bool {
    predicate::str::is_match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$")
        .unwrap()
        .eval(value.as_str().unwrap_or_default())
}

/// The JSON object `user`'s `msgr ARGS` prints on stdout.
fn json_of(world: &World, user: &str, args: &[&str]) -> serde_json::Value {
    json_object(&world.msgr(user).args(args).output().unwrap().stdout)
}

#[test]
fn account_commands_print_one_json_object_each() {
    let world = World::new();
    let output = world
        .msgr("Alice")
        .args(["--json", "register", "--bits", "2048"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let registered = json_object(&output.stdout);
    assert_eq!(registered["user"], "Alice");
    assert_eq!(
        registered["server"],
        format!("localhost:{}", world.server.port)
    );
    assert_eq!(registered["bits"], 2048);
    assert_eq!(registered["passphrase_protected"], false);
    assert!(is_fingerprint(&registered["fingerprint"]));
    // The first-use pin notice is a JSON line on stderr.
    let notices = json_lines(&output.stderr);
    assert_eq!(notices.len(), 1);
    assert_eq!(notices[0]["level"], "notice");
    assert!(
        notices[0]["message"]
            .as_str()
            .unwrap()
            .contains(&world.server.fingerprint)
    );

    let login = json_of(&world, "Alice", &["--json", "login"]);
    assert_eq!(login["user"], "Alice");
    assert!(is_rfc3339(&login["expires_at"]), "{login}");

    let whoami = json_of(&world, "Alice", &["--json", "whoami"]);
    assert_eq!(whoami["user"], "Alice");
    assert_eq!(whoami["fingerprint"], registered["fingerprint"]);
    assert_eq!(whoami["server_pin"], world.server.fingerprint.as_str());
    assert_eq!(whoami["session_valid"], true);

    let logout = json_of(&world, "Alice", &["--json", "logout"]);
    assert_eq!(logout["session_ended"], true);
}

#[test]
fn message_commands_print_one_json_object_each() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let key = json_of(&world, "Alice", &["key", "John", "--json"]);
    assert_eq!(key["user"], "John");
    assert_eq!(key["pin"], "new");
    assert_eq!(key["bits"], 2048);
    assert!(is_fingerprint(&key["fingerprint"]));
    let again = json_of(&world, "Alice", &["--json", "key", "john"]);
    assert_eq!(
        (&again["user"], &again["pin"]),
        (&"John".into(), &"unchanged".into())
    );

    let created = world
        .msgr("Alice")
        .args(["--json", "create", "John", "hi"])
        .output()
        .unwrap();
    assert!(created.status.success());
    let created = json_object(&created.stdout);
    assert_eq!(created["from"], "Alice");
    assert_eq!(created["failed"], serde_json::json!([]));
    assert_eq!(created["sent"][0]["to"], "John");
    let id = created["sent"][0]["id"].as_str().unwrap().to_owned();
    assert!(
        predicate::str::is_match("^[0-9a-f]{32}$")
            .unwrap()
            .eval(&id)
    );

    let read = world
        .msgr("John")
        .args(["--json", "read"])
        .output()
        .unwrap();
    let messages = json_lines(&read.stdout);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0]["id"],
        id.as_str(),
        "sender and recipient see one id"
    );
}

#[test]
fn read_prints_one_object_per_message_with_text_or_base64_bodies() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "plain text ✓");
    let binary = vec![0xff, 0xfe, 0x00, 0x80, b'x'];
    world
        .msgr("Alice")
        .args(["create", "John"])
        .write_stdin(binary.clone())
        .assert()
        .success();

    let output = world
        .msgr("John")
        .args(["--json", "read"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The one notice: Alice's key was pinned on sight.
    let notices = json_lines(&output.stderr);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["level"], "notice");
    assert_eq!(notices[0]["user"], "Alice");
    let alice = world
        .msgr("Alice")
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    assert_eq!(
        notices[0]["fingerprint"],
        json_object(&alice.stdout)["fingerprint"]
    );
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["sender_pin"], "new");
    assert_eq!(messages[1]["sender_pin"], "pinned");
    for message in &messages {
        assert_eq!(message["from"], "Alice");
        assert_eq!(message["to"], "John");
        assert!(is_rfc3339(&message["sent_at"]), "{message}");
    }
    assert_eq!(messages[0]["body"], "plain text ✓");
    assert!(messages[0].get("body_base64").is_none());
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(messages[1]["body_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, binary);
    assert!(messages[1].get("body").is_none());
}

#[test]
fn contacts_are_json_lines() {
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    for name in ["John", "Carol"] {
        world.msgr("Alice").args(["key", name]).assert().success();
    }
    let output = world
        .msgr("Alice")
        .args(["--json", "contacts"])
        .output()
        .unwrap();
    let contacts = json_lines(&output.stdout);
    let names: Vec<_> = contacts
        .iter()
        .map(|c| c["user"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Carol", "John"]);
    assert!(contacts.iter().all(|c| is_fingerprint(&c["fingerprint"])));
}

#[test]
fn errors_are_one_json_object_on_stderr() {
    let world = World::new();
    world.register("Alice");
    let output = world
        .msgr("Alice")
        .args(["--json", "create", "Nobody", "hello?"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5));
    let error = json_error(&output, "unknown_user");
    assert_eq!(
        error["message"],
        "there is no user named Nobody on this server"
    );
    assert_eq!(error["hint"], "check the spelling of the name");
    // The result still says who got the message: nobody.
    let result = json_object(&output.stdout);
    assert_eq!(result["sent"], serde_json::json!([]));
    assert_eq!(result["failed"][0]["to"], "Nobody");
    assert_eq!(result["failed"][0]["code"], "unknown_user");
}

/// Usage errors in JSON say all that clap says: what is missing or
/// wrong, its tips (a similar subcommand) and the usage.
#[test]
fn usage_errors_are_json_when_json_is_asked_for() {
    let world = World::new();
    let usage_error = |message: &str, hint: &str| {
        format!(
            "{{\"level\":\"error\",\"code\":\"usage\",\"exit_status\":2,\"message\":{},\"hint\":{}}}\n",
            serde_json::Value::from(message),
            serde_json::Value::from(hint)
        )
    };
    for (args, env, expected) in [
        (
            &["--json", "create"][..],
            None,
            usage_error(
                "the following required arguments were not provided: <RECIPIENT[,RECIPIENT...]>",
                "usage: msgr create <RECIPIENT[,RECIPIENT...]> [MESSAGE]",
            ),
        ),
        (
            &["--json", "crate", "John", "Hi"][..],
            None,
            usage_error(
                "unrecognized subcommand 'crate'",
                "some similar subcommands exist: 'rotate', 'create'; usage: msgr [OPTIONS] <COMMAND>",
            ),
        ),
        (
            &["read", "--limit", "0", "--json"][..],
            None,
            usage_error(
                "invalid value '0' for '--limit <N>': 0 is not in 1..=4294967295",
                "run `msgr --help` for the usage",
            ),
        ),
        (
            &["read", "--bogus"][..],
            Some("1"),
            usage_error(
                "unexpected argument '--bogus' found",
                "usage: msgr read [OPTIONS]",
            ),
        ),
    ] {
        let mut command = world.msgr("Alice");
        if let Some(value) = env {
            command.env("MSGR_JSON", value);
        }
        let output = command.args(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            expected,
            "{args:?}"
        );
    }
    // Without JSON, clap's own report is kept.
    world
        .msgr("Alice")
        .arg("frobnicate")
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "error: unrecognized subcommand",
        ));
    // A missing setting is a usage error too, found after parsing.
    let output = crate::common::msgr_bare()
        .args(["--json", "--config-dir"])
        .arg(world.config_dir("Nobody"))
        .arg("whoami")
        .output()
        .unwrap();
    let error = json_error(&output, "usage");
    assert_eq!(error["message"], "no server given");
}
