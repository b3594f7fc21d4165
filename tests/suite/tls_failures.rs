//! What the client says when the TLS handshake fails: something that is
//! not an msgr server on the port, and each certificate `--ca-cert`
//! refuses — in words that say what is wrong and what to do, never the TLS
//! library's names for it.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

use crate::common::client::json_error;
use crate::common::{Server, msgr_bare, plain_tcp_server};

/// `msgr --server localhost:PORT --user Alice ... register` with a fresh
/// config dir in `dir`: the one command a fresh keyring can run, and it
/// connects right after making the key.
fn first_contact(dir: &Path, port: u16, extra: &[&str]) -> std::process::Output {
    msgr_bare()
        .arg("--config-dir")
        .arg(dir.join("client"))
        .args(["--server", &format!("localhost:{port}"), "--user", "Alice"])
        .args(extra)
        .args(["register", "--bits", "2048"])
        .output()
        .unwrap()
}

#[test]
fn an_http_server_on_the_port_does_not_speak_tls() {
    let dir = tempfile::tempdir().unwrap();
    let port = plain_tcp_server(b"HTTP/1.1 400 Bad Request\r\n\r\n");
    let output = first_contact(dir.path(), port, &[]);
    assert_eq!(output.status.code(), Some(3));
    assert!(output.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "msgr: the server at localhost:{port} does not speak TLS; \
             is it an msgr server? check --server\n"
        )
    );
    let output = first_contact(dir.path(), port, &["--json"]);
    let error = json_error(&output, "connection");
    assert_eq!(
        error,
        serde_json::json!({
            "level": "error",
            "code": "connection",
            "exit_status": 3,
            "message": format!("the server at localhost:{port} does not speak TLS"),
            "hint": "is it an msgr server? check --server",
        })
    );
    assert!(
        !dir.path().join("client/known_servers.toml").exists(),
        "nothing pinned"
    );
}

/// A CA (written to `dir/ca.pem`) and a certificate it issued for `names`
/// (`dir/cert.pem`, `dir/key.pem`), shaped by `leaf`.
fn issue(dir: &Path, names: &[&str], leaf: impl FnOnce(&mut CertificateParams)) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    leaf(&mut params);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// What a client given `--ca-cert ca.pem` says of a server presenting the
/// certificate `issue` makes with `names` and `leaf`, and its exit status.
fn refused_with(names: &[&str], leaf: impl FnOnce(&mut CertificateParams)) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let issued = dir.path().join("issued");
    issue(&issued, names, leaf);
    let server = Server::start_presenting(&dir.path().join("server"), &issued);
    let ca = issued.join("ca.pem");
    let output = first_contact(
        dir.path(),
        server.port,
        &["--ca-cert", ca.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.replace(&server.port.to_string(), "PORT");
    (output.status.code().unwrap_or(-1), stderr)
}

#[test]
fn a_ca_certificate_presented_as_the_servers_own_is_named_as_such() {
    let (status, stderr) = refused_with(&["localhost"], |leaf| {
        leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    });
    assert_eq!(status, 3);
    assert_eq!(
        stderr,
        "msgr: the certificate of localhost:PORT is a CA certificate, not a server \
         certificate; pass the server's own certificate with --ca-cert, or ask its operator \
         for a server certificate issued by that CA\n"
    );
}

#[test]
fn a_certificate_for_another_host_names_the_hosts_it_is_for() {
    let (status, stderr) = refused_with(&["msgr.example.org", "10.0.0.7"], |_| {});
    assert_eq!(status, 3);
    assert_eq!(
        stderr,
        "msgr: the certificate of localhost:PORT is not for localhost: it names \
         msgr.example.org, 10.0.0.7; use a name the certificate lists in --server, or ask \
         the server's operator for a certificate that names this host\n"
    );
}

#[test]
fn an_expired_certificate_says_when_it_expired() {
    let (status, stderr) = refused_with(&["localhost"], |leaf| {
        leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
        leaf.not_after = rcgen::date_time_ymd(2021, 1, 1);
    });
    assert_eq!(status, 3);
    assert_eq!(
        stderr,
        "msgr: the certificate of localhost:PORT expired at 2021-01-01T00:00:00Z; ask the \
         server's operator to renew it, or check this computer's clock\n"
    );
}
