//! What the client refuses: a changed server certificate, a changed
//! contact key, and envelopes tampered with on the server.

use crate::common::{Server, World};
use predicates::prelude::*;

#[test]
fn a_changed_server_certificate_is_refused_with_both_fingerprints() {
    let mut world = World::new();
    world.register("Alice");
    let old = world.server.fingerprint.clone();
    let port = world.server.port;
    world.server.signal_and_wait("TERM");
    // Another server (a new certificate) now answers on the same address.
    world.server = Server::start_with(&world.dir.path().join("impostor"), port, &[]);
    let new = world.server.fingerprint.clone();
    assert_ne!(old, new);

    world
        .msgr("Alice")
        .arg("read")
        .assert()
        .code(6)
        .stdout("")
        .stderr(predicate::str::contains("fingerprint"))
        .stderr(predicate::str::contains(&old))
        .stderr(predicate::str::contains(&new))
        .stderr(predicate::str::contains("known_servers.toml"));
}

#[test]
fn ca_cert_option_trusts_the_given_certificate_without_pinning() {
    let world = World::new();
    let cert = world.dir.path().join("server.pem");
    std::fs::write(&cert, world.server.certificate_pem().0).unwrap();
    world
        .msgr("Alice")
        .arg("--ca-cert")
        .arg(&cert)
        .args(["register", "--bits", "2048"])
        .assert()
        .success()
        .stderr(predicate::str::contains("pinned").not());
    assert!(
        !world
            .config_dir("Alice")
            .join("known_servers.toml")
            .exists()
    );

    // A certificate that is not the server's is a TLS failure.
    let other = tempfile::tempdir().unwrap();
    let other_server = Server::start(other.path());
    let other_cert = other.path().join("other.pem");
    std::fs::write(&other_cert, other_server.certificate_pem().0).unwrap();
    world
        .msgr("Alice")
        .arg("--ca-cert")
        .arg(&other_cert)
        .arg("login")
        .assert()
        .code(3)
        .stderr(format!(
            "msgr: the certificate of localhost:{} was not issued by a certificate in the \
             --ca-cert file; check that --ca-cert holds the CA that issued the server's \
             certificate, or that certificate itself, and that --server is right\n",
            world.server.port
        ));
}

/// The fingerprint `msgr key NAME` prints for `name`, as `user` sees it.
fn fingerprint_of(world: &World, user: &str, name: &str) -> String {
    let output = world.msgr(user).args(["key", name]).output().unwrap();
    assert!(output.status.success());
    let line = String::from_utf8(output.stdout).unwrap();
    line.trim_end().rsplit_once(' ').unwrap().1.to_owned()
}

#[test]
fn a_changed_contact_key_is_refused_until_replaced_deliberately() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    let john = fingerprint_of(&world, "Alice", "John");
    let carol = fingerprint_of(&world, "Alice", "Carol");
    // A message sent before leaves a one-time prekey of John's kept for the
    // next, which that is sealed to while connecting: it is not sent.
    world.send("Alice", "John", "before");
    // The server starts handing out Carol's key as John's (and no prekey,
    // as Carol's prekey is signed as hers, not John's).
    world
        .server
        .database()
        .execute_batch(
            "UPDATE users SET public_key = (SELECT public_key FROM users WHERE name = 'Carol') WHERE name = 'John';
             DELETE FROM signed_prekeys WHERE user_id = (SELECT id FROM users WHERE name = 'John');",
        )
        .unwrap();

    for args in [
        &["create", "John", "for John only"][..],
        &["key", "John"][..],
    ] {
        world
            .msgr("Alice")
            .args(args)
            .assert()
            .code(6)
            .stderr(predicate::str::contains(&john))
            .stderr(predicate::str::contains(&carol))
            .stderr(predicate::str::contains(
                "msgr key John --expect FINGERPRINT",
            ));
    }
    let queued: i64 = world
        .server
        .database()
        .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(queued, 1, "nothing was sent after the key was substituted");

    // Accepting a fingerprint other than the one offered changes nothing.
    world
        .msgr("Alice")
        .args(["key", "John", "--expect", &john])
        .assert()
        .code(6)
        .stderr(format!(
            "msgr: the server offers the key {carol} for John, not the expected {john}; nothing was pinned; \
             check the fingerprint with John again; if it is right, the server is not handing out John's key\n"
        ));
    world
        .msgr("Alice")
        .args(["key", "John", "--expect", &carol])
        .assert()
        .success()
        .stdout(format!("John {carol}\n"));
}

