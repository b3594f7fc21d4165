//! A bare protocol client for server tests: real TLS 1.3 (trusting any
//! certificate; tests compare fingerprints themselves), then requests and
//! responses written and read byte for byte, without the msgr client in
//! between, so tests can send exactly what a hostile peer would.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use msgr::wire::crypto::agreement::AgreementSecret;
use msgr::wire::crypto::{PrivateKey, sha256};
use msgr::wire::envelope::{self, Header, RecipientPrekey, RecipientPrekeys};
use msgr::wire::protocol::{
    Base64Bytes, ErrorCode, PROTOCOL_VERSION, QueuedMessage, Request, Response, SignedPrekey,
};
use msgr::wire::signing::{self, CertificateDigest, PrekeyKind};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

use super::Server;

/// How long a test waits for any one response.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Three 2048-bit identity keys (Alice, John, spare), generated once per
/// test run.
pub fn keys() -> &'static [PrivateKey; 3] {
    static KEYS: OnceLock<[PrivateKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| std::array::from_fn(|_| PrivateKey::generate(2048).unwrap()))
}

/// The signed prekeys (number 1) of the three [`keys`], in the same order.
pub fn prekeys() -> &'static [AgreementSecret; 3] {
    static PREKEYS: OnceLock<[AgreementSecret; 3]> = OnceLock::new();
    PREKEYS.get_or_init(|| std::array::from_fn(|_| AgreementSecret::generate().unwrap()))
}

/// The signed prekey of `keys()[index]` as a sender addresses it (raw
/// clients publish no one-time prekeys).
pub fn recipient_prekey(index: usize) -> RecipientPrekeys {
    RecipientPrekeys {
        signed: RecipientPrekey {
            id: 1,
            public_key: prekeys()[index].public_key().unwrap(),
        },
        one_time: None,
    }
}

/// `user`'s signed prekey number 1 made with `keys()[index]`.
pub fn signed_prekey(user: &str, index: usize) -> SignedPrekey {
    SignedPrekey::sign(
        PrekeyKind::Signed,
        &super::name(user),
        1,
        1_700_000_000,
        &prekeys()[index],
        &keys()[index],
    )
    .unwrap()
}

/// Accepts every certificate but still checks handshake signatures.
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

/// TLS 1.3 client settings that accept any server certificate.
pub fn client_config() -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
        .with_no_client_auth();
    Arc::new(config)
}

/// A fresh TLS client session for `localhost`.
pub fn tls_session() -> ClientConnection {
    ClientConnection::new(client_config(), ServerName::try_from("localhost").unwrap()).unwrap()
}

/// A TCP connection to `addr` from the loopback address `source` (such as
/// 127.0.0.2), so tests can act as several source addresses.
pub fn tcp_from(source: IpAddr, addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(source, 0)).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// A raw protocol connection.
pub struct Client {
    /// The TLS stream.
    pub stream: StreamOwned<ClientConnection, TcpStream>,
}

impl Client {
    /// Connect and finish the TLS handshake (no `hello` yet).
    pub fn connect(server: &Server) -> Self {
        Self::connect_to(&server.addr)
    }

    /// Connect to `addr` (`127.0.0.1:PORT`) and finish the TLS handshake.
    pub fn connect_to(addr: &str) -> Self {
        Self::over(TcpStream::connect(addr).unwrap())
    }

    /// Finish the TLS handshake over `tcp`.
    pub fn over(tcp: TcpStream) -> Self {
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let mut stream = StreamOwned::new(tls_session(), tcp);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Self { stream }
    }

    /// Connect and exchange `hello`.
    pub fn greeted(server: &Server) -> Self {
        Self::connect(server).greet()
    }

    /// Exchange `hello` on this connection and assert it succeeded.
    pub fn greet(mut self) -> Self {
        let response = self.hello(PROTOCOL_VERSION);
        assert!(
            matches!(
                response,
                Response::Hello {
                    version: PROTOCOL_VERSION,
                    ..
                }
            ),
            "hello: {response:?}"
        );
        self
    }

    /// Send `hello` with `version`.
    pub fn hello(&mut self, version: u32) -> Response {
        self.request(&Request::Hello { version })
    }

    /// Write bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Send one request and read its response.
    pub fn request(&mut self, request: &Request) -> Response {
        self.send_raw(&request.to_frame());
        self.response()
    }

    /// Write `requests` in one go, without waiting for any response, then
    /// read their responses.
    pub fn pipeline(&mut self, requests: &[Request]) -> Vec<Response> {
        let frames: Vec<u8> = requests.iter().flat_map(Request::to_frame).collect();
        self.send_raw(&frames);
        requests.iter().map(|_| self.response()).collect()
    }

