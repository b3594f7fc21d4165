//! Key rotation: `msgr rotate` replaces the account's identity key with a
//! statement signed by both keys, which the server serves with the key. A
//! contact holding an earlier pin follows the chain by itself, with a
//! notice naming both fingerprints, and still opens what was signed or
//! sealed before; a key not chained to the pin is still refused.

use msgr::wire::crypto::PrivateKey;
use msgr::wire::protocol::{
    Base64Bytes, ErrorCode, KeyRotation, Request, Response, SignedPrekey, unix_now,
};
use msgr::wire::signing::PrekeyKind;

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
    // Another session, made with the old key (a thief's, say).
    let other_token = Client::greeted(&server).login("Alice", alice);
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
    // Every other session of the account ended with the old key.
    let mut elsewhere = Client::greeted(&server);
    assert_eq!(
        error_code(&elsewhere.authenticate("Alice", &other_token)),
        ErrorCode::AuthFailed
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
