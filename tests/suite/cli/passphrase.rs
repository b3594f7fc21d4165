//! Passphrase-protected keys: `register --passphrase` stores encrypted
//! PKCS#8; the passphrase comes from `--passphrase-file`, `MSGR_PASSPHRASE`,
//! `passphrase_file` in config.toml, or a terminal prompt; a wrong one is an
//! authentication error. Unencrypted keys keep working.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::common::World;
use crate::common::client::json_object;
use predicates::prelude::*;

fn identity(world: &World, user: &str) -> PathBuf {
    world.account_dir(user).join("identity.pem")
}

/// Alice with a key protected by "correct horse", and John.
fn protected_world() -> World {
    let world = World::new();
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "correct horse")
        .args(["register", "--bits", "2048", "--passphrase"])
        .assert()
        .success();
    world.register("John");
    world
}

#[test]
fn the_key_is_stored_as_encrypted_pkcs8_with_private_mode() {
    let world = protected_world();
    let key = identity(&world, "Alice");
    let pem = std::fs::read_to_string(&key).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"),
        "{pem}"
    );
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let whoami = world
        .msgr("Alice")
        .args(["--json", "whoami"])
        .output()
        .unwrap();
    assert_eq!(json_object(&whoami.stdout)["passphrase_protected"], true);
    // The permission check still applies.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "correct horse")
        .arg("login")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("chmod 600"));
}

#[test]
fn scripts_give_the_passphrase_by_environment_or_file() {
    let world = protected_world();
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "correct horse")
        .args(["create", "John", "from the environment"])
        .assert()
        .success();
    let file = world.dir.path().join("passphrase");
    std::fs::write(&file, "correct horse\n").unwrap();
    // A file others may read is refused, as the key it unlocks would be.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    world
        .msgr("Alice")
        .arg("--passphrase-file")
        .arg(&file)
        .args(["create", "John", "never sent"])
        .assert()
        .code(2)
        .stderr(format!(
            "msgr: the passphrase file {} is accessible by other users (mode 644); \
             run `chmod 600 {}` (and change the passphrase if others may have read it)\n",
            file.display(),
            file.display()
        ));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The flag beats the environment.
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "wrong")
        .arg("--passphrase-file")
        .arg(&file)
        .args(["create", "John", "from a file"])
        .assert()
        .success();
    // config.toml's passphrase_file, relative to the config dir.
    std::fs::copy(&file, world.config_dir("Alice").join("pass.txt")).unwrap();
    std::fs::write(
        world.config_dir("Alice").join("config.toml"),
        "passphrase_file = \"pass.txt\"\n",
    )
    .unwrap();
    world
        .msgr("Alice")
        .args(["create", "John", "from config.toml"])
        .assert()
        .success();
    // ... which the environment beats.
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "wrong")
        .args(["create", "John", "never sent"])
        .assert()
        .code(4);
    let (_, stdout, _) = world.read("John");
    for body in ["from the environment", "from a file", "from config.toml"] {
        assert!(stdout.contains(body), "{stdout}");
    }
    assert!(!stdout.contains("never sent"));
}

#[test]
fn a_wrong_or_missing_passphrase_is_an_authentication_error() {
    let world = protected_world();
    let key = identity(&world, "Alice");
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "battery staple")
        .arg("login")
        .assert()
        .code(4)
        .stdout("")
        .stderr(format!(
            "msgr: the passphrase does not unlock the private key in {}; check MSGR_PASSPHRASE or --passphrase-file, or type the passphrase again\n",
            key.display()
        ));
    world
        .msgr("Alice")
        .arg("login")
        .assert()
        .code(4)
        .stderr(
            "msgr: the private key needs a passphrase and there is no terminal to ask for it; set MSGR_PASSPHRASE or pass --passphrase-file FILE\n",
        );
    // Registering with --passphrase from a script needs a source too.
    world
        .msgr("Carol")
        .args(["register", "--bits", "2048", "--passphrase"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("set MSGR_PASSPHRASE"));
    // Commands that do not use the private key need no passphrase.
    world.msgr("Alice").args(["key", "John"]).assert().success();
    world.msgr("Alice").arg("whoami").assert().success();
}

