//! The interactive session (`msgr` without a command on a terminal, or
//! `msgr shell`), driven through a pseudo-terminal against a real server:
//! the teaching client's dialogue, commands as on the command line, help,
//! Ctrl-C and Ctrl-D, the history, and one connection for the session.

use std::os::unix::fs::PermissionsExt;

use crate::common::World;

/// The prompt for commands.
const PROMPT: &str = "msgr> ";

#[test]
fn alice_writes_to_john_through_the_prompts_and_john_reads_it() {
    let world = World::new();
    world.register("Alice");
    world.register("John");

    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    alice.type_line("KEY");
    alice.expect("Name: ");
    alice.type_line("John");
    alice.expect("John SHA256:");
    alice.expect(PROMPT);
    alice.type_line("create");
    alice.expect("To: ");
    alice.type_line("John");
    alice.expect("Message: ");
    alice.type_line("Hello John! How are you?");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    alice.type_line("Create John \"See you at one\"");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    alice.type_line("quit");
    let (status, _) = alice.finish();
    assert!(status.success(), "{status}");

    let mut john = world.terminal("John", &["shell"]);
    john.expect(PROMPT);
    john.type_line("read --limit 1");
    john.expect("From: Alice");
    john.expect("    Hello John! How are you?");
    john.expect(PROMPT);
    john.type_line("Read");
    john.expect("    See you at one");
    john.expect(PROMPT);
    john.press("\x04");
    let (status, screen) = john.finish();
    assert!(status.success(), "{status}: {screen}");
    world.assert_queued_soon(0);
}

#[test]
fn help_usage_errors_and_ctrl_c_leave_the_session_running() {
    let world = World::new();
    world.register("Alice");
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    alice.type_line("help");
    let help = alice.expect(PROMPT);
    assert!(help.contains("create") && help.contains("quit"), "{help}");
    assert!(!help.contains("  serve "), "{help}");
    alice.type_line("crate John Hi");
    alice.expect("msgr: unrecognized subcommand 'crate'");
    alice.expect(PROMPT);
    alice.type_line("create Nobody \"hello?\"");
    alice.expect("msgr: there is no user named Nobody on this server");
    alice.expect(PROMPT);
    alice.type_line("serve 0");
    alice.expect("msgr: serve does not run in an interactive session");
    alice.expect(PROMPT);
    // Ctrl-C abandons the line typed so far, and a question.
    alice.press("whoami\x03");
    alice.expect(PROMPT);
    alice.type_line("create");
    alice.expect("To: ");
    alice.press("\x03");
    alice.expect(PROMPT);
    alice.type_line("whoami");
    alice.expect("Account: Alice on");
    alice.expect(PROMPT);
    alice.type_line("exit");
    let (status, screen) = alice.finish();
    assert!(
        status.success(),
        "a failed command does not fail the session: {screen}"
    );
    assert!(!screen.contains("Sent to"), "{screen}");
}

#[test]
fn the_history_keeps_commands_but_never_a_message() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    alice.type_line("create John \"the secret plan\"");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    alice.type_line("create");
    alice.expect("To: ");
    alice.type_line("John");
    alice.expect("Message: ");
    alice.type_line("another secret");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    alice.type_line("read --limit 2");
    alice.expect(PROMPT);
    alice.type_line("quit");
    assert!(alice.finish().0.success());

    let path = world.config_dir("Alice").join("history");
    let history = std::fs::read_to_string(&path).unwrap();
    assert!(!history.contains("secret"), "{history}");
    for kept in ["create John", "read --limit 2", "quit"] {
        assert!(history.contains(kept), "{kept} in {history}");
    }
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    // The next session offers it: the up arrow brings back the last line.
    let mut again = world.terminal("Alice", &[]);
    again.expect(PROMPT);
    again.press("\x1b[A\x1b[A\r");
    again.expect("read --limit 2");
    again.expect(PROMPT);
    again.type_line("quit");
    assert!(again.finish().0.success());
}

#[test]
fn commands_share_one_connection() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let before = world.server.log_text().matches("connection opened").count();
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    for line in [
        "key John",
        "create John Hi",
        "read",
        "login",
        "create John again",
    ] {
        alice.type_line(line);
        alice.expect(PROMPT);
    }
    alice.type_line("quit");
    let (status, screen) = alice.finish();
    assert!(status.success(), "{screen}");
    let after = world.server.log_text().matches("connection opened").count();
    assert_eq!(after - before, 1, "{screen}");
}