    /// Read one response frame.
    pub fn response(&mut self) -> Response {
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix).unwrap();
        let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        Response::from_payload(&payload).unwrap()
    }

    /// Whether the server sends nothing for `wait` (a read of one byte
    /// times out); reads wait [`READ_TIMEOUT`] again afterwards.
    pub fn stays_silent_for(&mut self, wait: Duration) -> bool {
        self.stream.sock.set_read_timeout(Some(wait)).unwrap();
        let silent = self.stream.read(&mut [0; 1]).is_err();
        self.stream
            .sock
            .set_read_timeout(Some(READ_TIMEOUT))
            .unwrap();
        silent
    }

    /// Whether the server has closed the connection (waiting up to
    /// [`READ_TIMEOUT`] for it to happen).
    pub fn is_closed(&mut self) -> bool {
        matches!(self.stream.read(&mut [0; 1]), Ok(0) | Err(_))
    }

    /// SHA-256 of the certificate the server presented.
    pub fn certificate_digest(&self) -> CertificateDigest {
        sha256(self.stream.conn.peer_certificates().unwrap()[0].as_ref())
    }

    /// Register `user` with `key` (one of [`keys`], whose prekey goes with
    /// it), with a valid proof.
    pub fn register(&mut self, user: &str, key: &PrivateKey) -> Response {
        let index = keys()
            .iter()
            .position(|k| std::ptr::eq(k, key))
            .expect("one of keys()");
        let der = key.public_key().to_der();
        let statement = signing::registration(&self.certificate_digest(), &super::name(user), &der);
        self.request(&Request::Register {
            user: user.into(),
            public_key: Base64Bytes(der),
            signed_prekey: signed_prekey(user, index),
            one_time_prekeys: Vec::new(),
            proof: Base64Bytes(key.sign(&statement).unwrap()),
        })
    }

    /// Log in as `user`, answering the challenge with `key`; the
    /// connection acts for `user` afterwards. Returns the name as the
    /// server stores it and the new token.
    pub fn login_as(&mut self, user: &str, key: &PrivateKey) -> (String, Base64Bytes) {
        let response = self.request(&Request::Login { user: user.into() });
        let Response::LoginChallenge { nonce } = response else {
            panic!("login as {user}: {response:?}");
        };
        let statement = signing::login(&self.certificate_digest(), &super::name(user), &nonce.0);
        let signature = Base64Bytes(key.sign(&statement).unwrap());
        match self.request(&Request::LoginProof { signature }) {
            Response::LoggedIn { user, token, .. } => (user, token),
            other => panic!("login proof as {user}: {other:?}"),
        }
    }

    /// Log in as `user` with `key`; returns the new token.
    pub fn login(&mut self, user: &str, key: &PrivateKey) -> Base64Bytes {
        self.login_as(user, key).1
    }

    /// Present `token` for `user`.
    pub fn authenticate(&mut self, user: &str, token: &Base64Bytes) -> Response {
        self.request(&Request::Authenticate {
            user: user.into(),
            token: token.clone(),
        })
    }

    /// Present `token` for `user` and assert that the server took it.
    pub fn assert_authenticated(&mut self, user: &str, token: &Base64Bytes) {
        let answer = self.authenticate(user, token);
        assert!(
            matches!(answer, Response::Authenticated { .. }),
            "{answer:?}"
        );
    }

    /// Log in as `user`; returns the name as the server stores it.
    pub fn log_in(&mut self, user: &str, key: &PrivateKey) -> String {
        self.login_as(user, key).0
    }

    /// Fetch until the server refuses this connection's session as ended
    /// (within ten seconds).
    pub fn assert_session_ends(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match self.request(&Request::Fetch {
                after: 0,
                limit: 1,
                wait_ms: 0,
            }) {
                Response::Messages { .. } => {}
                Response::Error { code, .. } => {
                    assert_eq!(code, ErrorCode::AuthFailed);
                    return;
                }
                other => panic!("{other:?}"),
            }
            assert!(std::time::Instant::now() < deadline, "the session went on");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Fetch the first page of the queue without waiting.
    pub fn fetch(&mut self) -> Vec<QueuedMessage> {
        self.fetch_waiting(0)
    }

    /// Fetch the first page, waiting up to `wait_ms` for a message.
    pub fn fetch_waiting(&mut self, wait_ms: u64) -> Vec<QueuedMessage> {
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

/// The code of an error response; panics on any other response.
pub fn error_code(response: &Response) -> ErrorCode {
    match response {
        Response::Error { code, .. } => *code,
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// A `send` of `body` sealed between Alice (`keys()[0]`) and John
/// (`keys()[1]`), in the direction `from` → `to`.
pub fn sealed(from: &str, to: &str, body: &[u8]) -> Request {
    let (sender, recipient) = if from == "Alice" { (0, 1) } else { (1, 0) };
    let envelope = envelope::seal(
        &Header::new(&super::name(from), &super::name(to)),
        body,
        &keys()[sender],
        &recipient_prekey(recipient),
    )
    .unwrap();
    send(to, &envelope)
}

/// A `send` of `envelope` (any bytes) to `recipient`.
pub fn send(recipient: &str, envelope: &[u8]) -> Request {
    Request::Send {
        recipient: recipient.into(),
        envelope: Base64Bytes(envelope.to_vec()),
    }
}

/// Register Alice and John (`keys()[0]` and `[1]`) on `server`, and return
/// a connection authenticated as `who`.
pub fn signed_in(server: &Server, who: &str) -> Client {
    let [alice, john, _] = keys();
    let mut client = Client::greeted(server);
    client.register("Alice", alice);
    client.register("John", john);
    let key = if who == "Alice" { alice } else { john };
    client.log_in(who, key);
    client
}
