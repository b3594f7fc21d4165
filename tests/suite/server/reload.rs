//! Certificate renewal without downtime: SIGHUP loads `--cert` and `--key`
//! again; new connections get the new certificate, open ones go on, and
//! files that fail to load leave the old certificate in place.

use std::path::Path;
use std::time::Duration;

use crate::common::Server;
use msgr::client::net::trust::{ServerPin, TrustPolicy};
use msgr::client::net::{Connection, DEFAULT_TIMEOUT, NetError, ServerAddr};
use msgr::wire::crypto::fingerprint;
use msgr::wire::protocol::{ErrorCode, Request};

/// A new self-signed certificate for localhost in `dir`; its fingerprint.
fn issue(dir: &Path) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    // Written beside and renamed into place, as a renewal tool does.
    for (name, pem) in [
        ("key.pem", made.key_pair.serialize_pem()),
        ("cert.pem", made.cert.pem()),
    ] {
        let temporary = dir.join(format!("{name}.new"));
        std::fs::write(&temporary, pem).unwrap();
        std::fs::rename(&temporary, dir.join(name)).unwrap();
    }
    fingerprint(made.cert.der())
}

/// A connection to `server`, accepting whatever it presents.
fn connect(server: &Server) -> Connection {
    let address: ServerAddr = format!("localhost:{}", server.port).parse().unwrap();
    Connection::open(
        &address,
        TrustPolicy::FirstUse { pinned: None },
        DEFAULT_TIMEOUT,
    )
    .unwrap()
}

/// The fingerprint of the certificate a new connection is shown.
fn presented(server: &Server) -> String {
    match connect(server).new_pin() {
        Some(ServerPin::Certificate(fingerprint)) => fingerprint.clone(),
        other => panic!("{other:?}"),
    }
}

/// Wait until `check` holds, for a few seconds at most.
fn soon(what: &str, check: impl Fn() -> bool) {
    crate::common::eventually(what, Duration::from_secs(10), check);
}

#[test]
fn sighup_presents_a_renewed_certificate_to_new_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let issued = dir.path().join("issued");
    let first = issue(&issued);
    let server = Server::start_presenting(&dir.path().join("server"), &issued);
    assert_eq!(presented(&server), first);
    let mut open = connect(&server);
    open.max_envelope().unwrap();

    let renewed = issue(&issued);
    server.signal("HUP");
    soon("the renewal", || presented(&server) == renewed);
    // The connection opened before goes on, under the old certificate.
    let answer = open.request(&Request::GetKey {
        user: "nobody".into(),
        claim: false,
    });
    assert!(
        matches!(
            answer,
            Err(NetError::Server {
                code: ErrorCode::UnknownUser,
                ..
            })
        ),
        "{answer:?}"
    );
    soon("the log line", || {
        server
            .log_text()
            .contains("SIGHUP: certificate reloaded for new connections")
    });

    // A broken file keeps the renewed certificate, saying why.
    std::fs::write(issued.join("cert.pem"), "not a certificate").unwrap();
    server.signal("HUP");
    soon("the refusal", || {
        server
            .log_text()
            .contains("SIGHUP: certificate not reloaded; still presenting the one before")
    });
    assert_eq!(presented(&server), renewed);
}

#[test]
fn sighup_without_operator_files_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    let before = presented(&server);
    server.signal("HUP");
    soon("the log line", || {
        server.log_text().contains("SIGHUP: nothing to reload")
    });
    assert_eq!(presented(&server), before);
    assert_eq!(before, server.fingerprint);
}
