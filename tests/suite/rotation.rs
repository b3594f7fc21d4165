//! Key rotation: `msgr rotate` replaces the account's identity key with a
//! statement signed by both keys, which the server serves with the key. A
//! contact holding an earlier pin follows the chain by itself, with a
//! notice naming both fingerprints, and still opens what was signed or
//! sealed before; a key not chained to the pin is still refused.

use msgr::wire::crypto::PrivateKey;
use msgr::wire::protocol::{
    Base64Bytes, ErrorCode, KeyRotation, Request, Response, SignedPrekey, unix_now,
};
use msgr::wire::signing::{self, PrekeyKind};

use crate::common::raw::{Client, error_code, keys, prekeys, signed_in};
use crate::common::{World, name, start_server};

/// The fingerprint of `user`'s key, as `whoami` shows it.
fn own_fingerprint(world: &World, user: &str) -> String {
    let output = world
        .msgr(user)
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let whoami: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    whoami["fingerprint"].as_str().unwrap().to_owned()
}

/// `user`'s signed prekey on the server and the numbers of their pool.
fn published_prekeys(world: &World, user: &str) -> ((i64, Vec<u8>), Vec<i64>) {
    let db = world.server.database();
    let owner = "(SELECT id FROM users WHERE name = ?1)";
    let signed = db
        .query_row(
            &format!("SELECT id, public_key FROM signed_prekeys WHERE user_id = {owner}"),
            [user],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let mut pool = db
        .prepare(&format!(
            "SELECT id FROM one_time_prekeys WHERE user_id = {owner} ORDER BY id"
        ))
        .unwrap();
    let pool = pool
        .query_map([user], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (signed, pool)
}

/// `msgr rotate` as `user`; returns the new fingerprint.
fn rotate(world: &World, user: &str) -> String {
    let old = own_fingerprint(world, user);
    let output = world.msgr(user).arg("rotate").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    let new = own_fingerprint(world, user);
    assert_ne!(old, new);
    assert_eq!(
        stdout,
        format!(
            "Replaced the key of {user} {old} with {new}; contacts follow it on their next contact\n"
        )
    );
    new
}

#[test]
fn a_chain_of_three_keys_is_followed_and_earlier_messages_stay_readable() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let first = own_fingerprint(&world, "Alice");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    world.send("Alice", "John", "signed by the first key");
    world.send("John", "Alice", "sealed to the first key's prekeys");
    rotate(&world, "Alice");
    world.send("Alice", "John", "signed by the second key");
    let third = rotate(&world, "Alice");
    world.send("Alice", "John", "signed by the third key");

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.matches("From: Alice").count(),
        3,
        "every message shown: {stdout}"
    );
    for body in ["first", "second", "third"] {
        assert!(
            stdout.contains(&format!("signed by the {body} key\n")),
            "{stdout}"
        );
    }
    assert_eq!(
        stderr,
        format!(
            "msgr: Alice replaced their key {first} with {third}, signed by both keys; the pin follows it\n"
        )
    );
    world
        .msgr("John")
        .args(["key", "Alice"])
        .assert()
        .success()
        .stdout(format!("Alice {third}\n"));

    // What John sealed to Alice's first prekeys is still hers to read.
    let (code, stdout, stderr) = world.read("Alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("sealed to the first key's prekeys"),
        "{stdout}"
    );
    world
        .msgr("Alice")
        .arg("whoami")
        .assert()
        .success()
        .stdout(predicates::str::contains(
            "History: 3 keys (rotated 2 times)\n",
        ));
}

#[test]
fn a_sender_holding_the_old_pin_follows_it_and_seals_to_the_new_key() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("John", "Alice", "first contact");
    let old = own_fingerprint(&world, "Alice");
    let new = rotate(&world, "Alice");
    world
        .msgr("John")
        .args(["create", "Alice", "after the rotation"])
        .assert()
        .success()
        .stdout("Sent to Alice\n")
        .stderr(format!(
            "msgr: Alice replaced their key {old} with {new}, signed by both keys; the pin follows it\n"
        ));
    let (code, stdout, stderr) = world.read("Alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("first contact") && stdout.contains("after the rotation"));
}

