//! Load generator: drives a running `msgr serve` over loopback with many
//! concurrent clients and reports messages per second and p50/p99 latency,
//! then checks that every acknowledged message is queued exactly once.
//!
//! Three modes:
//! - `oneshot`: a fresh TCP + TLS connection per message, as the CLI does
//!   (connect, hello, authenticate, send);
//! - `persistent`: one connection per client, sending pre-sealed envelopes
//!   as fast as acknowledgements come back, with `--window` sends pipelined
//!   per connection (like an MQTT client's in-flight window);
//! - `wake`: a reader waits (`fetch` with a wait) on the last `--server`
//!   while a sender sends through the first, one message at a time; the
//!   figure is the time from the send's acknowledgement to the reader's
//!   answer (across servers sharing a database, when they differ).
//!
//! Given several `--server`s (servers sharing one database), the clients
//! are spread over them in turn.
//!
//! On Linux it also reports how busy the machine's cores were while it
//! ran (`cores_busy`, the share of all CPU time not idle, from
//! `/proc/stat`, whoever spent it): near 100 % the machine is the limit,
//! well below it something waits.
//!
//! It registers its own sender and recipients (`--recipients`, one by
//! default) with random names, so it can run against any server. Envelopes are sealed once up front (a pool
//! reused round-robin) so the figures measure the server and transport,
//! not the sender's RSA signature. See BENCHMARKS.md for the commands.
//!
//! ```text
//! cargo run --release --example load -- --server localhost:12000 \
//!     --mode persistent --clients 64 --messages 100000
//! ```

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use msgr::client::net::trust::TrustPolicy;
use msgr::client::net::{Connection, DEFAULT_TIMEOUT, NetError, ServerAddr};
use msgr::wire::crypto::PrivateKey;
use msgr::wire::crypto::agreement::AgreementSecret;
use msgr::wire::envelope::{self, Header, RecipientPrekey, RecipientPrekeys};
use msgr::wire::protocol::{
    Base64Bytes, FETCH_PAGE, Request, Response, SignedPrekey, UserName, unix_now,
};
use msgr::wire::signing::{self, PrekeyKind};

/// Command-line options.
#[derive(Debug, Parser)]
struct Options {
    /// Server to load, HOST:PORT (loopback only); repeat it for servers
    /// sharing one database, which the clients are spread over.
    #[arg(long, required = true)]
    server: Vec<ServerAddr>,
    /// One connection per message, or one per client.
    #[arg(long, value_enum, default_value_t = Mode::Persistent)]
    mode: Mode,
    /// Concurrent clients (threads).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Messages to send in all.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Sends in flight per persistent connection: each client keeps this
    /// many requests pipelined, sending the next as each acknowledgement
    /// comes back.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..))]
    window: u16,
    /// Body size in bytes.
    #[arg(long, default_value_t = 24)]
    body_bytes: usize,
    /// Recipients the messages are spread over, in turn (one queue each,
    /// as a server with many users has).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    recipients: u16,
    /// Leave the messages queued instead of draining them after checking
    /// (to measure a server holding a large queue).
    #[arg(long)]
    keep: bool,
    /// Skip the exactly-once check (for quickly filling a queue).
    #[arg(long)]
    no_verify: bool,
}

/// How clients connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// A new TLS connection per message.
    Oneshot,
    /// One TLS connection per client for all its messages.
    Persistent,
    /// A waiting reader woken by each send.
    Wake,
}

/// An account the generator registered, with a live session token.
struct Account {
    name: UserName,
    key: PrivateKey,
    /// The signed prekey messages to the account are sealed to.
    prekey: RecipientPrekeys,
    token: Vec<u8>,
}

