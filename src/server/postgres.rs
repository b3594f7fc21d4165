//! The shared [`Store`]: one PostgreSQL database that several server
//! processes use at once, so that any of them can serve any request.
//!
//! - **Connections**: a deadpool pool of tokio-postgres connections, on a
//!   small runtime the store owns. [`Store`]'s methods are synchronous and
//!   the handler calls them on blocking threads (`spawn_blocking`), so each
//!   runs its queries with `Runtime::block_on` from that thread; owning the
//!   runtime makes the store work from any thread (the server's, a test's,
//!   a tool's) and keeps its connection tasks apart from the server's.
//! - **Sends** never take a thread: [`Store::enqueue_for`] hands the
//!   envelope to the group-commit task (`writer`), which queues concurrent
//!   sends in one transaction and answers each once it has committed.
//! - **Round trips**: statements that need no answer from one another
//!   leave together, with the BEGIN before them and the COMMIT after them
//!   where they can (`pipeline`); so `get_key` is one round trip, a send
//!   of one message two.
//! - **Other writes** run one transaction each at READ COMMITTED, with the
//!   row locks `queries` describes wherever a check must hold until the
//!   commit (a quota, the sessions cap, the accounts per key, a prekey
//!   handed out once); a transaction that loses a deadlock to another is
//!   run again. SERIALIZABLE would detect the same races, but only by
//!   failing one side at the commit, after the work; the locks make the
//!   loser wait instead, and say in each query what is protected.
//! - **Several servers**: each journals the sessions it ends
//!   (`session_revocations`, written in commit order) for the others, and
//!   every piece of state a request needs is in the database.
//! - **Durability**: every connection runs with `synchronous_commit=on`,
//!   whatever the server's default, so an acknowledged change has reached
//!   the database's write-ahead log on disk.
//! - **A frozen server** (stopped, or cut off from the network, in the
//!   middle of a transaction) holds the rows it locked for about 5 seconds
//!   after the database last answered it: every connection runs with
//!   `idle_in_transaction_session_timeout`, and PostgreSQL then ends its
//!   session.
//! - **A vanished database host** is given up on within about a minute
//!   and a half of use: the TCP settings a URL leaves unset get msgr's
//!   (`parse_url`).
//! - **Schema**: versioned migrations applied at start under an advisory
//!   lock (`schema`).
//! - **Free space** cannot be told from here ([`Store::free_space`] is
//!   `None`): the database's disk is the database operator's to watch.
//! - **No TLS yet**: connections are plain, so the database must be on
//!   loopback, a Unix socket or a trusted network; a URL asking for TLS
//!   (`sslmode=require`) is refused rather than silently downgraded.

mod arrivals;
mod certificate;
mod import;
mod pipeline;
mod queries;
mod schema;
mod writer;

#[doc(hidden)]
pub mod testing;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Config, NoTls};

use super::metrics::BatchSizes;
use super::store::{
    AccountSummary, Arrivals, Authenticated, Enqueued, Expired, KeyBundle, Origin, Page, Prekeys,
    Quota, RegisterOutcome, Revocations, RotateOutcome, Session, Store, StoreError, StoreFuture,
    StoreStats, StoredMessage, TokenHash, User, UserId, postgres_error_text,
};
use crate::wire::crypto::random_bytes;
use crate::wire::protocol::{KeyRotation, UserName, unix_now};
use pipeline::Transaction;
use writer::{Recipient, Writer};

/// Most connections one server opens.
const POOL_SIZE: usize = 16;

/// How long a new connection may take, unless the URL says otherwise.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a free connection before failing.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long PostgreSQL lets a session of the store sit idle inside a
/// transaction before ending it, which rolls the transaction back. The
/// store's transactions wait for nothing but the database between their
/// statements, so only a server that froze or lost its network in the
/// middle of one comes near this; ending its session frees the rows it
/// locked, which would otherwise stall the other servers' sends to those
/// recipients until the connection closed: never, for a stopped process
/// (its system still answers TCP's probes), and after hours for a
/// vanished one.
const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Threads of the store's own runtime: they only shuttle bytes between
/// the connections and the callers, whose threads do the waiting. One is
/// ample (about 5 µs of its time per send, so some 180,000 sends a second)
/// and leaves the cores to the server's own threads and the database's: a
/// second made two servers sharing a two-core machine 3–5 % slower.
const RUNTIME_THREADS: usize = 1;