#[test]
fn without_a_terminal_msgr_without_a_command_prints_its_usage() {
    let world = World::new();
    world
        .msgr("Alice")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("requires a subcommand"));
    world
        .msgr("Alice")
        .arg("shell")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("needs a terminal"));
}

#[test]
fn a_command_after_a_server_restart_connects_again_with_a_notice() {
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    alice.type_line("create John one");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    // Logged out, the session does not watch while the prompt waits.
    alice.type_line("logout");
    alice.expect(PROMPT);
    world.restart();
    alice.type_line("create John two");
    alice.expect("msgr: connecting again to localhost:");
    alice.expect("Sent to John");
    alice.expect(PROMPT);
    alice.type_line("quit");
    let (status, screen) = alice.finish();
    assert!(status.success(), "{screen}");
    world.assert_queued_soon(2);
}

#[test]
fn a_message_arriving_while_the_prompt_waits_is_announced_and_read_shows_it() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // The watch presents the stored session; it never logs in.
    world.msgr("Alice").arg("login").assert().success();
    let opened = || world.server.log_text().matches("connection opened").count();
    let before = opened();
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    world.send("John", "Alice", "Lunch at one?");
    alice.expect("New message from John (");
    alice.expect(", as the server says; read shows and checks it)");
    // A command between: the message, still queued, is not told again.
    alice.type_line("whoami");
    alice.expect("Account: Alice on");
    alice.expect(PROMPT);
    world.send("John", "Alice", "Or at two?");
    alice.expect("New message from John (");
    alice.type_line("read");
    alice.expect("From: John");
    alice.expect("    Lunch at one?");
    alice.expect("    Or at two?");
    alice.expect(PROMPT);
    alice.type_line("quit");
    let (status, screen) = alice.finish();
    assert!(status.success(), "{screen}");
    assert_eq!(screen.matches("New message from").count(), 2, "{screen}");
    assert!(
        !screen[..screen.find("From: John").unwrap()].contains("Lunch"),
        "{screen}"
    );
    // The session's one connection, and the two John's `create`s made.
    assert_eq!(opened() - before, 3, "{screen}");
    world.assert_queued_soon(0);
}

#[test]
fn a_session_waiting_at_its_prompt_connects_again_after_a_server_restart() {
    let mut world = World::new();
    world.register("Alice");
    world.register("John");
    world.msgr("Alice").arg("login").assert().success();
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    world.restart();
    alice.expect("msgr: lost the connection (");
    alice.expect("msgr: connected again to localhost:");
    world.send("John", "Alice", "Still there?");
    alice.expect("New message from John (");
    alice.type_line("read");
    alice.expect("    Still there?");
    alice.expect(PROMPT);
    alice.type_line("quit");
    let (status, screen) = alice.finish();
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("connecting again"), "{screen}");
}

#[test]
fn a_changed_server_certificate_ends_the_session_with_the_trust_status() {
    let mut world = World::new();
    world.register("Alice");
    let port = world.server.port;
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    alice.type_line("crate");
    alice.expect("msgr: unrecognized subcommand");
    alice.expect(PROMPT);
    world.server.signal_and_wait("TERM");
    // Another server (a new certificate) now answers on the same address.
    world.server = crate::common::Server::start_with(&world.dir.path().join("impostor"), port, &[]);
    alice.type_line("read");
    alice.expect("does not match the pinned one");
    let (status, screen) = alice.finish();
    assert_eq!(status.code(), Some(6), "{screen}");
    let after = screen
        .rsplit("does not match the pinned one")
        .next()
        .unwrap();
    assert!(!after.contains(PROMPT), "the session ended: {screen}");
}

#[test]
fn tab_completes_command_names_and_pinned_contacts() {
    let world = World::new();
    world.register("Alice");
    world.register("Johanna");
    world
        .msgr("Alice")
        .args(["key", "Johanna"])
        .assert()
        .success();
    let mut alice = world.terminal("Alice", &[]);
    alice.expect(PROMPT);
    // One command starts "cre", one pinned contact "Joh".
    alice.press("cre\t");
    alice.expect("create");
    alice.press(" Joh\t");
    alice.expect("create Johanna");
    alice.type_line(" \"completed\"");
    alice.expect("Sent to Johanna");
    alice.expect(PROMPT);
    alice.type_line("quit");
    let (status, screen) = alice.finish();
    assert!(status.success(), "{status}: {screen}");
    let (_, stdout, _) = world.read("Johanna");
    assert!(stdout.contains("    completed"), "{stdout}");
}