#[test]
fn a_key_not_chained_to_the_pin_is_still_refused() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    let alice = own_fingerprint(&world, "Alice");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    rotate(&world, "Carol");
    let carol = own_fingerprint(&world, "Carol");
    // The operator hands out Carol's new key as Alice's, with Carol's own
    // rotation (which names Carol and starts from her key) as the chain,
    // and then with that rotation claiming to start from Alice's key.
    let db = world.server.database();
    db.execute_batch(
        "UPDATE users SET public_key = (SELECT public_key FROM users WHERE name = 'Carol')
             WHERE name = 'Alice';
         DELETE FROM signed_prekeys WHERE user_id = (SELECT id FROM users WHERE name = 'Alice');
         INSERT INTO key_rotations
             (user_id, old_key, new_key, rotated_at, old_signature, new_signature)
             SELECT (SELECT id FROM users WHERE name = 'Alice'), old_key, new_key, rotated_at,
                    old_signature, new_signature
             FROM key_rotations;",
    )
    .unwrap();
    let refused = |world: &World| {
        world
            .msgr("John")
            .args(["key", "Alice"])
            .assert()
            .code(6)
            .stderr(predicates::str::contains(&alice))
            .stderr(predicates::str::contains(&carol));
    };
    refused(&world);
    db.execute(
        "UPDATE key_rotations SET old_key = (SELECT public_key FROM users WHERE name = 'John')
         WHERE user_id = (SELECT id FROM users WHERE name = 'Alice')",
        [],
    )
    .unwrap();
    refused(&world);
}

/// A rotation interrupted after the server took it, before the keyring
/// replaced its key, is finished by running `rotate` again.
#[test]
fn an_interrupted_rotation_is_finished_by_running_it_again() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let dir = world.account_dir("Alice");
    let before = |file: &str| std::fs::read(dir.join(file)).unwrap();
    let (identity, account) = (before("identity.pem"), before("account.toml"));
    let new = rotate(&world, "Alice");
    // Back to the moment before the new key replaced the old one.
    std::fs::rename(dir.join("identity.pem"), dir.join("identity.next.pem")).unwrap();
    std::fs::write(dir.join("identity.pem"), identity).unwrap();
    let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(dir.join("identity.pem"), owner_only).unwrap();
    std::fs::write(dir.join("account.toml"), account).unwrap();
    // Until it is finished, nothing signs with either key.
    world
        .msgr("Alice")
        .args(["create", "John", "signed with which key?"])
        .assert()
        .code(4)
        .stderr(predicates::str::contains(
            "a key rotation of this account is unfinished",
        ));
    let output = world.msgr("Alice").arg("rotate").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(own_fingerprint(&world, "Alice"), new);
    assert!(!dir.join("identity.next.pem").exists());
    world.send("John", "Alice", "to the new key");
    let (code, stdout, stderr) = world.read("Alice");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("to the new key"), "{stdout}");
}

/// The server takes a rotation only signed by both keys, from the
/// account's current key, dated now, with prekeys signed by the new key;
/// the same rotation sent again is answered as taken; the account's other
/// sessions end with it.
#[test]
fn the_server_checks_every_part_of_a_rotation() {
    let (_dir, server) = start_server(&[]);
    let [alice, _, third] = keys();
    let new = PrivateKey::generate(2048).unwrap();
    let now = unix_now();
    let prekeys_by = |key: &PrivateKey| {
        let sign = |kind, id| {
            SignedPrekey::sign(kind, &name("Alice"), id, now, &prekeys()[0], key).unwrap()
        };
        (
            sign(PrekeyKind::Signed, 2),
            vec![sign(PrekeyKind::OneTime, 1)],
        )
    };
    let request = |rotation: KeyRotation, by: &PrivateKey| {
        let (signed_prekey, one_time_prekeys) = prekeys_by(by);
        Request::RotateKey {
            rotation,
            signed_prekey,
            one_time_prekeys,
        }
    };
    let good = KeyRotation::sign(&name("Alice"), alice, &new, now).unwrap();

    let mut anonymous = Client::greeted(&server);
    assert_eq!(
        error_code(&anonymous.request(&request(good.clone(), &new))),
        ErrorCode::AuthRequired
    );
    let mut client = signed_in(&server, "Alice");
    // Another session, made with the old key (a thief's, say), one
    // connection acting with it, and a login half done with it.
    let other_token = Client::greeted(&server).login("Alice", alice);
    let mut thief = Client::greeted(&server);
    thief.log_in("Alice", alice);
    let mut racer = Client::greeted(&server);
    let Response::LoginChallenge { nonce } = racer.request(&Request::Login {
        user: "Alice".into(),
    }) else {
        panic!("a login challenge");
    };
    let refused = [
        // Signed by the new key only.
        KeyRotation {
            old_signature: good.new_signature.clone(),
            ..good.clone()
        },
        // From a key that is not Alice's.
        KeyRotation::sign(&name("Alice"), third, &new, now).unwrap(),
        // Dated a day ago.
        KeyRotation::sign(&name("Alice"), alice, &new, now - 24 * 60 * 60).unwrap(),
        // Signed as Bob's.
        KeyRotation::sign(&name("Bob"), alice, &new, now).unwrap(),
    ];
    for rotation in refused {
        assert_eq!(
            error_code(&client.request(&request(rotation, &new))),
            ErrorCode::BadRequest
        );
    }
    // Prekeys still signed by the old key.
    assert_eq!(
        error_code(&client.request(&request(good.clone(), alice))),
        ErrorCode::BadRequest
    );
    let get_key = Request::GetKey {
        user: "Alice".into(),
        claim: false,
    };
    let Response::Key { public_key, .. } = client.request(&get_key) else {
        panic!("Alice has a key");
    };
    assert_eq!(
        public_key,
        Base64Bytes(alice.public_key().to_der()),
        "unchanged"
    );

    for _ in 0..2 {
        assert_eq!(
            client.request(&request(good.clone(), &new)),
            Response::KeyRotated {
                one_time_prekeys: 1
            }
        );
    }
    // Every other session of the account ended with the old key, the
    // connection acting with it stopped, and the login cannot finish.
    let mut elsewhere = Client::greeted(&server);
    assert_eq!(
        error_code(&elsewhere.authenticate("Alice", &other_token)),
        ErrorCode::AuthFailed
    );
    let fetch = Request::Fetch {
        after: 0,
        limit: 1,
        wait_ms: 0,
    };
    assert_eq!(error_code(&thief.request(&fetch)), ErrorCode::AuthFailed);
    let statement = signing::login(&racer.certificate_digest(), &name("Alice"), &nonce.0);
    let proof = Request::LoginProof {
        signature: Base64Bytes(alice.sign(&statement).unwrap()),
    };
    assert_eq!(error_code(&racer.request(&proof)), ErrorCode::AuthFailed);
    assert!(matches!(client.request(&fetch), Response::Messages { .. }));
    // A later rotation may not be dated before this one.
    let backdated = KeyRotation::sign(&name("Alice"), &new, third, now - 60).unwrap();
    assert_eq!(
        error_code(&client.request(&request(backdated, third))),
        ErrorCode::BadRequest
    );
    let Response::Key {
        public_key,
        rotations,
        signed_prekey,
        ..
    } = client.request(&get_key)
    else {
        panic!("Alice has a key");
    };
    assert_eq!(public_key, Base64Bytes(new.public_key().to_der()));
    assert_eq!(rotations, [good]);
    let signed_prekey = signed_prekey.expect("the new signed prekey");
    assert_eq!(signed_prekey.id, 2, "the old one went with the old key");
    assert!(
        signed_prekey
            .verify(PrekeyKind::Signed, &name("Alice"), &new.public_key())
            .is_some()
    );
}