/// [`Store`] on a PostgreSQL database.
pub struct PgStore {
    /// Every send goes through here.
    writer: Writer,
    /// Connections for everything else (and for the writer's batches).
    pool: Pool,
    /// Drives the connections and the writer; shut down on drop.
    runtime: Option<tokio::runtime::Runtime>,
    /// This process, in the journal of ended sessions and in the hints
    /// of messages queued.
    origin: Origin,
    /// How to connect, for the connection hints arrive on.
    config: Config,
    /// `user@host:port/database`, for messages.
    target: String,
}

impl PgStore {
    /// Connect to the database at `url` (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// or `postgres://…`, with libpq's query parameters) and bring its
    /// schema up to date. Blocks the calling thread until then; it may be
    /// called from any thread, within a runtime or not.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_recording(url, None)
    }

    /// [`PgStore::open`], recording the size of each group commit in
    /// `batches` (the server's metrics).
    pub fn open_recording(url: &str, batches: Option<BatchSizes>) -> Result<Self, StoreError> {
        Self::open_config(parse_url(url)?, batches)
    }

    /// [`PgStore::open_recording`] with the connection settings already
    /// parsed.
    pub(crate) fn open_config(
        mut config: Config,
        batches: Option<BatchSizes>,
    ) -> Result<Self, StoreError> {
        if !matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Err(StoreError::Setup(
                "msgr cannot connect to PostgreSQL over TLS yet; use sslmode=disable with a \
                 database on loopback, a Unix socket or a trusted network"
                    .into(),
            ));
        }
        config.ssl_mode(SslMode::Disable);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("msgr");
        }
        // An acknowledged write must be on disk, whatever the default; and
        // a frozen server's session must not hold its locks for long.
        let settings = format!(
            "-c synchronous_commit=on -c idle_in_transaction_session_timeout={}",
            IDLE_IN_TRANSACTION_TIMEOUT.as_millis()
        );
        let options = match config.get_options() {
            Some(options) => format!("{options} {settings}"),
            None => settings,
        };
        config.options(&options);
        let target = describe_target(&config);
        // The database gives the listener up once what it sends goes
        // unread as long as msgr gives the database up when what it sends
        // goes unacknowledged. A frozen server still holds its connections
        // open, and the hints it leaves unread would otherwise stay in
        // PostgreSQL's notification queue, whose filling up would fail
        // every commit that sends hints, on every server.
        let mut listener_config = config.clone();
        let unread = config
            .get_tcp_user_timeout()
            .copied()
            .unwrap_or(UNACKNOWLEDGED_LIMIT);
        listener_config.options(format!(
            "{options} -c tcp_user_timeout={}",
            unread.as_millis()
        ));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("msgr-postgres")
            .enable_all()
            .build()
            .map_err(|error| {
                StoreError::Setup(format!("cannot start the database runtime: {error}"))
            })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| {
                StoreError::Setup(format!("cannot make the connection pool: {error}"))
            })?;

        // On a thread of its own, so that `block_on` never runs inside a
        // runtime the caller may be in.
        let prepared = std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(prepare(&pool, &target)))
                .join()
        })
        .map_err(|_| StoreError::Setup("opening the database panicked".into()))?;
        prepared?;

        let origin = random_bytes();
        let writer = {
            let _entered = runtime.enter();
            Writer::start(pool.clone(), batches, origin)
        };
        Ok(Self {
            writer,
            pool,
            runtime: Some(runtime),
            origin,
            config: listener_config,
            target,
        })
    }

    /// The database as `user@host:port/database`, for messages; never
    /// its password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Run `operation` to completion on the store's runtime, blocking the
    /// calling thread (a blocking thread, never a runtime's worker).
    fn block_on<T>(&self, operation: impl Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("the runtime is only taken when dropping")
            .block_on(operation)
    }

    /// Run `operation` in one READ COMMITTED transaction, its BEGIN sent
    /// with its first statements, and commit it; rolled back if it fails,
    /// and run again if it loses a conflict (`pipeline`).
    fn transaction<T>(
        &self,
        operation: impl AsyncFn(&Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.block_on(pipeline::retrying(|| async {
            let tx = Transaction::on(&self.pool).await?;
            let value = tx.begin_with(operation(tx.client())).await?;
            tx.commit().await?;
            Ok(value)
        }))
    }

    /// `operation`'s result through a future, the operation run as a task
    /// on the store's runtime: no thread waits for it. The future holds
    /// the store (and so its runtime) until the outcome is known.
    fn spawn<T: Send + 'static>(
        self: Arc<Self>,
        operation: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> StoreFuture<T> {
        let task = self
            .runtime
            .as_ref()
            .expect("the runtime is only taken when dropping")
            .spawn(operation);
        Box::pin(async move {
            let outcome = task.await;
            drop(self);
            outcome.map_err(|error| StoreError::Stopped(error.to_string()))?
        })
    }

    /// Run `operation` on a connection outside any transaction.
    fn read<T>(
        &self,
        operation: impl AsyncFn(&Object) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.block_on(async {
            let client: Object = self.pool.get().await.map_err(pool_error)?;
            operation(&client).await
        })
    }

    /// Transactions the group-commit writer has committed.
    #[cfg(test)]
    pub(crate) fn writer_commits(&self) -> u64 {
        self.writer.commits()
    }
}