/// Size of the pool of pre-sealed envelopes reused round-robin.
const ENVELOPE_POOL: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = Options::parse();
    let suffix = std::process::id();
    let first = &options.server[0];
    let sender = create_account(first, &format!("load-s-{suffix}"))?;
    let recipients = (0..options.recipients)
        .map(|n| create_account(first, &format!("load-r-{suffix}-{n}")))
        .collect::<Result<Vec<_>, _>>()?;
    let per_recipient = ENVELOPE_POOL.div_ceil(recipients.len()).max(4);
    let mailboxes = recipients
        .iter()
        .map(|recipient| {
            Ok(Mailbox {
                name: recipient.name.to_string(),
                envelopes: envelope_pool(&sender, recipient, options.body_bytes, per_recipient)?,
            })
        })
        .collect::<Result<Vec<_>, envelope::EnvelopeError>>()?;
    if options.mode == Mode::Wake {
        return wake(&options, &sender, &recipients[0], &mailboxes[0].envelopes);
    }
    let (sender, mailboxes) = (Arc::new(sender), Arc::new(mailboxes));

    let servers: Vec<String> = options.server.iter().map(ToString::to_string).collect();
    eprintln!(
        "sending {} messages from {} {:?} clients to {}",
        options.messages,
        options.clients,
        options.mode,
        servers.join(" and ")
    );
    let next = Arc::new(AtomicU64::new(0));
    let stopwatch = Stopwatch::start();
    let workers: Vec<_> = (0..options.clients)
        .map(|client| {
            let (server, sender, mailboxes, next) = (
                options.server[client % options.server.len()].clone(),
                Arc::clone(&sender),
                Arc::clone(&mailboxes),
                Arc::clone(&next),
            );
            let (mode, total, window) = (options.mode, options.messages, options.window);
            std::thread::spawn(move || {
                let job = Job {
                    server: &server,
                    sender: &sender,
                    mailboxes: &mailboxes,
                    next: &next,
                    total,
                };
                match mode {
                    Mode::Oneshot => oneshot_worker(&job),
                    Mode::Persistent => persistent_worker(&job, usize::from(window)),
                    Mode::Wake => unreachable!("handled above"),
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(options.messages as usize);
    let mut acknowledged = Vec::with_capacity(options.messages as usize);
    for handle in workers {
        let result = handle.join().expect("worker panicked")?;
        latencies.extend(result.latencies);
        acknowledged.extend(result.ids);
    }
    report(&options, &stopwatch, &mut latencies);

    if !options.no_verify {
        verify_exactly_once(&options, &recipients, &acknowledged)?;
    }
    Ok(())
}

/// `count` envelopes of `body_bytes` from `sender` to `recipient`, sealed
/// ahead so that sealing costs the clients nothing.
fn envelope_pool(
    sender: &Account,
    recipient: &Account,
    body_bytes: usize,
    count: usize,
) -> Result<Vec<Vec<u8>>, envelope::EnvelopeError> {
    let body = vec![b'x'; body_bytes];
    (0..count)
        .map(|_| {
            let header = Header::new(&sender.name, &recipient.name);
            envelope::seal(&header, &body, &sender.key, &recipient.prekey)
        })
        .collect()
}

/// What one client thread did.
#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    ids: Vec<u64>,
}

/// A recipient and the envelopes sealed for it.
struct Mailbox {
    name: String,
    envelopes: Vec<Vec<u8>>,
}

/// What a client thread needs to send its share of the messages.
struct Job<'a> {
    server: &'a ServerAddr,
    sender: &'a Account,
    /// Message `n` goes to mailbox `n` modulo their number.
    mailboxes: &'a [Mailbox],
    /// The number of the next message to send, shared by all clients.
    next: &'a AtomicU64,
    total: u64,
}

impl Job<'_> {
    /// The number of this client's next message, or `None` once all are
    /// taken.
    fn take(&self) -> Option<u64> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (n < self.total).then_some(n)
    }

    /// The `send` request for message `n`.
    fn request(&self, n: u64) -> Request {
        let n = n as usize;
        let mailbox = &self.mailboxes[n % self.mailboxes.len()];
        let turn = n / self.mailboxes.len();
        Request::Send {
            recipient: mailbox.name.clone(),
            envelope: Base64Bytes(mailbox.envelopes[turn % mailbox.envelopes.len()].clone()),
        }
    }
}

/// The id in a `sent` response.
fn sent_id(response: Result<Response, NetError>) -> Result<u64, String> {
    match response.map_err(|e| format!("send failed: {e}"))? {
        Response::Sent { id } => Ok(id),
        other => Err(format!("unexpected response {other:?}")),
    }
}

/// One fresh connection per message, as the CLI does.
fn oneshot_worker(job: &Job<'_>) -> Result<WorkerResult, String> {
    let mut result = WorkerResult::default();
    while let Some(n) = job.take() {
        let started = Instant::now();
        let mut connection = authenticated(job.server, job.sender)?;
        result
            .ids
            .push(sent_id(connection.request(&job.request(n)))?);
        result.latencies.push(started.elapsed());
    }
    Ok(result)
}

