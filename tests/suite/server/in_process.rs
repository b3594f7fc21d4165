//! The server run inside the test process, on a listener bound to port 0,
//! with a clock the test moves: the handler and the connection's state
//! machine spoken to directly, and sessions that expire without waiting.

use std::sync::Arc;
use std::thread::JoinHandle;

use msgr::server::clock::ManualClock;
use msgr::server::sqlite::SqliteStore;
use msgr::server::{self, Limits, Parts, Presenting, tls};
use msgr::wire::protocol::{Base64Bytes, ErrorCode, Request, Response, unix_now};
use msgr::wire::signing;
use tempfile::TempDir;
use tokio::sync::oneshot;

use crate::common::name;
use crate::common::raw::{Client, error_code, keys, sealed};

/// A server running on its own runtime in this process; stopped (and its
/// requests in flight finished) when dropped.
struct InProcess {
    /// `127.0.0.1:PORT`.
    addr: String,
    /// The clock its sessions expire by.
    clock: Arc<ManualClock>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: TempDir,
}

impl InProcess {
    fn start(limits: Limits) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(unix_now()));
        let parts = Parts {
            tls: Presenting::new(&tls::self_signed(dir.path()).unwrap()),
            store: Arc::new(SqliteStore::open(dir.path()).unwrap()),
            limits,
            clock: clock.clone(),
            metrics: Arc::default(),
            metrics_listener: None,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound, address) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                bound.send(listener.local_addr().unwrap()).unwrap();
                server::run(listener, parts, stopped).await;
            });
        });
        Self {
            addr: address.recv().unwrap().to_string(),
            clock,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// A greeted connection with Alice and John registered.
    fn with_accounts(&self) -> Client {
        let [alice, john, _] = keys();
        let mut client = Client::connect_to(&self.addr).greet();
        client.register("Alice", alice);
        client.register("John", john);
        client
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

#[test]
fn a_session_ends_when_the_clock_passes_its_expiry() {
    let server = InProcess::start(Limits::default());
    let ttl = Limits::default().session_ttl.as_secs();
    let mut client = server.with_accounts();
    let token = client.login("Alice", &keys()[0]);
    assert!(matches!(
        client.request(&sealed("Alice", "John", b"before")),
        Response::Sent { .. }
    ));
    server.clock.advance(ttl - 1);
    assert!(matches!(
        client.request(&sealed("Alice", "John", b"just before")),
        Response::Sent { .. }
    ));
    server.clock.advance(1);
    // The connection authenticated before expiry stops acting, and the
    // token is refused on a new one.
    let refused = client.request(&sealed("Alice", "John", b"after"));
    assert_eq!(error_code(&refused), ErrorCode::AuthFailed);
    let mut fresh = Client::connect_to(&server.addr).greet();
    assert_eq!(
        error_code(&fresh.authenticate("Alice", &token)),
        ErrorCode::AuthFailed
    );
    // Logging in again starts a session that lives from the new now.
    fresh.login("Alice", &keys()[0]);
    assert!(matches!(
        fresh.request(&sealed("Alice", "John", b"again")),
        Response::Sent { .. }
    ));
}

#[test]
fn a_login_challenge_is_needed_and_is_good_for_one_answer() {
    let server = InProcess::start(Limits::default());
    let mut client = server.with_accounts();
    let without = client.request(&Request::LoginProof {
        signature: Base64Bytes(vec![0; 256]),
    });
    assert_eq!(error_code(&without), ErrorCode::BadRequest);
    // A challenge is dropped by a failed answer: answering it again with
    // the right signature is refused too.
    let Response::LoginChallenge { nonce } = client.request(&Request::Login {
        user: "Alice".into(),
    }) else {
        panic!("a challenge");
    };
    let wrong = client.request(&Request::LoginProof {
        signature: Base64Bytes(vec![0; 256]),
    });
    assert_eq!(error_code(&wrong), ErrorCode::AuthFailed);
    let digest = client.certificate_digest();
    let statement = signing::login(&digest, &name("Alice"), &nonce.0);
    let right = Request::LoginProof {
        signature: Base64Bytes(keys()[0].sign(&statement).unwrap()),
    };
    assert_eq!(error_code(&client.request(&right)), ErrorCode::BadRequest);
}