impl Drop for PgStore {
    /// Nothing is in flight by now (every pending send holds the store), so
    /// the runtime stops at once, closing the connections; it must not wait,
    /// as the last holder may be dropping the store inside another runtime.
    fn drop(&mut self) {
        self.pool.close();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// How long data sent to the database may go unacknowledged before the
/// connection is given up on (on Linux, which the driver sets it on).
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(30);

/// How long a connection may sit idle before TCP probes it.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// How often TCP probes an idle connection then.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Probes left unanswered before TCP gives the connection up (where the
/// limit on unacknowledged data does not come first).
const KEEPALIVE_PROBES: u32 = 3;

/// Check the URL's scheme and parse it, without repeating the URL (which
/// may hold a password) in the error. The TCP settings the URL leaves
/// unset get msgr's: a database host gone without a word (its power lost,
/// its network cut) is then given up on within about a minute and a half
/// of use, where TCP's defaults take from a quarter of an hour (data in
/// flight) to over two hours (an idle connection, such as the one hints
/// arrive on).
fn parse_url(url: &str) -> Result<Config, StoreError> {
    if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
        return Err(StoreError::Setup(
            "the database URL must start with postgresql:// or postgres://".into(),
        ));
    }
    let mut config = Config::from_str(url).map_err(|error| {
        StoreError::Setup(format!(
            "the database URL is not valid: {}",
            postgres_error_text(&error)
        ))
    })?;
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(UNACKNOWLEDGED_LIMIT);
    }
    // The driver's own default idle time is the one a URL cannot be told
    // apart from; it is TCP's two hours.
    if config.get_keepalives_idle() == Config::new().get_keepalives_idle() {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVE_PROBES);
    }
    Ok(config)
}

/// `user@host:port/database`, for messages; never the password.
fn describe_target(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(this system user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{database}")
}

/// The named account's key bundle, in one flight of statements, BEGIN
/// and COMMIT included (`queries::key_bundle`).
async fn key_bundle(
    pool: Pool,
    name: String,
    claim: bool,
) -> Result<Option<KeyBundle>, StoreError> {
    pipeline::retrying(|| async {
        queries::key_bundle(&Transaction::on(&pool).await?, &name, claim).await
    })
    .await
}

/// What authenticating as `name` needs, in one statement (the account,
/// the session and the prekey count, which the trait's default asks for
/// one by one).
async fn authenticate(
    pool: Pool,
    name: String,
    token_hash: TokenHash,
    now: u64,
) -> Result<Option<Authenticated>, StoreError> {
    let client = pool.get().await.map_err(pool_error)?;
    queries::authenticate(&client, &name, &token_hash, now).await
}

/// Connect once, to fail early with a clear sentence, then migrate.
async fn prepare(pool: &Pool, target: &str) -> Result<(), StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|error| connect_error(error, target))?;
    schema::check_server(&client).await?;
    schema::migrate(&mut client).await
}