/// One connection for all of this client's messages, with up to `window`
/// sends in flight; a message's latency runs from its request being queued
/// to its acknowledgement.
fn persistent_worker(job: &Job<'_>, window: usize) -> Result<WorkerResult, String> {
    let mut result = WorkerResult::default();
    let mut connection = authenticated(job.server, job.sender)?;
    let mut in_flight = VecDeque::with_capacity(window);
    let mut taking = true;
    loop {
        while taking && in_flight.len() < window {
            match job.take() {
                Some(n) => {
                    connection
                        .write_request(&job.request(n))
                        .map_err(|e| format!("send failed: {e}"))?;
                    in_flight.push_back(Instant::now());
                }
                None => taking = false,
            }
        }
        let Some(started) = in_flight.pop_front() else {
            return Ok(result);
        };
        result.ids.push(sent_id(connection.read_response())?);
        result.latencies.push(started.elapsed());
    }
}

/// A connection acting for `account`.
fn authenticated(server: &ServerAddr, account: &Account) -> Result<Connection, String> {
    let mut connection = connect(server)?;
    let response = connection
        .request(&Request::Authenticate {
            user: account.name.to_string(),
            token: Base64Bytes(account.token.clone()),
        })
        .map_err(|e| format!("authenticate failed: {e}"))?;
    match response {
        Response::Authenticated { .. } => Ok(connection),
        other => Err(format!("unexpected response {other:?}")),
    }
}

fn connect(server: &ServerAddr) -> Result<Connection, String> {
    // A benchmark on loopback: accept the server's certificate as on first use.
    Connection::open(
        server,
        TrustPolicy::FirstUse { pinned: None },
        DEFAULT_TIMEOUT,
    )
    .map_err(|e| e.to_string())
}

/// Register `name` with a fresh 2048-bit key and a prekey, and log in.
fn create_account(server: &ServerAddr, name: &str) -> Result<Account, Box<dyn std::error::Error>> {
    let name: UserName = name.parse()?;
    let name = &name;
    let key = PrivateKey::generate(2048)?;
    let prekey = AgreementSecret::generate()?;
    let signed_prekey = SignedPrekey::sign(PrekeyKind::Signed, name, 1, unix_now(), &prekey, &key)?;
    let public = key.public_key().to_der();
    let mut connection = connect(server)?;
    let digest = *connection.certificate_digest();
    let proof = key.sign(&signing::registration(&digest, name, &public))?;
    connection.request(&Request::Register {
        user: name.to_string(),
        public_key: Base64Bytes(public),
        signed_prekey,
        one_time_prekeys: Vec::new(),
        proof: Base64Bytes(proof),
    })?;
    let Response::LoginChallenge { nonce } = connection.request(&Request::Login {
        user: name.to_string(),
    })?
    else {
        return Err("login did not return a challenge".into());
    };
    let signature = key.sign(&signing::login(&digest, name, &nonce.0))?;
    let Response::LoggedIn { token, .. } = connection.request(&Request::LoginProof {
        signature: Base64Bytes(signature),
    })?
    else {
        return Err("the login proof was not accepted".into());
    };
    Ok(Account {
        name: name.clone(),
        key,
        prekey: RecipientPrekeys {
            signed: RecipientPrekey {
                id: 1,
                public_key: prekey.public_key()?,
            },
            one_time: None,
        },
        token: token.0,
    })
}

/// The machine's CPU time so far, from the first line of `/proc/stat`:
/// (busy, total) in clock ticks, busy being all but idle and I/O wait.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = fields.iter().sum();
    let waiting = fields.get(3)? + fields.get(4)?;
    Some((total - waiting, total))
}

/// When a run began, by the clock and by the machine's CPU time.
struct Stopwatch {
    started: Instant,
    cpu: Option<(u64, u64)>,
}

impl Stopwatch {
    fn start() -> Self {
        Self {
            started: Instant::now(),
            cpu: cpu_ticks(),
        }
    }

    /// The share (%) of the machine's CPU time since the start that was
    /// busy; `None` where `/proc/stat` cannot be read.
    fn cores_busy(&self) -> Option<f64> {
        let ((busy_then, total_then), (busy_now, total_now)) = (self.cpu?, cpu_ticks()?);
        let total = total_now.checked_sub(total_then).filter(|&t| t > 0)?;
        Some(100.0 * busy_now.saturating_sub(busy_then) as f64 / total as f64)
    }
}

