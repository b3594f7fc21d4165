//! Shell integration: completion scripts, manual pages, colour and the
//! spinner only on a terminal (and never with NO_COLOR), and `-v`, `-q`
//! and `RUST_LOG` for client and server logs.

use crate::common::{Server, World, msgr_bare};
use predicates::prelude::*;

#[test]
fn completions_are_printed_for_every_shell() {
    for (shell, marker) in [
        ("bash", "complete -F _msgr"),
        ("zsh", "#compdef msgr"),
        ("fish", "complete -c msgr"),
        ("elvish", "edit:completion:arg-completer[msgr]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        msgr_bare()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains(marker))
            .stdout(predicate::str::contains("whoami"))
            .stderr("");
    }
    msgr_bare().args(["completions", "tcsh"]).assert().code(2);
}

#[test]
fn bash_accepts_the_completion_script() {
    let script = msgr_bare()
        .args(["completions", "bash"])
        .output()
        .unwrap()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msgr.bash");
    std::fs::write(&path, script).unwrap();
    assert_cmd::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p msgr", path.display()))
        .assert()
        .success()
        .stdout(predicate::str::contains("_msgr"));
}

#[test]
fn man_pages_are_roff_for_msgr_and_each_command() {
    msgr_bare()
        .arg("man")
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH msgr 1"))
        .stdout(predicate::str::contains("msgr\\-read(1)"));
    msgr_bare()
        .args(["man", "read"])
        .assert()
        .success()
        .stdout(predicate::str::contains(".TH msgr-read 1"))
        .stdout(predicate::str::contains("\\-\\-follow"));
    msgr_bare()
        .args(["man", "frobnicate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "msgr has no command named frobnicate",
        ));
}

#[test]
fn the_overview_page_has_environment_exit_status_files_and_examples() {
    let output = msgr_bare().arg("man").output().unwrap();
    assert!(output.status.success());
    let page = String::from_utf8(output.stdout).unwrap();
    let heading = |name: &str| {
        page.find(&format!("\n{name}\n"))
            .unwrap_or_else(|| panic!("no {name} in\n{page}"))
    };
    let order = [
        heading(".SH ENVIRONMENT"),
        heading(".SH \"EXIT STATUS\""),
        heading(".SH FILES"),
        heading(".SH EXAMPLES"),
        heading(".SH VERSION"),
    ];
    assert!(order.is_sorted(), "{order:?}");
    // Code in bold, each word kept from hyphenation (\%).
    for lines in [
        // ENVIRONMENT
        ".TP\n\\fB\\%MSGR_SERVER\\fR\nThe same as \\fB\\%\\-\\-server \\%HOST:PORT\\fR, which wins \
         over it; it wins over \\fB\\%server\\fR in \\fB\\%config.toml\\fR.\n",
        ".TP\n\\fB\\%MSGR_PASSPHRASE\\fR\nThe passphrase itself, in place of \
         \\fB\\%\\-\\-passphrase\\-file \\%FILE\\fR, which wins over it; it wins over \
         \\fB\\%passphrase_file\\fR in \\fB\\%config.toml\\fR.\n",
        ".TP\n\\fB\\%NO_COLOR\\fR\nNot empty: no colour, even on a terminal.\n",
        // EXIT STATUS
        ".TP\n\\fB\\%0\\fR\nSuccess.\n",
        ".TP\n\\fB\\%5\\fR\nUnknown user: the recipient or contact does not exist on the server. \
         JSON code \\fB\\%unknown_user\\fR.\n",
        // FILES
        ".TP\n\\fB\\%accounts/<user>@<host:port>/identity.pem\\fR\nPrivate key, PKCS#8 PEM, \
         encrypted with \\-\\-passphrase (mode 0600).\n",
        ".TP\n\\fB\\%lock\\fR\nHeld by the \\fB\\%msgr \\%serve\\fR using the directory, with its \
         process id.\n",
        // EXAMPLES
        "\\&msgr \\-\\-server localhost:12000 \\-\\-user Alice key John # fetch, pin and show \
         John\\*(Aqs key fingerprint\n",
    ] {
        assert!(page.contains(lines), "no {lines:?} in\n{page}");
    }
    // The subcommands' pages stay as clap makes them.
    let read = msgr_bare().args(["man", "read"]).output().unwrap().stdout;
    assert!(!String::from_utf8(read).unwrap().contains(".SH ENVIRONMENT"));
}

#[test]
fn colour_and_the_spinner_appear_only_on_a_terminal() {
    let world = World::new();
    // Piped: plain text.
    world.register("John");
    world.send("John", "John", "to myself");
    world
        .msgr("John")
        .arg("read")
        .assert()
        .success()
        .stdout(predicate::str::contains("\x1b").not());
    world.send("John", "John", "again");

    // A terminal: a spinner while the key is made, bold labels, a red
    // error prefix.
    let (ok, screen) = world.on_terminal("Alice", &["register", "--bits", "2048"], "", &[]);
    assert!(ok, "{screen}");
    assert!(screen.contains("generating a 2048-bit RSA key"), "{screen}");
    let (ok, screen) = world.on_terminal("John", &["read"], "", &[]);
    assert!(ok, "{screen}");
    assert!(screen.contains("\x1b[1mFrom:\x1b[0m John"), "{screen:?}");
    let (ok, screen) = world.on_terminal("Nobody", &["login"], "", &[]);
    assert!(!ok);
    assert!(
        screen.contains("\x1b[1m\x1b[31mmsgr:\x1b[0m "),
        "{screen:?}"
    );

    // NO_COLOR: no escapes, even on a terminal.
    world.send("John", "John", "once more");
    let (ok, screen) = world.on_terminal("John", &["read"], "", &[("NO_COLOR", "1")]);
    assert!(ok, "{screen}");
    assert!(screen.contains("From: John"), "{screen:?}");
    assert!(!screen.contains('\x1b'), "{screen:?}");
}

#[test]
fn message_text_cannot_drive_the_terminal() {
    let world = World::new();
    world.register("John");
    world.send("John", "John", "\x1b]0;owned\x07\x1b[2Jtext");
    let (ok, screen) = world.on_terminal("John", &["read"], "", &[("NO_COLOR", "1")]);
    assert!(ok, "{screen}");
    assert!(screen.contains("^[]0;owned^G^[[2Jtext"), "{screen:?}");
}

#[test]
fn verbosity_flags_and_rust_log_control_client_logs() {
    let world = World::new();
    world.register("Alice");
    // Quiet by default.
    world
        .msgr("Alice")
        .args(["key", "Alice"])
        .assert()
        .success()
        .stderr(predicate::str::contains("pinned the key"));
    world
        .msgr("Alice")
        .args(["key", "Alice"])
        .assert()
        .success()
        .stderr("");
    world
        .msgr("Alice")
        .args(["-v", "key", "Alice"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "INFO msgr::client::net: connected",
        ))
        .stderr(predicate::str::contains("DEBUG").not());
    world
        .msgr("Alice")
        .env("RUST_LOG", "msgr=debug")
        .args(["key", "Alice"])
        .assert()
        .success()
        .stderr(predicate::str::contains("DEBUG msgr::client::net"));
    // The flag beats RUST_LOG, and -q drops notices too.
    world.register("John");
    world
        .msgr("Alice")
        .env("RUST_LOG", "debug")
        .args(["-q", "key", "John"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("John SHA256:"))
        .stderr("");
}

#[test]
fn verbosity_flags_control_server_logs() {
    let dir = tempfile::tempdir().unwrap();
    // Its helper sets RUST_LOG=debug; -q overrides it down to warnings.
    let quiet = Server::start_with(&dir.path().join("quiet"), 0, &["-q"]);
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        server: quiet,
    };
    world.register("Alice");
    world.send("Alice", "Alice", "hello");
    let log = world.server.log_text();
    assert!(!log.contains("INFO") && !log.contains("DEBUG"), "{log}");

    let loud = Server::start_logging(&dir.path().join("loud"), 0, &["-vv"], "warn");
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        server: loud,
    };
    world.register("Alice");
    let log = world.server.log_text();
    assert!(log.contains("DEBUG"), "{log}");
}

#[test]
fn json_server_logs_are_one_object_per_line_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_logging(
        &dir.path().join("server"),
        0,
        &["--log-format", "json"],
        "debug",
    );
    let world = World {
        dir: tempfile::tempdir().unwrap(),
        server,
    };
    world.register("Alice");
    world.send("Alice", "Alice", "a body no log may hold");
    let token = world.stored_token("Alice");
    let log = world.server.log_text();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(events.len() > 3, "{log}");
    for event in &events {
        for field in ["timestamp", "level", "target", "fields"] {
            assert!(event.get(field).is_some(), "{field} missing: {event}");
        }
    }
    assert!(
        events
            .iter()
            .any(|e| e["level"] == "INFO" && e["fields"]["message"].is_string()),
        "{log}"
    );
    let engine = base64::engine::general_purpose::STANDARD;
    let token = base64::Engine::encode(&engine, &token.0);
    assert!(!log.contains(&token) && !log.contains("a body no log may hold"));
}
