//! The server: an accept loop over the listeners it is given ([`run`],
//! [`Listeners`]), the admission of new connections (`admission`), one
//! task per connection (`peer`, framing in `connection`, requests in
//! `handler`), per-address rate limits (`ratelimit`), the limits
//! themselves ([`limits`]), the waking of waiting readers (`mailbox`), the
//! ended sessions that stop other connections acting (`session_ends`),
//! the storage contract ([`store`]) and its implementations with group
//! commit, on embedded SQLite ([`sqlite`]) and on a PostgreSQL database
//! several servers share ([`postgres`]), the TLS material ([`tls`]), the
//! clock sessions expire by ([`clock`]), and what is counted for the
//! operator with the HTTP endpoint that serves it ([`metrics`]).
//!
//! Shutdown follows mini-redis: when the shutdown future completes the loop
//! stops accepting and flips a watch channel; each connection finishes the
//! request it is serving and answers the `send`s it has read ahead, then
//! drops its receiver; [`run`] returns once all receivers are gone, so the
//! caller can close the store cleanly.

mod admission;
pub mod clock;
mod connection;
mod handler;
pub mod limits;
mod listeners;
mod mailbox;
pub mod metrics;
mod peer;
pub mod postgres;
mod ratelimit;
mod session_ends;
pub mod sqlite;
pub mod store;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{Instrument, info, info_span, warn};

pub use clock::{Clock, SystemClock};
pub use limits::Limits;
pub use listeners::Listeners;
pub use metrics::Metrics;
use store::Expired;
pub use store::Store;

use admission::Admission;
use ratelimit::RateLimiter;
pub use tls::Presenting;

/// Pause after a failed `accept` (such as running out of file
/// descriptors) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What every connection shares.
struct Context {
    /// The accounts, sessions and queues.
    store: Arc<dyn Store>,
    /// Sizes, timeouts, quotas and rates.
    limits: Limits,
    /// The certificate presented to new connections.
    tls: Presenting,
    /// Pending connections and service slots.
    admission: Arc<Admission>,
    /// Wakes readers waiting for new messages.
    mailboxes: Arc<mailbox::Mailboxes>,
    /// How often a waiting read looks again unwoken, when other servers
    /// queue messages too and their hints may be lost.
    recheck: Option<Duration>,
    /// `login` requests per source address.
    logins: RateLimiter,
    /// `register` requests per source address.
    registrations: RateLimiter,
    /// Unauthenticated `get_key` requests per source address.
    lookups: RateLimiter,
    /// The time sessions expire by.
    clock: Arc<dyn Clock>,
    /// Bytes of large frames being read or handled, server-wide
    /// ([`Limits::max_buffered_bytes`]).
    frame_budget: Arc<tokio::sync::Semaphore>,
    /// The accounts whose sessions were ended through this server.
    session_ends: session_ends::SessionEnds,
    /// What is counted for the operator.
    metrics: Arc<Metrics>,
}

/// What a server is made of: its TLS material, its storage, its limits
/// and the clock its sessions expire by.
pub struct Parts {
    /// The certificate presented, which may be replaced while it runs.
    pub tls: Presenting,
    /// The accounts, sessions and queues.
    pub store: Arc<dyn Store>,
    /// Sizes, timeouts, quotas and rates.
    pub limits: Limits,
    /// The time sessions expire by ([`SystemClock`] but in tests).
    pub clock: Arc<dyn Clock>,
    /// What is counted for the operator (the store may record into it
    /// too).
    pub metrics: Arc<Metrics>,
    /// Where to serve the metrics and the health check over plain HTTP,
    /// if anywhere (`serve --metrics`).
    pub metrics_listener: Option<tokio::net::TcpListener>,
}