/// What a thief copied with the keyring is useless after a rotation: the
/// session token ends, and the prekeys messages are sealed to from then on
/// are made anew, not the stolen ones signed again.
#[test]
fn a_rotation_ends_a_stolen_session_and_publishes_fresh_prekeys() {
    // It reads prekeys from the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.msgr("Alice").arg("login").assert().success();
    let stolen = world.stored_token("Alice");
    let ((signed_id, signed_key), pool) = published_prekeys(&world, "Alice");
    rotate(&world, "Alice");
    let ((new_id, new_key), new_pool) = published_prekeys(&world, "Alice");
    assert!(
        new_id > signed_id && new_key != signed_key,
        "a new signed prekey"
    );
    assert_eq!(new_pool.len(), 100);
    assert!(
        new_pool.iter().all(|id| id > pool.last().unwrap()),
        "a new pool: {new_pool:?}"
    );
    let mut thief = Client::greeted(&world.server);
    assert_eq!(
        error_code(&thief.authenticate("Alice", &stolen)),
        ErrorCode::AuthFailed
    );
    // The keyring's own new session works.
    assert_ne!(world.stored_token("Alice"), stolen);
    world.msgr("Alice").arg("read").assert().success();
}

/// A reader who pins the sender only after the rotation still opens what
/// the sender signed before it: the chain behind the pinned key says which
/// key that was.
#[test]
fn a_first_contact_after_a_rotation_opens_what_was_signed_before() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "before the rotation");
    rotate(&world, "Alice");
    world.send("Alice", "John", "after the rotation");
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("before the rotation\n") && stdout.contains("after the rotation\n"),
        "{stdout}"
    );
}

/// A server that withholds the chain cannot get a message discarded: it
/// stays queued, with the changed key reported, until the chain is served.
#[test]
fn a_message_from_a_key_the_reader_cannot_check_yet_stays_queued() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    rotate(&world, "Alice");
    world.send("Alice", "John", "signed by the new key");
    let db = world.server.database();
    db.execute_batch(
        "CREATE TABLE withheld AS SELECT * FROM key_rotations; DELETE FROM key_rotations;",
    )
    .unwrap();
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (6, ""), "{stderr}");
    assert!(stderr.contains("it stays queued"), "{stderr}");
    assert_eq!(world.queued(), 1);
    db.execute_batch("INSERT INTO key_rotations SELECT * FROM withheld;")
        .unwrap();
    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("signed by the new key"), "{stdout}");
}
