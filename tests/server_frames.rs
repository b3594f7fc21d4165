//! The server on raw frames: a real `msgr serve` process, and a bare TLS
//! client (trusting any certificate) that writes requests and reads
//! responses byte for byte, without the msgr client in between.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::Server;
use msgr::crypto::{PrivateKey, fingerprint};
use msgr::envelope::{self, Header};
use msgr::protocol::{
    Base64Bytes, ErrorCode, PROTOCOL_VERSION, QueuedMessage, Request, Response,
    registration_proof_message,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use tempfile::TempDir;

/// How long a test waits for any one response.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Three 2048-bit identity keys, generated once per test binary.
fn keys() -> &'static [PrivateKey; 3] {
    static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| std::array::from_fn(|_| PrivateKey::generate(2048).unwrap()))
}

/// Accepts every certificate (the tests compare fingerprints themselves)
/// but still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A raw protocol connection.
struct Client {
    stream: StreamOwned<ClientConnection, TcpStream>,
}

impl Client {
    /// Connect and finish the TLS handshake (no `hello` yet).
    fn connect(server: &Server) -> Self {
        Self::connect_to(&server.addr)
    }

    /// Connect to `addr` (`127.0.0.1:PORT`) and finish the TLS handshake.
    fn connect_to(addr: &str) -> Self {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let tls = ClientConnection::new(client_config(), name).unwrap();
        let mut stream = StreamOwned::new(tls, tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Self { stream }
    }

    /// Connect and exchange `hello`.
    fn greeted(server: &Server) -> Self {
        let mut client = Self::connect(server);
        assert!(matches!(
            client.hello(PROTOCOL_VERSION),
            Response::Hello {
                version: PROTOCOL_VERSION,
                ..
            }
        ));
        client
    }

    fn hello(&mut self, version: u32) -> Response {
        self.request(&Request::Hello { version })
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    fn request(&mut self, request: &Request) -> Response {
        self.send_raw(&request.to_frame());
        self.response()
    }

    fn response(&mut self) -> Response {
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix).unwrap();
        let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        Response::from_payload(&payload).unwrap()
    }

    /// Whether the server has closed the connection.
    fn is_closed(&mut self) -> bool {
        matches!(self.stream.read(&mut [0; 1]), Ok(0) | Err(_))
    }

    fn register(&mut self, user: &str, key: &PrivateKey) -> Response {
        let der = key.public_key().to_der();
        let proof = key.sign(&registration_proof_message(user, &der)).unwrap();
        self.request(&Request::Register {
            user: user.into(),
            public_key: Base64Bytes(der),
            proof: Base64Bytes(proof),
        })
    }

    /// Log in and authenticate as `user`; returns the name as the server
    /// stores it.
    fn log_in(&mut self, user: &str, key: &PrivateKey) -> String {
        let response = self.request(&Request::Login { user: user.into() });
        let Response::LoginChallenge { wrapped_token, .. } = response else {
            panic!("login as {user}: {response:?}");
        };
        let token = key.unwrap(&wrapped_token.0).unwrap();
        match self.request(&Request::Authenticate {
            user: user.into(),
            token: Base64Bytes(token.to_vec()),
        }) {
            Response::Authenticated { user, .. } => user,
            other => panic!("authenticate: {other:?}"),
        }
    }

    fn fetch(&mut self) -> Vec<QueuedMessage> {
        self.fetch_waiting(0)
    }

    fn fetch_waiting(&mut self, wait_ms: u64) -> Vec<QueuedMessage> {
        match self.request(&Request::Fetch {
            after: 0,
            limit: 100,
            wait_ms,
        }) {
            Response::Messages { messages } => messages,
            other => panic!("fetch: {other:?}"),
        }
    }
}

fn start() -> (TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("server"));
    (dir, server)
}

fn error_code(response: &Response) -> ErrorCode {
    match response {
        Response::Error { code, .. } => *code,
        other => panic!("expected an error response, got {other:?}"),
    }
}

fn sealed(from: &str, to: &str, body: &[u8]) -> Request {
    let [alice, john, _] = keys();
    let (sender, recipient) = if from == "Alice" {
        (alice, john)
    } else {
        (john, alice)
    };
    let envelope = envelope::seal(
        &Header::new(from, to),
        body,
        sender,
        &recipient.public_key(),
    )
    .unwrap();
    Request::Send {
        recipient: to.into(),
        envelope: Base64Bytes(envelope),
    }
}

#[test]
fn hello_reports_version_and_limit_over_the_announced_certificate() {
    let (_dir, server) = start();
    let mut client = Client::connect(&server);
    let leaf = client.stream.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(fingerprint(leaf.as_ref()), server.fingerprint);
    assert_eq!(
        client.hello(PROTOCOL_VERSION),
        Response::Hello {
            version: PROTOCOL_VERSION,
            max_envelope: 1024 * 1024 + 4096
        }
    );
}

#[test]
fn a_wrong_version_is_refused_and_the_connection_closed() {
    let (_dir, server) = start();
    let mut client = Client::connect(&server);
    let response = client.hello(PROTOCOL_VERSION + 1);
    assert_eq!(error_code(&response), ErrorCode::UnsupportedVersion);
    assert!(client.is_closed());
}

#[test]
fn garbage_json_gets_bad_request_and_the_connection_still_answers() {
    let (_dir, server) = start();
    let mut client = Client::greeted(&server);
    client.send_raw(b"\0\0\0\x09{not json");
    assert_eq!(error_code(&client.response()), ErrorCode::BadRequest);
    let response = client.request(&Request::GetKey {
        user: "nobody".into(),
    });
    assert_eq!(error_code(&response), ErrorCode::UnknownUser);
}