#[test]
fn a_tampered_envelope_is_refused_and_never_printed() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "the secret plan");
    world.send("Alice", "John", "an honest note");
    let db = world.server.database();
    let (id, mut envelope): (i64, Vec<u8>) = db
        .query_row(
            "SELECT id, envelope FROM messages ORDER BY id LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let middle = envelope.len() / 2;
    envelope[middle] ^= 0x40;
    db.execute(
        "UPDATE messages SET envelope = ?1 WHERE id = ?2",
        rusqlite::params![envelope, id],
    )
    .unwrap();

    let (code, stdout, stderr) = world.read("John");
    assert_eq!(code, 6, "stderr: {stderr}");
    assert!(!stdout.contains("secret plan"), "tampered message printed");
    assert!(
        stdout.contains("an honest note"),
        "the queue was not blocked"
    );
    // Kept, not lost: saved in rejected/ with the envelope and the reason.
    let rejected = world.account_dir("John").join("rejected");
    let saved: Vec<_> = std::fs::read_dir(&rejected)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1, "{stderr}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&saved[0]).unwrap()).unwrap();
    assert_eq!(record["sender"], "Alice");
    let engine = base64::engine::general_purpose::STANDARD;
    let kept = base64::Engine::decode(&engine, record["envelope"].as_str().unwrap()).unwrap();
    assert_eq!(kept, envelope);
    assert!(
        stderr.contains(&format!(
            " failed verification: {}; it was saved as {}; once the cause is fixed, `msgr read --retry-rejected` opens it again\n",
            record["reason"].as_str().unwrap(),
            saved[0].display()
        )),
        "{stderr}"
    );

    // `read` does not wait for the answer to its last acknowledgement.
    world.assert_queued_soon(0);
    let (code, stdout, _) = world.read("John");
    assert_eq!(
        (code, stdout.as_str()),
        (0, ""),
        "the bad message was acknowledged"
    );
}

#[test]
fn a_message_moved_to_another_recipient_is_refused() {
    // It tampers with the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    for user in ["Alice", "John", "Carol"] {
        world.register(user);
    }
    world.send("Alice", "John", "for John");
    // The server re-queues John's envelope for Carol.
    world
        .server
        .database()
        .execute(
            "UPDATE messages SET recipient_id = (SELECT id FROM users WHERE name = 'Carol')",
            [],
        )
        .unwrap();
    let (code, stdout, stderr) = world.read("Carol");
    assert_eq!(code, 6);
    assert!(!stdout.contains("for John"));
    assert!(stderr.contains("addressed to John"), "{stderr}");
}

#[test]
fn serve_uses_a_certificate_made_with_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("server_cert.pem"),
        dir.path().join("server_key.pem"),
    );
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let cert_arg = cert.to_str().unwrap();
    let key_arg = key.to_str().unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        0,
        &["--cert", cert_arg, "--key", key_arg],
    );
    // The announced fingerprint is that of the given certificate.
    let der = std::process::Command::new("openssl")
        .args(["x509", "-outform", "der", "-in", cert_arg])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(server.fingerprint, msgr::wire::crypto::fingerprint(&der));
    assert!(
        !server.data_dir.join("cert.pem").exists(),
        "no certificate was generated"
    );

    crate::common::msgr_bare()
        .arg("--config-dir")
        .arg(dir.path().join("client"))
        .args([
            "--server",
            &format!("localhost:{}", server.port),
            "--user",
            "Alice",
        ])
        .args(["--ca-cert", cert_arg, "register", "--bits", "2048"])
        .assert()
        .success()
        .stderr(predicate::str::contains("pinned").not());
}

/// A certificate for `localhost` issued by a CA of its own: written to
/// `dir` as `ca.pem`, `cert.pem` and `key.pem`.
fn issue_certificate(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

// Over 60 lines: one server restarted under a CA-signed certificate,
// seen by a pinned client and a system-roots client in turn.
#[test]
fn a_pinned_certificate_binds_even_against_one_the_system_roots_trust() {
    let dir = tempfile::tempdir().unwrap();
    let issued = dir.path().join("issued");
    issue_certificate(&issued);
    let server = Server::start_presenting(&dir.path().join("server"), &issued);
    let port = server.port;
    let world = World { dir, server };
    // The test CA stands in for the system's roots.
    let with_roots = |user: &str| {
        let mut command = world.msgr(user);
        command.env("SSL_CERT_FILE", issued.join("ca.pem"));
        command
    };
    // Without a pin, a certificate the roots vouch for is trusted, and that
    // they vouch for the server is what is pinned.
    with_roots("Alice")
        .args(["register", "--bits", "2048"])
        .assert()
        .success()
        .stderr(predicate::str::contains("pinned").not());
    let known = world.config_dir("Alice").join("known_servers.toml");
    assert_eq!(
        std::fs::read_to_string(&known).unwrap(),
        format!("\"localhost:{port}\" = \"system-roots\"\n")
    );
    // So a certificate they do not vouch for (here: the same one, with the
    // roots gone) is refused later, not pinned on sight.
    world
        .msgr("Alice")
        .arg("login")
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!(
            "the certificate of localhost:{port} does not match the pinned one: pinned: one the system's roots vouch for, presented fingerprint {}",
            world.server.fingerprint
        )));

    // With a pin (another certificate seen here before), the pin binds.
    let pinned = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    std::fs::write(
        world.config_dir("Alice").join("known_servers.toml"),
        format!("\"localhost:{port}\" = \"{pinned}\"\n"),
    )
    .unwrap();
    with_roots("Alice")
        .arg("login")
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!(
            "the certificate of localhost:{port} does not match the pinned one: pinned fingerprint {pinned}, presented fingerprint {}",
            world.server.fingerprint
        )));
}