fn report(options: &Options, stopwatch: &Stopwatch, latencies: &mut [Duration]) {
    let elapsed = stopwatch.started.elapsed();
    let cores_busy = stopwatch
        .cores_busy()
        .map_or_else(|| "-".to_owned(), |busy| format!("{busy:.0}%"));
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let index = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies
            .get(index)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let window = match options.mode {
        Mode::Oneshot | Mode::Wake => 1,
        Mode::Persistent => options.window,
    };
    println!(
        "mode={:?} clients={} window={window} messages={} seconds={:.3} rate={:.0} msg/s p50={:.3} ms p99={:.3} ms cores_busy={cores_busy}",
        options.mode,
        options.clients,
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.99),
    );
}

/// Fetch the recipients' whole queues: together they must hold exactly
/// the acknowledged ids, each once. Then acknowledge them all unless
/// `--keep`.
fn verify_exactly_once(
    options: &Options,
    recipients: &[Account],
    acknowledged: &[u64],
) -> Result<(), Box<dyn std::error::Error>> {
    let mut queued = Vec::with_capacity(acknowledged.len());
    for recipient in recipients {
        let mut connection = authenticated(&options.server[0], recipient)?;
        let mut held = Vec::new();
        let mut after = 0;
        loop {
            let response = connection.request(&Request::Fetch {
                after,
                limit: FETCH_PAGE,
                wait_ms: 0,
            })?;
            let Response::Messages { messages } = response else {
                return Err(format!("unexpected response {response:?}").into());
            };
            let Some(last) = messages.last() else { break };
            after = last.id;
            held.extend(messages.iter().map(|m| m.id));
        }
        if !options.keep {
            for chunk in held.chunks(FETCH_PAGE as usize) {
                connection.request(&Request::Ack {
                    ids: chunk.to_vec(),
                })?;
            }
        }
        queued.extend(held);
    }
    let expected: HashSet<u64> = acknowledged.iter().copied().collect();
    let found: HashSet<u64> = queued.iter().copied().collect();
    if expected.len() != acknowledged.len() || found.len() != queued.len() || expected != found {
        return Err(format!(
            "exactly-once check FAILED: {} acknowledged ({} distinct), {} queued ({} distinct)",
            acknowledged.len(),
            expected.len(),
            queued.len(),
            found.len()
        )
        .into());
    }
    println!(
        "verified: all {} acknowledged messages queued exactly once",
        queued.len()
    );
    Ok(())
}

/// How long the reader waits for each message before giving up.
const WAKE_WAIT_MS: u64 = 30_000;

/// The reader's head start, so that its `fetch` is waiting when the send
/// comes.
const WAKE_HEAD_START: Duration = Duration::from_millis(20);

/// `--messages` times: the reader (on the last server) waits, the sender
/// (on the first) sends one message; reports the time from the send's
/// acknowledgement to the reader's answer.
fn wake(
    options: &Options,
    sender: &Account,
    recipient: &Account,
    pool: &[Vec<u8>],
) -> Result<(), Box<dyn std::error::Error>> {
    let (sending_to, reading_from) = (
        &options.server[0],
        &options.server[options.server.len() - 1],
    );
    eprintln!(
        "{} messages sent through {sending_to}, each waking a reader on {reading_from}",
        options.messages
    );
    let mut sending = authenticated(sending_to, sender)?;
    let mut reading = authenticated(reading_from, recipient)?;
    let mut latencies = Vec::with_capacity(options.messages as usize);
    let stopwatch = Stopwatch::start();
    for n in 0..options.messages {
        reading.write_request(&Request::Fetch {
            after: 0,
            limit: FETCH_PAGE,
            wait_ms: WAKE_WAIT_MS,
        })?;
        std::thread::sleep(WAKE_HEAD_START);
        let id = sent_id(sending.request(&Request::Send {
            recipient: recipient.name.to_string(),
            envelope: Base64Bytes(pool[n as usize % pool.len()].clone()),
        }))?;
        let acknowledged = Instant::now();
        let Response::Messages { messages } = reading.read_response()? else {
            return Err("the waiting fetch was not answered with messages".into());
        };
        // Near zero when the answer came before the acknowledgement did.
        latencies.push(acknowledged.elapsed());
        if messages.iter().all(|message| message.id != id) {
            return Err(format!("the reader was woken without message {id}").into());
        }
        reading.request(&Request::Ack {
            ids: messages.iter().map(|message| message.id).collect(),
        })?;
    }
    report(options, &stopwatch, &mut latencies);
    Ok(())
}
