//! Shared helpers for the tests: a real `msgr serve` on a free loopback
//! port with its own data dir — or, with `MSGR_TEST_BACKEND=postgres`, its
//! own PostgreSQL database (see [`sqlite_only`]) — and a command builder
//! that runs the real client with its own config dir and nothing from the
//! environment; the raw protocol client (`raw`), the malicious-server
//! proxy (`mitm`), the client-side helpers (`client`) and servers sharing
//! one database behind a load balancer (`cluster`) are submodules.

pub mod client;
pub mod cluster;
pub mod mitm;
pub mod raw;
pub mod snapshot;

use std::cell::Cell;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::cargo_bin;
use tempfile::TempDir;

pub use msgr::server::postgres::testing::TestDatabase;

/// Set to `postgres` to run every test server on a PostgreSQL database of
/// its own (made on the server of `MSGR_TEST_DATABASE_URL`) instead of
/// SQLite, but for the tests that call [`sqlite_only`].
const BACKEND_VARIABLE: &str = "MSGR_TEST_BACKEND";

thread_local! {
    /// Whether this test's servers must use SQLite whatever the backend.
    static SQLITE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// This test's servers use SQLite whatever [`BACKEND_VARIABLE`] says: it
/// looks at the data directory or opens the SQLite file.
pub fn sqlite_only() {
    SQLITE_ONLY.set(true);
}

/// A PostgreSQL database for a new test server, if the servers of this
/// test run on PostgreSQL.
fn backend_database() -> Option<Arc<TestDatabase>> {
    let backend = std::env::var(BACKEND_VARIABLE).unwrap_or_default();
    if SQLITE_ONLY.get() || backend.is_empty() || backend == "sqlite" {
        return None;
    }
    assert_eq!(
        backend, "postgres",
        "{BACKEND_VARIABLE} is sqlite or postgres"
    );
    let test = std::thread::current().name().unwrap_or("server").to_owned();
    let database = TestDatabase::create(&test)
        .unwrap_or_else(|| panic!("{BACKEND_VARIABLE}=postgres needs MSGR_TEST_DATABASE_URL"));
    Some(Arc::new(database))
}

/// A running `msgr serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// Kept open so the server never writes to a closed pipe; the lines
    /// after the fingerprint are read by [`Server::next_line`].
    stdout: BufReader<ChildStdout>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The bound port.
    pub port: u16,
    /// The certificate fingerprint the server printed.
    pub fingerprint: String,
    /// The data dir (database and certificate), unless it runs on
    /// [`Server::database`]; its log goes beside it either way.
    pub data_dir: PathBuf,
    /// The PostgreSQL database it runs on, if not on SQLite.
    pub database: Option<Arc<TestDatabase>>,
    /// The `serve` arguments it was started with after the port.
    args: Vec<OsString>,
    /// Where the server's stderr (its log) goes.
    pub log: PathBuf,
}