#[test]
fn a_person_types_the_passphrase_at_the_terminal() {
    let world = World::new();
    world.register("John");
    let (ok, screen) = world.on_terminal(
        "Alice",
        &["register", "--bits", "2048", "--passphrase"],
        "s3cret\ns3cret\n",
        &[],
    );
    assert!(ok, "{screen}");
    assert!(
        screen.contains("New passphrase for the private key: "),
        "{screen}"
    );
    assert!(screen.contains("The same passphrase again: "), "{screen}");
    assert!(screen.contains("Registered Alice"), "{screen}");

    // A typo is forgiven: the prompt comes again.
    let (ok, screen) = world.on_terminal(
        "Alice",
        &["create", "John", "typed at a terminal"],
        "s3cert\ns3cret\n",
        &[],
    );
    assert!(ok, "{screen}");
    assert_eq!(screen.matches("Passphrase for ").count(), 2, "{screen}");
    assert!(screen.contains("that passphrase is wrong"), "{screen}");
    let (_, stdout, _) = world.read("John");
    assert!(stdout.contains("typed at a terminal"));

    // Typed twice differently, a new passphrase is refused.
    let (ok, screen) = world.on_terminal(
        "Carol",
        &["register", "--bits", "2048", "--passphrase"],
        "one\ntwo\n",
        &[],
    );
    assert!(!ok);
    assert!(screen.contains("the two passphrases differ"), "{screen}");
}

#[test]
fn openssl_opens_the_encrypted_key_with_the_passphrase_only() {
    let world = protected_world();
    let key = identity(&world, "Alice");
    assert_cmd::Command::new("openssl")
        .args(["pkcs8", "-passin", "pass:correct horse", "-in"])
        .arg(&key)
        .assert()
        .success()
        .stdout(predicate::str::starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert_cmd::Command::new("openssl")
        .args(["pkcs8", "-passin", "pass:battery staple", "-in"])
        .arg(&key)
        .assert()
        .failure();
}

/// The README's way to change the passphrase is `openssl pkcs8`; a key it
/// re-encrypted, with its default PBKDF2 or with scrypt, opens with the new
/// passphrase and not the old one.
#[test]
fn a_key_openssl_re_encrypted_opens_with_the_new_passphrase() {
    let world = protected_world();
    let key = identity(&world, "Alice");
    for kdf in [None, Some("-scrypt")] {
        let changed = assert_cmd::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-passin", "pass:correct horse"])
            .args(["-passout", "pass:new horse"])
            .args(kdf)
            .arg("-in")
            .arg(&key)
            .output()
            .unwrap();
        assert!(changed.status.success(), "{changed:?}");
        std::fs::write(&key, &changed.stdout).unwrap();
        world
            .msgr("Alice")
            .env("MSGR_PASSPHRASE", "correct horse")
            .arg("login")
            .assert()
            .code(4)
            .stderr(predicate::str::contains("the passphrase does not unlock"));
        world
            .msgr("Alice")
            .env("MSGR_PASSPHRASE", "new horse")
            .arg("login")
            .assert()
            .success();
        // Back to the first passphrase for the next round.
        let restored = assert_cmd::Command::new("openssl")
            .args(["pkcs8", "-topk8", "-scrypt", "-passin", "pass:new horse"])
            .args(["-passout", "pass:correct horse", "-in"])
            .arg(&key)
            .output()
            .unwrap();
        std::fs::write(&key, &restored.stdout).unwrap();
    }
}

#[test]
fn unencrypted_keys_need_no_passphrase() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    let pem = std::fs::read_to_string(identity(&world, "Alice")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    world
        .msgr("Alice")
        .env("MSGR_PASSPHRASE", "ignored")
        .args(["create", "John", "no passphrase involved"])
        .assert()
        .success();
}
