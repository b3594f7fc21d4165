//! Servers sharing one PostgreSQL database behind a TCP load balancer, as
//! an operator runs them: a [`Balancer`] that hands each new connection to
//! the next server in turn (skipping one that refuses it, as haproxy's
//! redispatch does) or to the servers a test names, and a [`Cluster`] of
//! `msgr serve` processes on one test database with clients that talk to
//! the balancer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{Server, TestDatabase, World};

/// A TCP forwarder on a free loopback port.
pub struct Balancer {
    /// The port clients connect to.
    pub port: u16,
    routes: Arc<Mutex<Routes>>,
    stopped: Arc<AtomicBool>,
}

/// Where new connections go.
struct Routes {
    /// The servers' ports, tried in turn.
    backends: Vec<u16>,
    /// The backend the next connection tries first.
    next: usize,
    /// Connections handed to each backend so far.
    handed: Vec<u64>,
}

impl Balancer {
    /// Forward to `backends`, in turn.
    pub fn start(backends: &[u16]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes = Arc::new(Mutex::new(Routes {
            backends: backends.to_vec(),
            next: 0,
            handed: vec![0; backends.len()],
        }));
        let stopped = Arc::new(AtomicBool::new(false));
        let (accepting, stop) = (Arc::clone(&routes), Arc::clone(&stopped));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if let Some(server) = connect(&accepting) {
                    forward(client, server);
                }
            }
        });
        Self {
            port,
            routes,
            stopped,
        }
    }

    /// Send new connections to backend `index` first (then the others in
    /// turn, should it refuse).
    pub fn prefer(&self, index: usize) {
        self.routes.lock().unwrap().next = index;
    }

    /// Connections handed to backend `index` so far.
    pub fn handed(&self, index: usize) -> u64 {
        self.routes.lock().unwrap().handed[index]
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A connection to the first backend, from the next in turn, that takes
/// one.
fn connect(routes: &Mutex<Routes>) -> Option<TcpStream> {
    let (order, first) = {
        let mut routes = routes.lock().unwrap();
        let first = routes.next % routes.backends.len();
        routes.next = first + 1;
        (routes.backends.clone(), first)
    };
    (0..order.len())
        .map(|step| (first + step) % order.len())
        .find_map(|index| {
            let server = TcpStream::connect(("127.0.0.1", order[index])).ok()?;
            routes.lock().unwrap().handed[index] += 1;
            Some(server)
        })
}

/// Copy both ways until either side closes.
fn forward(client: TcpStream, server: TcpStream) {
    let pairs = [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ];
    for (mut from, mut to) in pairs {
        std::thread::spawn(move || {
            let _ = pipe(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
            let _ = from.shutdown(Shutdown::Read);
        });
    }
}

fn pipe(from: &mut TcpStream, to: &mut TcpStream) -> io::Result<()> {
    let mut buffer = [0; 16 * 1024];
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..read])?;
    }
}

/// Two `msgr serve` on one test database behind a [`Balancer`]; clients
/// ([`Cluster::msgr`]) talk to the balancer.
pub struct Cluster {
    /// The clients' files, and the first server (`world.server`).
    pub world: World,
    /// The second server.
    pub second: Server,
    /// In front of both.
    pub balancer: Balancer,
}

impl Cluster {
    /// Two servers on a new database, or `None` (having said so) when the
    /// tests have no PostgreSQL and none is required.
    pub fn start(test: &str) -> Option<Self> {
        Some(Self::on(Arc::new(TestDatabase::create(test)?)))
    }

    /// Two servers on `database`.
    pub fn on(database: Arc<TestDatabase>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Every client comes from the balancer's address: the per-address
        // rate limits would count them all as one.
        let roomy = [
            "--max-logins-per-minute",
            "10000",
            "--max-registrations-per-hour",
            "10000",
        ];
        let first = Server::start_shared(&dir.path().join("first"), &database, &roomy);
        let second = Server::start_shared(&dir.path().join("second"), &database, &roomy);
        let balancer = Balancer::start(&[first.port, second.port]);
        Self {
            world: World { dir, server: first },
            second,
            balancer,
        }
    }

    /// The server `index` (0 or 1).
    pub fn node(&self, index: usize) -> &Server {
        [&self.world.server, &self.second][index]
    }

    /// `msgr` for `user`, through the balancer.
    pub fn msgr(&self, user: &str) -> assert_cmd::Command {
        self.world.msgr_at(user, self.balancer.port)
    }

    /// [`Cluster::msgr`] as a plain process.
    pub fn msgr_process(&self, user: &str) -> std::process::Command {
        self.world.msgr_process_at(user, self.balancer.port)
    }

    /// Register `user` with a 2048-bit key (fast) and assert success.
    pub fn register(&self, user: &str) {
        self.world.register_at(user, self.balancer.port);
    }
}