#[test]
fn an_account_from_before_prekeys_publishes_one_on_its_next_command() {
    // It deletes prekeys in the SQLite file.
    crate::common::sqlite_only();
    let world = World::new();
    world.register("Alice");
    world.register("John");
    // John's account as it was before prekeys: none on either side.
    std::fs::remove_file(world.account_dir("John").join("prekeys.toml")).unwrap();
    let database = world.server.database();
    database.execute("DELETE FROM signed_prekeys", []).unwrap();
    database
        .execute("DELETE FROM one_time_prekeys", [])
        .unwrap();
    world
        .msgr("Alice")
        .args(["create", "John", "too early"])
        .assert()
        .code(7)
        .stdout("")
        .stderr(predicate::str::contains(
            "msgr: John has not published an encryption key on this server yet, so nothing was sent",
        ));
    assert_eq!(world.queued(), 0);
    // Any command of John's that logs in publishes one.
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (0, ""), "{stderr}");
    world.send("Alice", "John", "now it works");
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("\n\n    now it works\n"), "{stdout}");
}

#[test]
fn the_explicit_pin_policy_leaves_messages_from_unpinned_senders_queued() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.send("Alice", "John", "from someone John never pinned");
    std::fs::write(
        world.config_dir("John").join("config.toml"),
        "pin_policy = \"explicit\"\n",
    )
    .unwrap();
    world
        .msgr("John")
        .arg("read")
        .assert()
        .code(6)
        .stdout("")
        .stderr(predicate::str::contains(
            "Alice's key is not pinned, and the pin policy is explicit; pin it with `msgr key Alice`",
        ))
        .stderr(predicate::str::contains("it stays queued"));
    assert_eq!(world.queued(), 1);
    world.msgr("John").args(["key", "Alice"]).assert().success();
    let (code, stdout, _) = world.read("John");
    assert_eq!(code, 0);
    assert!(stdout.contains("from someone John never pinned"));
}

#[test]
fn a_rejected_message_opens_again_once_the_cause_is_fixed() {
    let world = World::new();
    world.register("Alice");
    world.register("John");
    world.msgr("John").args(["key", "Alice"]).assert().success();
    world.send("Alice", "John", "sealed to a prekey John's keyring lost");
    // John's keyring loses the private halves of its prekeys (a backup
    // restored without them): the message cannot be opened.
    let prekeys = world.account_dir("John").join("prekeys.toml");
    let backup = prekeys.with_extension("bak");
    std::fs::rename(&prekeys, &backup).unwrap();
    let (code, stdout, stderr) = world.read("John");
    assert_eq!((code, stdout.as_str()), (6, ""), "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
    world.assert_queued_soon(0);
    let rejected = world.account_dir("John").join("rejected");
    assert_eq!(std::fs::read_dir(&rejected).unwrap().count(), 1);

    // Tried again while the cause remains, it stays where it is.
    let output = world
        .msgr("John")
        .args(["read", "--retry-rejected"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("; it stays in "), "{stderr}");
    assert_eq!(std::fs::read_dir(&rejected).unwrap().count(), 1);

    // The prekeys restored, it opens, is shown once and is forgotten.
    std::fs::rename(&backup, &prekeys).unwrap();
    world
        .msgr("John")
        .args(["read", "--retry-rejected"])
        .assert()
        .success()
        .stdout(predicate::str::contains("From: Alice\n"))
        .stdout(predicate::str::contains(
            "    sealed to a prekey John's keyring lost\n",
        ));
    assert_eq!(std::fs::read_dir(&rejected).unwrap().count(), 0);
    world
        .msgr("John")
        .args(["read", "--retry-rejected"])
        .assert()
        .success()
        .stdout("");
}
