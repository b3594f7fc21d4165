//! Bodies of any bytes: text is printed as text; a body that is not UTF-8
//! is saved in the account's folder in human mode, and `--out-dir` saves
//! every body to its own file named by message id. An empty body, or one given
//! as several arguments, is refused.

use std::os::unix::fs::PermissionsExt;

use crate::common::World;
use crate::common::client::json_lines;

const BINARY: &[u8] = &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0xff];

#[test]
fn a_binary_body_in_human_mode_is_saved_in_the_account_folder() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    world
        .msgr("Alice")
        .args(["create", "John", "-"])
        .write_stdin(BINARY)
        .assert()
        .success();
    world.send("Alice", "John", "a text after it");
    let received = world.account_dir("John").join("received");
    let output = world.msgr("John").arg("read").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let saved: Vec<_> = std::fs::read_dir(&received)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(&saved[0]).unwrap(), BINARY);
    let name = saved[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("alice-"), "{name}");
    assert!(
        stdout.contains(&format!("Saved: {}\n", saved[0].display())),
        "{stdout}"
    );
    assert!(stdout.contains("\n\n    a text after it\n\n"), "{stdout}");
    // Acknowledged: nothing is stuck in the queue.
    world.assert_queued_soon(0);
    let mode = std::fs::metadata(&received).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn out_dir_saves_each_body_under_its_sender_and_message_id() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let sent = world
        .msgr("Alice")
        .args(["--json", "create", "John"])
        .write_stdin(BINARY)
        .output()
        .unwrap();
    let id = json_lines(&sent.stdout)[0]["sent"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    world.send("Alice", "John", "text goes to a file too");
    let out = world.dir.path().join("inbox");

    let output = world
        .msgr("John")
        .arg("--json")
        .args(["read", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let messages = json_lines(&output.stdout);
    assert_eq!(messages.len(), 2);
    let binary_path = out.join(format!("alice-{id}"));
    assert_eq!(messages[0]["path"], binary_path.to_str().unwrap());
    assert!(messages[0].get("body").is_none() && messages[0].get("body_base64").is_none());
    assert_eq!(std::fs::read(&binary_path).unwrap(), BINARY);
    let mode = std::fs::metadata(&binary_path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "bodies are private");
    let text_path = messages[1]["path"].as_str().unwrap();
    assert_eq!(
        std::fs::read_to_string(text_path).unwrap(),
        "text goes to a file too"
    );
    let (code, stdout, _) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""), "both were acknowledged");
}

/// A name taken in the out-dir — by other contents, or by a link planted
/// there — is never overwritten or followed: the body goes to the next free
/// name, and the read goes on. An out-dir others may write to is refused.
#[test]
fn out_dir_in_human_mode_prints_the_paths_and_never_overwrites() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let sent = world
        .msgr("Alice")
        .args(["--json", "create", "John", "first"])
        .output()
        .unwrap();
    let id = json_lines(&sent.stdout)[0]["sent"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = format!("alice-{id}");
    let out = world.dir.path().join("inbox");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join(&id), "someone else's file").unwrap();
    let victim = world.dir.path().join("victim");
    std::fs::write(&victim, "not to be touched").unwrap();
    std::os::unix::fs::symlink(&victim, out.join(format!("{id}.2"))).unwrap();

    let shared = world.dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    world
        .msgr("John")
        .args(["read", "--out-dir"])
        .arg(&shared)
        .assert()
        .code(1)
        .stdout("")
        .stderr(format!(
            "msgr: {} is writable by others; give --out-dir a folder of your own that only you can write to\n",
            shared.display()
        ));

    let saved = out.join(format!("{id}.3"));
    let output = world
        .msgr("John")
        .args(["read", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("From: Alice\nDate: "), "{stdout}");
    assert!(
        stdout.ends_with(&format!("\nSaved: {}\n\n", saved.display())),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), "first");
    assert_eq!(
        std::fs::read_to_string(out.join(&id)).unwrap(),
        "someone else's file"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "not to be touched"
    );
}

/// A body cannot pass for msgr's own lines: each of its lines is indented,
/// and control and bidirectional-formatting characters are shown, not
/// obeyed, in a pipe as on a terminal.
#[test]
fn a_body_cannot_fake_a_header_or_reorder_text() {
    let world = World::new();
    world.register("Mallory");
    world.register("John");
    let forged =
        "pay me\n\nFrom: Alice\nDate: 2026-11-29T09:00:00Z\n\ninvoice for \u{202e}cod.exe\x1b[2J";
    world.send("Mallory", "John", forged);
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    let body = stdout.split_once("\n\n").unwrap().1;
    assert_eq!(
        body,
        "    pay me\n\n    From: Alice\n    Date: 2026-11-29T09:00:00Z\n\n    invoice for \\u{202e}cod.exe^[[2J\n\n"
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|line| line.starts_with("From:"))
            .count(),
        1,
        "{stdout}"
    );
}

/// A script that lost its input sends nothing: an empty body is refused
/// unless asked for.
#[test]
fn an_empty_message_is_sent_only_when_asked_for() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    for stdin in [None, Some("")] {
        let mut create = world.msgr("Alice");
        create.args(["create", "John"]);
        match stdin {
            None => create.arg(""),
            Some(input) => create.write_stdin(input),
        };
        create.assert().code(2).stdout("").stderr(
            "msgr: the message is empty, so nothing was sent; give the message as an argument \
             or on standard input, or pass --allow-empty\n",
        );
    }
    assert_eq!(world.queued(), 0);
    world
        .msgr("Alice")
        .args(["create", "--allow-empty", "John", ""])
        .assert()
        .success();
    assert_eq!(world.queued(), 1);
}

/// A message typed without quotes arrives as several arguments: nothing
/// is sent (not its first word alone), and the hint shows it quoted.
#[test]
fn a_message_of_several_arguments_is_refused_with_a_hint_to_quote_it() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world
        .msgr("Alice")
        .args(["create", "John", "Hello", "world"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(
            "msgr: the message must be one argument, but 2 were given; \
             quote it: msgr create John \"Hello world\"\n",
        );
    let output = world
        .msgr("Alice")
        .args([
            "--json",
            "create",
            "John, Carol",
            "it's",
            "$5",
            "--allow-empty",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        r#"{"level":"error","code":"usage","exit_status":2,"message":"the message must be one argument, but 2 were given","hint":"quote it: msgr create John,Carol 'it'\\''s $5'"}
"#
    );
    assert_eq!(world.queued(), 0);
}