/// Why the first connection to `target` failed, in words.
fn connect_error(error: PoolError, target: &str) -> StoreError {
    let error = match error {
        PoolError::Backend(error) => error,
        PoolError::Timeout(_) => {
            return StoreError::Setup(format!(
                "cannot reach PostgreSQL at {target}: no answer within {} seconds",
                CONNECT_TIMEOUT.as_secs()
            ));
        }
        other => return StoreError::Setup(format!("cannot connect to {target}: {other}")),
    };
    let text = postgres_error_text(&error);
    let sentence = match error.code() {
        Some(code)
            if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
        {
            format!("PostgreSQL at {target} refused the login: {text}")
        }
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => {
            format!("PostgreSQL at {target}: {text}; create the database first (createdb)")
        }
        Some(_) => format!("PostgreSQL at {target} refused the connection: {text}"),
        None if text.contains("password missing") => {
            format!("PostgreSQL at {target} asks for a password and the URL has none")
        }
        None => format!("cannot reach PostgreSQL at {target}: {text}"),
    };
    StoreError::Setup(sentence)
}

/// A connection could not be had from the pool.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => StoreError::Unavailable(postgres_error_text(&error)),
        PoolError::Timeout(_) => StoreError::Unavailable(format!(
            "no database connection became free within {} seconds",
            WAIT_TIMEOUT.as_secs()
        )),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Whether `error` is a conflict with another transaction (a deadlock it
/// lost, or a serialization failure), which running again resolves.
fn is_retryable(error: &StoreError) -> bool {
    let StoreError::Postgres(error) = error else {
        return false;
    };
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE
    })
}

impl Store for PgStore {
    fn register(
        &self,
        name: &UserName,
        public_key: &[u8],
        prekeys: &Prekeys,
        max_accounts_per_key: u64,
    ) -> Result<RegisterOutcome, StoreError> {
        self.transaction(async |tx| {
            queries::register(tx, name, public_key, prekeys, max_accounts_per_key).await
        })
    }

    fn publish_prekeys(&self, user: UserId, prekeys: &Prekeys) -> Result<u32, StoreError> {
        self.transaction(async |tx| queries::publish_prekeys(tx, user, prekeys).await)
    }

    fn rotate_key(
        &self,
        user: UserId,
        rotation: &KeyRotation,
        prekeys: &Prekeys,
        keep: &TokenHash,
    ) -> Result<RotateOutcome, StoreError> {
        self.transaction(async |tx| {
            queries::rotate_key(tx, user, rotation, prekeys, keep, &self.origin).await
        })
    }

    fn key_bundle(&self, name: &str, claim: bool) -> Result<Option<KeyBundle>, StoreError> {
        self.block_on(key_bundle(self.pool.clone(), name.to_owned(), claim))
    }

    fn key_bundle_for(
        self: Arc<Self>,
        name: String,
        claim: bool,
    ) -> StoreFuture<Option<KeyBundle>> {
        let operation = key_bundle(self.pool.clone(), name, claim);
        self.spawn(operation)
    }

    fn one_time_prekeys(&self, user: UserId) -> Result<u32, StoreError> {
        self.read(async |client| queries::one_time_prekey_count(client, user).await)
    }