/// Serve connections from `listeners` until `shutdown` completes, then
/// let open connections finish their current request and return.
pub async fn run(listeners: impl Into<Listeners>, parts: Parts, shutdown: impl Future) {
    let mut listeners = listeners.into();
    let Parts {
        tls,
        store,
        limits,
        clock,
        metrics,
        metrics_listener,
    } = parts;
    let mailboxes = Arc::new(mailbox::Mailboxes::default());
    let recheck = store.watch_arrivals(Arc::clone(&mailboxes) as _);
    let context = Arc::new(Context {
        store,
        mailboxes,
        recheck,
        clock,
        tls,
        admission: Admission::new(
            limits.max_pending,
            limits.max_connections,
            limits.max_connections_per_source,
        ),
        session_ends: session_ends::SessionEnds::default(),
        frame_budget: Arc::new(tokio::sync::Semaphore::new(
            usize::try_from(limits.max_buffered_bytes)
                .unwrap_or(usize::MAX)
                .min(tokio::sync::Semaphore::MAX_PERMITS),
        )),
        logins: RateLimiter::new(limits.logins),
        registrations: RateLimiter::new(limits.registrations),
        lookups: RateLimiter::new(limits.lookups),
        limits,
        metrics,
    });
    let (notify_shutdown, _) = watch::channel(false);
    tokio::spawn(expire(Arc::clone(&context), notify_shutdown.subscribe()));
    tokio::spawn(follow_revocations(
        Arc::clone(&context),
        notify_shutdown.subscribe(),
    ));
    if let Some(listener) = metrics_listener {
        tokio::spawn(metrics::endpoint::serve(
            listener,
            Arc::clone(&context),
            notify_shutdown.subscribe(),
        ));
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Always accept: admission, not the kernel backlog, decides who
        // waits, so that idle sockets cannot crowd real clients out.
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listeners.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        context.metrics.connection_accepted();
        // Requests and responses are single small writes; do not let
        // Nagle's algorithm hold them back.
        if let Err(error) = socket.set_nodelay(true) {
            warn!(%peer, %error, "cannot set TCP_NODELAY");
        }
        let pending = context.admission.admit();
        let connection = peer::handle(
            socket,
            peer,
            pending,
            Arc::clone(&context),
            notify_shutdown.subscribe(),
        );
        tokio::spawn(connection.instrument(info_span!("connection", %peer)));
    }
    drop(listeners);
    info!(
        open = notify_shutdown.receiver_count(),
        "no longer accepting; waiting for open connections to finish"
    );
    notify_shutdown.send_replace(true);
    notify_shutdown.closed().await;
}

/// How often the journal of ended sessions is read.
const REVOCATIONS_EVERY: Duration = Duration::from_secs(1);

/// Stop the connections acting with sessions that other processes on the
/// database ended (another server, an operator's command): read their
/// journal ([`Store::revocations_after`]) every [`REVOCATIONS_EVERY`], from
/// where it stood at start, until shutdown.
async fn follow_revocations(context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let read = |after: u64| {
        let store = Arc::clone(&context.store);
        async move {
            match tokio::task::spawn_blocking(move || store.revocations_after(after)).await {
                Ok(Ok(revocations)) => Some(revocations),
                Ok(Err(error)) => {
                    warn!(%error, "cannot read the journal of ended sessions");
                    None
                }
                Err(error) => {
                    warn!(%error, "cannot read the journal of ended sessions");
                    None
                }
            }
        }
    };
    let mut last = None;
    let mut ticks = tokio::time::interval(REVOCATIONS_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticks.tick() => {}
        }
        let Some(revocations) = read(last.unwrap_or(0)).await else {
            continue;
        };
        // What was journalled before this server started ended before any
        // of its connections began.
        if last.is_some() {
            for user in revocations.users {
                context.session_ends.ended_all(user);
            }
            let now = context.clock.now();
            for session in revocations.sessions {
                (context.session_ends).ended_one(session.token_hash, session.expires_at, now);
            }
        }
        last = Some(revocations.last);
    }
}

/// Delete what has outlived its use ([`Store::expire`]) at start and then
/// every [`Limits::expiry_interval`], until shutdown.
async fn expire(context: Arc<Context>, mut shutdown: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(context.limits.expiry_interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = ticks.tick() => {}
        }
        let now = context.clock.now();
        let max_age = context.limits.max_message_age.as_secs();
        let store = Arc::clone(&context.store);
        match tokio::task::spawn_blocking(move || store.expire(now, max_age)).await {
            Ok(Ok(expired)) if expired != Expired::default() => {
                context.metrics.messages_expired(expired.messages);
                info!(?expired, "expired");
            }
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%error, "cannot delete expired messages and prekeys"),
            Err(error) => warn!(%error, "cannot delete expired messages and prekeys"),
        }
    }
}
