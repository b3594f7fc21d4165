//! A malicious operator in front of a real server: a TLS proxy that holds
//! the server's own certificate and key (so clients see no warning),
//! forwards every request to the real `msgr serve`, records it, and lets
//! the test rewrite each response before the client sees it. Tests run the
//! real client against the proxy and check what it reveals, seals, pins
//! and prints.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use msgr::wire::protocol::{Request, Response, encode_frame};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Server;
use super::raw::Client;

/// Turns the real server's answer to a request into the one the client
/// gets.
pub type Rewrite = dyn Fn(&Request, Response) -> Response + Send + Sync;

/// The proxy; it stops accepting when dropped (open connections end with
/// their client).
pub struct Mitm {
    /// The port clients connect to.
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Mitm {
    /// Listen on a free loopback port in front of `server`, answering with
    /// `rewrite` applied to each response.
    pub fn start(
        server: &Server,
        rewrite: impl Fn(&Request, Response) -> Response + Send + Sync + 'static,
    ) -> Self {
        let tls = server_config(server);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let rewrite: Arc<Rewrite> = Arc::new(rewrite);
        let upstream = server.addr.clone();
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { return };
                let (tls, rewrite, log, upstream) = (
                    Arc::clone(&tls),
                    Arc::clone(&rewrite),
                    Arc::clone(&log),
                    upstream.clone(),
                );
                std::thread::spawn(move || relay(socket, tls, &upstream, &*rewrite, &log));
            }
        });
        Self { port, requests }
    }

    /// Every request clients sent so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

/// The real server's certificate and key, as the operator holds them.
fn server_config(server: &Server) -> Arc<ServerConfig> {
    let (cert, key) = server.certificate_pem();
    let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

/// Serve one client: each request goes to the real server; its answer,
/// rewritten, comes back.
fn relay(
    socket: TcpStream,
    tls: Arc<ServerConfig>,
    upstream: &str,
    rewrite: &Rewrite,
    log: &Mutex<Vec<Request>>,
) {
    let mut client = StreamOwned::new(ServerConnection::new(tls).unwrap(), socket);
    let mut server = Client::connect_to(upstream);
    while let Some(payload) = read_frame(&mut client) {
        let Ok(request) = Request::from_payload(&payload) else {
            return;
        };
        log.lock().unwrap().push(request.clone());
        let response = server.request(&request);
        let mut frame = Vec::new();
        let answer = serde_json::to_vec(&rewrite(&request, response)).unwrap();
        encode_frame(&answer, &mut frame);
        if client
            .write_all(&frame)
            .and_then(|()| client.flush())
            .is_err()
        {
            return;
        }
    }
}

fn read_frame(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).ok()?;
    let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut payload).ok()?;
    Some(payload)
}