#[test]
fn a_4_gib_length_closes_the_connection_but_not_the_server() {
    let (_dir, server) = start();
    let mut client = Client::greeted(&server);
    client.send_raw(&u32::MAX.to_be_bytes());
    assert_eq!(error_code(&client.response()), ErrorCode::TooLarge);
    assert!(client.is_closed());
    Client::greeted(&server);
}

#[test]
fn sending_needs_authentication() {
    let (_dir, server) = start();
    let mut client = Client::greeted(&server);
    let response = client.request(&sealed("Alice", "John", b"hi"));
    assert_eq!(error_code(&response), ErrorCode::AuthRequired);
}

#[test]
fn names_are_unique_regardless_of_case_and_retries_are_idempotent() {
    let (_dir, server) = start();
    let [alice, other, _] = keys();
    let mut client = Client::greeted(&server);
    let registered = Response::Registered {
        user: "Alice".into(),
    };
    assert_eq!(client.register("Alice", alice), registered);
    assert_eq!(
        error_code(&client.register("alice", other)),
        ErrorCode::NameTaken
    );
    assert_eq!(client.register("Alice", alice), registered);
}

#[test]
fn register_login_send_fetch_and_ack() {
    let (_dir, server) = start();
    let [alice, john, _] = keys();
    let mut sender = Client::greeted(&server);
    sender.register("Alice", alice);
    sender.register("John", john);
    sender.log_in("Alice", alice);
    let Response::Sent { id } = sender.request(&sealed("Alice", "john", b"Hello John!")) else {
        panic!("send failed");
    };

    let mut reader = Client::greeted(&server);
    assert_eq!(reader.log_in("john", john), "John");
    let messages = reader.fetch();
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].id, messages[0].sender.as_str()), (id, "Alice"));
    let parsed = envelope::parse(&messages[0].envelope.0).unwrap();
    let body = parsed.open("John", john, &alice.public_key()).unwrap();
    assert_eq!(body, b"Hello John!");

    // Alice cannot acknowledge John's mail away; John can.
    let acked = |client: &mut Client| client.request(&Request::Ack { ids: vec![id] });
    assert_eq!(acked(&mut sender), Response::Acked { count: 0 });
    assert_eq!(acked(&mut reader), Response::Acked { count: 1 });
    assert!(reader.fetch().is_empty());
}

#[test]
fn a_waiting_fetch_returns_when_a_message_is_stored() {
    let (_dir, server) = start();
    let [alice, john, _] = keys();
    let mut reader = Client::greeted(&server);
    reader.register("Alice", alice);
    reader.register("John", john);
    reader.log_in("John", john);

    let started = std::time::Instant::now();
    assert!(
        reader.fetch_waiting(300).is_empty(),
        "an empty queue times out"
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    let sender_server = server.addr.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let mut sender = Client::connect_to(&sender_server);
        sender.hello(PROTOCOL_VERSION);
        sender.log_in("Alice", &keys()[0]);
        sender.request(&sealed("Alice", "John", b"wake up"))
    });
    let started = std::time::Instant::now();
    let messages = reader.fetch_waiting(20_000);
    assert_eq!(messages.len(), 1, "woken by the new message");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "no polling delay"
    );
    assert!(matches!(sender.join().unwrap(), Response::Sent { .. }));
}

#[test]
fn logout_ends_the_session_for_good() {
    let (_dir, server) = start();
    let [alice, ..] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    let Response::LoginChallenge { wrapped_token, .. } = client.request(&Request::Login {
        user: "Alice".into(),
    }) else {
        panic!("login failed");
    };
    let token = Base64Bytes(alice.unwrap(&wrapped_token.0).unwrap().to_vec());
    let authenticate = Request::Authenticate {
        user: "Alice".into(),
        token,
    };
    assert!(matches!(
        client.request(&authenticate),
        Response::Authenticated { .. }
    ));
    assert_eq!(client.request(&Request::Logout), Response::LoggedOut);
    assert_eq!(
        error_code(&client.request(&Request::Logout)),
        ErrorCode::AuthRequired
    );
    assert_eq!(
        error_code(&client.request(&authenticate)),
        ErrorCode::AuthFailed
    );
}

#[test]
fn an_envelope_must_name_the_authenticated_sender() {
    let (_dir, server) = start();
    let [alice, john, _] = keys();
    let mut client = Client::greeted(&server);
    client.register("Alice", alice);
    client.register("John", john);
    client.log_in("Alice", alice);
    let response = client.request(&sealed("John", "Alice", b"forged"));
    assert_eq!(error_code(&response), ErrorCode::BadRequest);
}

#[test]
fn sigterm_exits_cleanly_and_keeps_queued_messages() {
    let (_dir, mut server) = start();
    let [alice, john, _] = keys();
    let mut idle = Client::greeted(&server);
    idle.register("Alice", alice);
    idle.register("John", john);
    idle.log_in("Alice", alice);
    assert!(matches!(
        idle.request(&sealed("Alice", "John", b"kept")),
        Response::Sent { .. }
    ));

    // An idle connection must not hold the shutdown up.
    let status = server.signal_and_wait("TERM");
    assert!(status.success(), "exit status {status}");
    assert!(server.log_text().contains("shut down cleanly"));
    assert!(idle.is_closed());
    // Closed cleanly: the write-ahead log was checkpointed and removed.
    assert!(!server.data_dir.join("msgr.db-wal").exists());
    let integrity: String = server
        .database()
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    let server = Server::start(&server.data_dir);
    let mut reader = Client::greeted(&server);
    reader.log_in("John", john);
    assert_eq!(reader.fetch().len(), 1);
}
