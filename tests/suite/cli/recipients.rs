//! Several recipients: `create John,Carol "Hi"` seals one envelope per
//! recipient on one connection, says who got it, and fails naming whoever
//! did not.

use crate::common::World;
use crate::common::client::json_object;
use predicates::prelude::*;

#[test]
fn each_recipient_gets_their_own_envelope() {
    // It reads the envelopes from the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    let connections = || world.server.log_text().matches("connection opened").count();
    let before = connections();
    world
        .msgr("Alice")
        .args(["create", "John,carol,JOHN", "Hi both"])
        .assert()
        .success()
        .stdout("Sent to John\nSent to Carol\n");
    assert_eq!(connections() - before, 1, "one connection for both");
    let envelopes: Vec<Vec<u8>> = {
        let db = world.server.database();
        let mut query = db.prepare("SELECT envelope FROM messages").unwrap();
        query
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(envelopes.len(), 2, "John, named twice, gets one");
    assert_ne!(envelopes[0], envelopes[1], "one envelope per recipient");
    for user in ["John", "Carol"] {
        let (code, stdout, stderr) = world.read(user);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.ends_with("\n\n    Hi both\n\n"), "{stdout}");
        assert_eq!(stdout.matches("From: Alice").count(), 1, "no duplicate");
    }
}

/// A list written as prose, with spaces after the commas, names the same
/// recipients.
#[test]
fn spaces_around_the_commas_of_a_list_are_ignored() {
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    world
        .msgr("Alice")
        .args(["create", "John, Carol ", "Lunch at one?"])
        .assert()
        .success()
        .stdout("Sent to John\nSent to Carol\n");
    for user in ["John", "Carol"] {
        let (code, stdout, stderr) = world.read(user);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.ends_with("\n\n    Lunch at one?\n\n"), "{stdout}");
    }
}

#[test]
fn a_partial_failure_names_who_missed_the_message() {
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    let output = world
        .msgr("Alice")
        .args(["--json", "create", "John,Nobody,Carol,Ghost", "Hi"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(8));
    let result = json_object(&output.stdout);
    let sent: Vec<_> = result["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["to"].clone())
        .collect();
    assert_eq!(sent, ["John", "Carol"]);
    let failed: Vec<_> = result["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["to"].clone())
        .collect();
    assert_eq!(failed, ["Nobody", "Ghost"]);

    world
        .msgr("Alice")
        .args(["create", "John,Nobody", "Hi again"])
        .assert()
        .code(8)
        .stdout("Sent to John\n")
        .stderr(
            "msgr: not sent to Nobody: there is no user named Nobody on this server; check the spelling of the name\n\
             msgr: the message was sent to John but not to Nobody; fix the problems above and send it again to Nobody only\n",
        );
    let (_, stdout, _) = world.read("John");
    assert!(stdout.contains("Hi again"));

    // Nobody at all: the status of the first failure.
    world
        .msgr("Alice")
        .args(["create", "Nobody,Ghost", "Hi"])
        .assert()
        .code(5)
        .stdout("")
        .stderr(predicate::str::ends_with(
            "msgr: the message was sent to nobody: not to Nobody and Ghost; fix the problems above and send it again\n",
        ));
}
