//! Throwaway PostgreSQL databases for tests, the crate's own and the
//! integration tests (which is why this is public, and hidden from the
//! documentation). The server comes from
//! `MSGR_TEST_DATABASE_URL` (one where the user may `CREATE DATABASE`);
//! each test makes its own database and drops it afterwards, so tests run
//! in parallel. Without the variable a test says on stderr that it was
//! skipped and passes — unless `MSGR_REQUIRE_POSTGRES=1`, as in CI, when
//! it fails.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::config::Host;
use tokio_postgres::{Config, NoTls};

use super::PgStore;

/// The server tests make their databases on.
pub const URL_VARIABLE: &str = "MSGR_TEST_DATABASE_URL";

/// Set to `1` to fail, not skip, when there is no server.
pub const REQUIRE_VARIABLE: &str = "MSGR_REQUIRE_POSTGRES";

/// Connections a store opens to the database at most, besides the one
/// hints arrive on.
pub const POOL_SIZE: usize = super::POOL_SIZE;

/// The channel servers send each other hints of messages on.
pub const HINT_CHANNEL: &str = super::arrivals::CHANNEL;

/// A database made for one test, dropped (with any connection still
/// open to it) when this is.
pub struct TestDatabase {
    /// The server as given, connected to its maintenance database.
    server: Config,
    /// The server URL as given.
    url: String,
    /// This test's database.
    name: String,
}

impl TestDatabase {
    /// A new database for the test `test`, or `None` (having said so)
    /// when no server is configured and none is required.
    pub fn create(test: &str) -> Option<Self> {
        let url = match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => url,
            _ => {
                assert!(
                    std::env::var(REQUIRE_VARIABLE).as_deref() != Ok("1"),
                    "{REQUIRE_VARIABLE}=1 but {URL_VARIABLE} is not set"
                );
                eprintln!(
                    "skipped {test}: no PostgreSQL server to test against; run it with \
                     {URL_VARIABLE}=postgresql://USER@127.0.0.1:PORT/postgres \
                     (a user who may create databases)"
                );
                return None;
            }
        };
        Some(Self::create_on(&url, test))
    }

    /// A new database for the test `test` on the server at `url`.
    pub fn create_on(url: &str, test: &str) -> Self {
        let server = Config::from_str(url)
            .unwrap_or_else(|error| panic!("{url:?} is not a PostgreSQL URL: {error}"));
        let name = unique_name(test);
        // Built from [a-z0-9_] only, so it is safe to splice.
        run_on(&server, &format!("CREATE DATABASE \"{name}\""));
        Self {
            server,
            url: url.to_owned(),
            name,
        }
    }

    /// Connection settings for this test's database.
    pub fn config(&self) -> Config {
        let mut config = self.server.clone();
        config.dbname(&self.name);
        config
    }

    /// A URL for this test's database, spelled with `scheme`.
    pub fn url(&self, scheme: &str) -> String {
        let rest = self.url.split_once("://").map_or("", |(_, rest)| rest);
        let (authority, query) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path.split_once('?').map(|(_, q)| q)),
            None => (rest.split_once('?').map_or(rest, |(a, _)| a), None),
        };
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{scheme}://{authority}/{}{query}", self.name)
    }

    /// A store on this test's database.
    pub fn open(&self) -> PgStore {
        PgStore::open_config(self.config(), None).expect("open the test database")
    }

    /// Run `sql` (constant test SQL) on this test's database.
    pub fn execute(&self, sql: &str) {
        run_on(&self.config(), sql);
    }

    /// Whether the server is reached over TCP, rather than a Unix socket.
    pub fn over_tcp(&self) -> bool {
        !self
            .server
            .get_hosts()
            .iter()
            .any(|host| matches!(host, Host::Unix(_)))
    }

    /// A connection of its own to this test's database, with none of the
    /// store's settings, kept open until dropped: with any transaction its
    /// statements leave open, and the locks that holds.
    pub fn session(&self) -> Session {
        let runtime = test_runtime();
        let client = runtime.block_on(connect(self.config()));
        Session { client, runtime }
    }

    /// A [`TestDatabase::session`] holding the queue totals of the
    /// account `name_key` (its canonical name), as a server's batch for it
    /// would, until it is rolled back or dropped.
    pub fn hold_queue(&self, name_key: &str) -> Session {
        let session = self.session();
        // Test names are letters and digits only, safe to splice.
        session.execute(&format!(
            "BEGIN; SELECT 1 FROM queue_totals
             WHERE recipient_id = (SELECT id FROM users WHERE name_key = '{name_key}')
             FOR UPDATE"
        ));
        session
    }

    /// Whether a session of this test's database (the one asking aside)
    /// is in the state `condition` says, over `pg_stat_activity`'s columns:
    /// `"wait_event_type = 'Lock'"`, say.
    pub fn has_session_where(&self, condition: &str) -> bool {
        self.count(&format!(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND {condition}"
        )) > 0
    }

    /// The first column of the one row `sql` returns, as text.
    pub fn text(&self, sql: &str) -> String {
        self.first_column(sql)
    }

    /// The first column of the one row `sql` returns, as a number.
    pub fn count(&self, sql: &str) -> i64 {
        self.first_column(sql)
    }

    /// The first column of the one row `sql` (constant test SQL) returns.
    fn first_column<T>(&self, sql: &str) -> T
    where
        T: for<'a> tokio_postgres::types::FromSql<'a> + Send + 'static,
    {
        let (config, sql) = (self.config(), sql.to_owned());
        block_on(async move {
            let client = connect(config).await;
            let row = client.query_one(&sql, &[]).await.expect(&sql);
            row.get::<_, T>(0)
        })
    }
}

/// A connection to a test database ([`TestDatabase::session`]); dropping
/// it closes the connection, which rolls back a transaction left open.
pub struct Session {
    client: tokio_postgres::Client,
    /// Drives the connection while a statement runs.
    runtime: tokio::runtime::Runtime,
}

impl Session {
    /// Run `sql` (constant test SQL, any number of statements).
    pub fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .expect(sql);
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let server = self.server.clone();
        // Best effort: a failed test should report its own failure.
        let dropped = std::panic::catch_unwind(move || run_on(&server, &sql));
        if dropped.is_err() {
            eprintln!("could not drop the test database {}", self.name);
        }
    }
}

/// A database name no other test (in this process or another) uses.
fn unique_name(test: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let short: String = test
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .take(24)
        .collect();
    format!(
        "msgr_test_{short}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn run_on(config: &Config, sql: &str) {
    let (config, sql) = (config.clone(), sql.to_owned());
    block_on(async move {
        let client = connect(config).await;
        client.batch_execute(&sql).await.expect(&sql);
    });
}

/// A connection made with `config`, driven by the current runtime.
async fn connect(config: Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|error| {
        panic!("cannot connect to the test server ({URL_VARIABLE}): {error}")
    });
    tokio::spawn(connection);
    client
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    test_runtime().block_on(future)
}

fn test_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime")
}