impl Server {
    /// Start a server on a free port with `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, 0, &[])
    }

    /// Start a server on `port` (0 for a free one) with extra arguments.
    pub fn start_with(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        Self::start_logging(data_dir, port, extra, "debug")
    }

    /// Start a server on a free port presenting the certificate and key
    /// in `issued` (`cert.pem`, `key.pem`) instead of making its own.
    pub fn start_presenting(data_dir: &Path, issued: &Path) -> Self {
        let (cert, key) = (issued.join("cert.pem"), issued.join("key.pem"));
        let paths = [cert.to_str().unwrap(), key.to_str().unwrap()];
        Self::start_with(data_dir, 0, &["--cert", paths[0], "--key", paths[1]])
    }

    /// Start a server like [`Server::start_with`], logging with the
    /// `RUST_LOG` filter `log_filter`.
    pub fn start_logging(data_dir: &Path, port: u16, extra: &[&str], log_filter: &str) -> Self {
        Self::start_bound(data_dir, "127.0.0.1", port, extra, log_filter).0
    }

    /// Start a server on `--bind BIND`; also returns every address it
    /// announced (the first is [`Server::addr`]).
    pub fn start_bound(
        data_dir: &Path,
        bind: &str,
        port: u16,
        extra: &[&str],
        log_filter: &str,
    ) -> (Self, Vec<String>) {
        let mut args: Vec<OsString> = vec!["--bind".into(), bind.into()];
        let database = backend_database();
        match &database {
            Some(database) => args.extend(["--database".into(), database.url("postgresql").into()]),
            None => args.extend(["--data-dir".into(), data_dir.into()]),
        }
        args.extend(extra.iter().map(OsString::from));
        Self::spawn(data_dir, database, port, args, log_filter)
    }

    /// Start a server on `database`, which other servers may share, with
    /// its log beside `log_dir`.
    pub fn start_shared(log_dir: &Path, database: &Arc<TestDatabase>, extra: &[&str]) -> Self {
        Self::start_shared_on(log_dir, database, 0, extra)
    }

    /// [`Server::start_shared`] on `port` (0 for a free one).
    pub fn start_shared_on(
        log_dir: &Path,
        database: &Arc<TestDatabase>,
        port: u16,
        extra: &[&str],
    ) -> Self {
        let url = database.url("postgresql");
        Self::start_on_url(log_dir, database, url, port, extra)
    }

    /// [`Server::start_shared`] with `setting` (libpq's `name=value`)
    /// added to the database URL.
    pub fn start_shared_with(log_dir: &Path, database: &Arc<TestDatabase>, setting: &str) -> Self {
        let url = database.url("postgresql");
        let joint = if url.contains('?') { '&' } else { '?' };
        Self::start_on_url(log_dir, database, format!("{url}{joint}{setting}"), 0, &[])
    }

    fn start_on_url(
        log_dir: &Path,
        database: &Arc<TestDatabase>,
        url: String,
        port: u16,
        extra: &[&str],
    ) -> Self {
        let mut args: Vec<OsString> = ["--bind", "127.0.0.1", "--database"]
            .map(OsString::from)
            .into();
        args.push(url.into());
        args.extend(extra.iter().map(OsString::from));
        Self::spawn(log_dir, Some(Arc::clone(database)), port, args, "debug").0
    }

    /// Start this server again, as it was started, on the port it had
    /// (after it stopped).
    pub fn start_again(&self) -> Self {
        let (database, args) = (self.database.clone(), self.args.clone());
        Self::spawn(&self.data_dir, database, self.port, args, "debug").0
    }

    fn spawn(
        data_dir: &Path,
        database: Option<Arc<TestDatabase>>,
        port: u16,
        args: Vec<OsString>,
        log_filter: &str,
    ) -> (Self, Vec<String>) {
        if database.is_none() {
            std::fs::create_dir_all(data_dir).unwrap();
        }
        let log = data_dir.with_extension("log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = msgr_std()
            .args(["serve", &port.to_string()])
            .args(&args)
            .env("RUST_LOG", log_filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("msgr serve starts");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // One line per address listened on, then the fingerprint.
        let mut addrs = Vec::new();
        let fingerprint_line = loop {
            let line = read_line(&mut stdout, &log);
            match line.strip_prefix("msgr listening on ") {
                Some(addr) => addrs.push(addr.to_owned()),
                None => break line,
            }
        };
        assert!(!addrs.is_empty(), "no address announced");
        let addr = addrs[0].clone();
        let port = addr.rsplit_once(':').unwrap().1.parse().unwrap();
        let fingerprint = fingerprint_line
            .strip_prefix("certificate fingerprint ")
            .unwrap_or_else(|| panic!("unexpected line {fingerprint_line:?}"))
            .to_owned();
        let server = Self {
            child,
            stdout,
            addr,
            port,
            fingerprint,
            data_dir: data_dir.to_owned(),
            database,
            args,
            log,
        };
        (server, addrs)
    }

    /// The next line the server printed after its fingerprint (such as
    /// the metrics address).
    pub fn next_line(&mut self) -> String {
        read_line(&mut self.stdout, &self.log)
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (a `kill -s` name).
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -s {signal} failed");
    }

    /// Send `signal` (a `kill -s` name) and wait for the process to exit;
    /// returns its exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> std::process::ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The self-signed certificate and key it presents, as PEM, from
    /// wherever it keeps them (as its operator could read them).
    pub fn certificate_pem(&self) -> (String, String) {
        match &self.database {
            Some(database) => (
                database.text("SELECT cert_pem FROM server_certificate"),
                database.text("SELECT key_pem FROM server_certificate"),
            ),
            None => {
                let read = |file| std::fs::read_to_string(self.data_dir.join(file)).unwrap();
                (read("cert.pem"), read("key.pem"))
            }
        }
    }

    /// The number `sql` (a `SELECT count(*)` both databases understand)
    /// counts in the server's database.
    pub fn count(&self, sql: &str) -> i64 {
        match &self.database {
            Some(database) => database.count(sql),
            None => self
                .database()
                .query_row(sql, [], |row| row.get(0))
                .unwrap(),
        }
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Open the server's SQLite database directly (as an attacker with
    /// disk access would).
    pub fn database(&self) -> rusqlite::Connection {
        assert!(
            self.database.is_none(),
            "this test opens the SQLite file: call common::sqlite_only() first"
        );
        let db = rusqlite::Connection::open(self.data_dir.join("msgr.db")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(reader: &mut BufReader<ChildStdout>, log: &Path) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(
        !line.is_empty(),
        "server exited before printing its address; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    line.trim_end().to_owned()
}

/// Wait until `check` holds, polling every 20 ms; fail the test, naming
/// `what`, if it still does not after `within`.
pub fn eventually(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `name` as a checked user name, for the library calls tests make.
pub fn name(name: &str) -> msgr::wire::protocol::UserName {
    name.parse().expect("a valid test name")
}

/// A server started with extra `serve` arguments in a temp dir of its own,
/// for tests that speak to it frame by frame.
pub fn start_server(extra: &[&str]) -> (TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(&dir.path().join("server"), 0, extra);
    (dir, server)
}

/// One test's world: a temp dir holding the server's data dir and every
/// client config dir, and the running server.
pub struct World {
    /// Root of all of this test's files.
    pub dir: TempDir,
    /// The server.
    pub server: Server,
}

impl World {
    /// A fresh server in a fresh temp dir.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("server"));
        Self { dir, server }
    }

    /// A fresh server started with extra `serve` arguments.
    pub fn with_server_args(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start_with(&dir.path().join("server"), 0, extra);
        Self { dir, server }
    }

    /// Stop the server with SIGTERM and start it again on the same port
    /// with the same data dir.
    pub fn restart(&mut self) {
        let status = self.server.signal_and_wait("TERM");
        assert!(status.success(), "server exited with {status}");
        self.server = self.server.start_again();
    }

    /// Stop the server and start it again with its certificate but none
    /// of its data, as after a restore from nothing.
    pub fn lose_server_data(&mut self) {
        assert!(
            self.server.database.is_none(),
            "this test deletes the data directory: call common::sqlite_only() first"
        );
        let status = self.server.signal_and_wait("TERM");
        assert!(status.success(), "server exited with {status}");
        let data_dir = self.server.data_dir.clone();
        for entry in std::fs::read_dir(&data_dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap();
            if name != "cert.pem" && name != "key.pem" {
                std::fs::remove_file(&path).unwrap();
            }
        }
        self.server = Server::start_with(&data_dir, self.server.port, &[]);
    }

    /// The config dir of `user` (each user has their own, as on separate
    /// machines).
    pub fn config_dir(&self, user: &str) -> PathBuf {
        self.dir.path().join("clients").join(user)
    }

    /// The session token in `user`'s keyring.
    pub fn stored_token(&self, user: &str) -> msgr::wire::protocol::Base64Bytes {
        self.stored_token_at(user, self.server.port)
    }

    /// The session token in `user`'s keyring for `localhost:PORT` (such
    /// as a proxy or balancer in front of the server).
    pub fn stored_token_at(&self, user: &str, port: u16) -> msgr::wire::protocol::Base64Bytes {
        let path = self.account_dir_at(user, port).join("session.toml");
        let session: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        let token = session["token"].as_str().unwrap();
        let engine = base64::engine::general_purpose::STANDARD;
        msgr::wire::protocol::Base64Bytes(base64::Engine::decode(&engine, token).unwrap())
    }

    /// The keyring folder of `user`'s account on this server.
    pub fn account_dir(&self, user: &str) -> PathBuf {
        self.account_dir_at(user, self.server.port)
    }

    /// The keyring folder of `user`'s account on `localhost:PORT` (such as
    /// a proxy in front of the server).
    pub fn account_dir_at(&self, user: &str, port: u16) -> PathBuf {
        self.config_dir(user)
            .join(format!("accounts/{}@localhost:{port}", user.to_lowercase()))
    }

    /// `msgr --server ... --user USER --config-dir ...` with a clean
    /// environment.
    pub fn msgr(&self, user: &str) -> assert_cmd::Command {
        self.msgr_at(user, self.server.port)
    }

    /// [`World::msgr`] talking to `localhost:PORT` instead of the server
    /// (such as a proxy in front of it).
    pub fn msgr_at(&self, user: &str, port: u16) -> assert_cmd::Command {
        let mut command = msgr_bare();
        command.args(self.account_args(user, port));
        command
    }

    /// The same command as [`World::msgr`] as a plain process, for tests
    /// that run it in the background, feed or starve its pipes, or kill it.
    pub fn msgr_process(&self, user: &str) -> Command {
        self.msgr_process_at(user, self.server.port)
    }

    /// [`World::msgr_process`] talking to `localhost:PORT`.
    pub fn msgr_process_at(&self, user: &str, port: u16) -> Command {
        let mut command = msgr_std();
        command.args(self.account_args(user, port));
        command
    }

    /// `--server localhost:PORT --user USER --config-dir ...`.
    fn account_args(&self, user: &str, port: u16) -> [OsString; 6] {
        [
            "--server".into(),
            format!("localhost:{port}").into(),
            "--user".into(),
            user.into(),
            "--config-dir".into(),
            self.config_dir(user).into(),
        ]
    }

    /// Register `user` with a 2048-bit key (fast) and assert success.
    pub fn register(&self, user: &str) {
        self.register_at(user, self.server.port);
    }

    /// [`World::register`] on `localhost:PORT` (such as a balancer in
    /// front of the server).
    pub fn register_at(&self, user: &str, port: u16) {
        self.msgr_at(user, port)
            .args(["register", "--bits", "2048"])
            .assert()
            .success();
    }

    /// Send `body` from `from` to `to` and assert success.
    pub fn send(&self, from: &str, to: &str, body: &str) {
        self.msgr(from)
            .args(["create", to, body])
            .assert()
            .success();
    }

    /// Messages the server holds, counted in its database.
    pub fn queued(&self) -> i64 {
        self.server.count("SELECT count(*) FROM messages")
    }

    /// Wait (up to ten seconds) until the server holds `expected` messages:
    /// `read` does not wait for the answer to its last acknowledgement, so
    /// the server may still be committing it when `read` exits.
    pub fn assert_queued_soon(&self, expected: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.queued() != expected && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.queued(), expected, "messages left on the server");
    }

    /// Run `read` as `user`; returns (exit code, stdout, stderr).
    pub fn read(&self, user: &str) -> (i32, String, String) {
        let output = self.msgr(user).arg("read").output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// Whether the long-running (soak) variants of the tests were asked for
/// with `MSGR_SOAK=1`.
pub fn soak() -> bool {
    std::env::var_os("MSGR_SOAK").is_some_and(|value| value == "1")
}

/// A loopback port that refuses connections for as long as the returned
/// socket lives: bound, so nothing else can take it, but not listening.
pub fn refusing_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Something other than msgr listening on a free loopback port, as a
/// user may name by mistake in `--server`: a plain TCP server that reads
/// what a connection sends first, answers `reply` (an HTTP error, say) and
/// closes. Serves until the test process ends.
pub fn plain_tcp_server(reply: &'static [u8]) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
            let mut first = [0u8; 16 * 1024];
            let _ = socket.read(&mut first);
            let _ = socket.write_all(reply);
            // Closing with unread bytes would reset the connection before
            // the client reads the reply: read until the client is done.
            let _ = socket.shutdown(std::net::Shutdown::Write);
            let _ = std::io::copy(&mut socket, &mut std::io::sink());
        }
    });
    port
}

/// The client binary with no msgr settings inherited from the environment.
pub fn msgr_bare() -> assert_cmd::Command {
    let mut command = assert_cmd::Command::from_std(msgr_std());
    command.timeout(Duration::from_secs(60));
    command
}

/// [`msgr_bare`] as a plain process (no timeout: the caller waits).
pub fn msgr_std() -> Command {
    let mut command = Command::new(cargo_bin("msgr"));
    hermetic(&mut command);
    command
}

/// Every environment variable that changes what msgr does, removed; HOME
/// pointed at an empty folder of this test process, and the XDG folders
/// removed so that they follow it; backtraces off.
pub fn hermetic(command: &mut Command) {
    for var in [
        "MSGR_SERVER",
        "MSGR_USER",
        "MSGR_CONFIG_DIR",
        "MSGR_CA_CERT",
        "MSGR_DATA_DIR",
        "MSGR_DATABASE_URL",
        "MSGR_JSON",
        "MSGR_PASSPHRASE",
        "MSGR_PIN_POLICY",
        "MSGR_TIMEOUT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "RUST_LOG",
        "NO_COLOR",
        "CLICOLOR",
        "CLICOLOR_FORCE",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        "XDG_CACHE_HOME",
        "XDG_RUNTIME_DIR",
        "COLUMNS",
        "LINES",
    ] {
        command.env_remove(var);
    }
    command.env("HOME", empty_home());
    command.env("RUST_BACKTRACE", "0");
}

/// An empty folder standing in for the home directory of every msgr this
/// test process runs.
fn empty_home() -> &'static Path {
    static HOME: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}