    fn find_user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.read(async |client| queries::find_user(client, name).await)
    }

    fn authenticate(
        &self,
        name: &str,
        token_hash: &TokenHash,
        now: u64,
    ) -> Result<Option<Authenticated>, StoreError> {
        self.block_on(authenticate(
            self.pool.clone(),
            name.to_owned(),
            *token_hash,
            now,
        ))
    }

    fn authenticate_for(
        self: Arc<Self>,
        name: String,
        token_hash: TokenHash,
        now: u64,
    ) -> StoreFuture<Option<Authenticated>> {
        let operation = authenticate(self.pool.clone(), name, token_hash, now);
        self.spawn(operation)
    }

    fn create_session(
        &self,
        user_id: UserId,
        key: &[u8],
        token_hash: &TokenHash,
        expires_at: u64,
        now: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.transaction(async |tx| {
            queries::create_session(tx, user_id, key, token_hash, expires_at, now).await
        })
    }

    fn find_session(
        &self,
        token_hash: &TokenHash,
        now: u64,
    ) -> Result<Option<Session>, StoreError> {
        self.read(async |client| queries::find_session(client, token_hash, now).await)
    }

    fn delete_session(&self, token_hash: &TokenHash) -> Result<bool, StoreError> {
        self.transaction(async |tx| queries::delete_session(tx, token_hash, &self.origin).await)
    }

    fn delete_sessions(&self, user: UserId) -> Result<u64, StoreError> {
        self.transaction(async |tx| queries::delete_sessions(tx, user, &self.origin).await)
    }

    fn revocations_after(&self, after: u64) -> Result<Revocations, StoreError> {
        self.read(async |client| queries::revocations_after(client, after, &self.origin).await)
    }

    fn accounts(&self) -> Result<Vec<AccountSummary>, StoreError> {
        self.read(async |client| queries::accounts(client, unix_now()).await)
    }

    /// `database_bytes` is the whole database's size on the server.
    fn stats(&self, now: u64) -> Result<StoreStats, StoreError> {
        self.read(async |client| queries::stats(client, now).await)
    }

    /// A connection from the pool answers a query: the totals would scan
    /// tables that may be large, on every probe of every server.
    fn check(&self) -> Result<(), StoreError> {
        self.read(async |client| {
            client.simple_query("SELECT 1").await?;
            Ok(())
        })
    }

    fn unregister(&self, user: UserId) -> Result<(), StoreError> {
        self.transaction(async |tx| queries::unregister(tx, user, &self.origin).await)
    }

    fn enqueue(
        &self,
        recipient: UserId,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> Result<Enqueued, StoreError> {
        let outcome = self
            .writer
            .submit(Recipient::Id(recipient), sender, envelope, quota);
        match self.block_on(outcome)? {
            Some((_, enqueued)) => Ok(enqueued),
            None => Err(StoreError::Corrupt(format!(
                "account {recipient} does not exist"
            ))),
        }
    }

    fn fetch(&self, recipient: UserId, page: Page) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(async |client| queries::fetch(client, recipient, page).await)
    }

    /// Hands the send to the group-commit task; the future holds the store
    /// until the outcome is known.
    fn enqueue_for(
        self: Arc<Self>,
        recipient: String,
        sender: UserId,
        envelope: Vec<u8>,
        quota: Quota,
    ) -> StoreFuture<Option<(User, Enqueued)>> {
        let outcome = self
            .writer
            .submit(Recipient::Name(recipient), sender, envelope, quota);
        Box::pin(async move {
            let outcome = outcome.await;
            drop(self);
            outcome
        })
    }

    fn ack(&self, recipient: UserId, ids: &[u64]) -> Result<u64, StoreError> {
        self.transaction(async |tx| queries::ack(tx, recipient, ids).await)
    }

    /// One transaction per step, until a step comes short; then the rows
    /// of deleted accounts nobody's messages name any more.
    fn expire(&self, now: u64, max_message_age: u64) -> Result<Expired, StoreError> {
        let mut total = Expired::default();
        loop {
            let step =
                self.transaction(async |tx| queries::expire(tx, now, max_message_age).await)?;
            total.messages += step.messages;
            total.one_time_prekeys += step.one_time_prekeys;
            total.claimed += step.claimed;
            let full = queries::EXPIRE_BATCH;
            if step.messages < full && step.one_time_prekeys < full && step.claimed < full {
                break;
            }
        }
        self.transaction(async |tx| queries::delete_unreferenced_accounts(tx).await)?;
        Ok(total)
    }

    /// Listens on a connection of its own for the hints that other
    /// servers' sends leave (`arrivals`).
    fn watch_arrivals(&self, arrivals: Arc<dyn Arrivals>) -> Option<Duration> {
        let _entered = self
            .runtime
            .as_ref()
            .expect("the runtime is only taken when dropping")
            .enter();
        arrivals::listen(self.config.clone(), self.origin, arrivals);
        Some(arrivals::RECHECK_EVERY)
    }
}

#[cfg(test)]
mod tests;
