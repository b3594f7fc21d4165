//! The operator's endpoint (`serve --metrics ADDR:PORT`): plain HTTP/1.1
//! (hyper) on a listener of its own, apart from the TLS port clients use.
//! `GET /metrics` answers the metrics in the OpenMetrics text format;
//! `GET /healthz` answers 200 `ok` when the store answers its check
//! ([`Store::check`]) within [`STORE_TIMEOUT`], and 503 with the reason
//! when it does not. `HEAD` is answered as `GET`; another method gets 405,
//! another path 404.
//!
//! It is meant for a scraper on loopback or a private network, but is
//! bounded all the same: at most [`MAX_CONNECTIONS`] at once (more are
//! closed at once), each for at most [`CONNECTION_LIFETIME`], and at most
//! one store operation at a time, so that a store that hangs cannot pile
//! up blocking threads however often it is asked.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, watch};
use tokio::time::timeout;
use tracing::{debug, warn};

use super::Snapshot;
use crate::server::store::{Store, StoreError};
use crate::server::{ACCEPT_RETRY, Context};

/// Most connections to the endpoint open at once.
const MAX_CONNECTIONS: usize = 16;

/// Time a request's header may take to arrive, the first or the next on a
/// kept-alive connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a connection to the endpoint stays open; a scraper that
/// keeps connections alive simply opens another.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// The longest the store may take to answer a check or a read of its
/// totals (including the wait for the one before it).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The content type of the OpenMetrics text format that
/// `prometheus-client` writes.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

const PLAIN_TEXT: &str = "text/plain; charset=utf-8";

/// Serve the endpoint on `listener` until shutdown.
pub(in crate::server) async fn serve(
    listener: TcpListener,
    context: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
) {
    let room = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let endpoint = Arc::new(Endpoint {
        context,
        store_calls: OneAtATime::new(STORE_TIMEOUT),
    });
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "metrics: accept failed");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
        };
        let Ok(place) = Arc::clone(&room).try_acquire_owned() else {
            debug!(%peer, "metrics: too many connections open; closing this one");
            continue;
        };
        let endpoint = Arc::clone(&endpoint);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let endpoint = Arc::clone(&endpoint);
                async move { Ok::<_, Infallible>(endpoint.answer(&request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(socket), service);
            match timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Ok(())) | Err(_) => {}
                Ok(Err(error)) => debug!(%peer, %error, "metrics: connection failed"),
            }
            drop(place);
        });
    }
}

/// What the endpoint's requests share.
struct Endpoint {
    context: Arc<Context>,
    /// The store operations of the endpoint: one at a time.
    store_calls: OneAtATime,
}

impl Endpoint {
    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path();
        if path != "/metrics" && path != "/healthz" {
            return text(
                StatusCode::NOT_FOUND,
                PLAIN_TEXT,
                "not found: the paths are /metrics and /healthz\n",
            );
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                PLAIN_TEXT,
                "method not allowed: use GET\n",
            );
            let allowed = HeaderValue::from_static("GET, HEAD");
            response.headers_mut().insert(ALLOW, allowed);
            return response;
        }
        match path {
            "/metrics" => self.scrape().await,
            _ => self.health().await,
        }
    }

    /// The metrics, with the store's totals read now.
    async fn scrape(&self) -> Response<Full<Bytes>> {
        let context = &self.context;
        let now = context.clock.now();
        let store = match self.with_store(move |store| store.stats(now)).await {
            Ok(stats) => Some(stats),
            Err(reason) => {
                warn!(%reason, "metrics: the store's totals are left out");
                None
            }
        };
        let snapshot = Snapshot {
            pending: context.admission.pending(),
            greeted: context.admission.greeted(),
            store,
            now,
        };
        text(
            StatusCode::OK,
            OPENMETRICS,
            context.metrics.render(&snapshot),
        )
    }

    /// 200 if the store answers its check in time, else 503 and why.
    async fn health(&self) -> Response<Full<Bytes>> {
        match self.with_store(|store| store.check()).await {
            Ok(()) => text(StatusCode::OK, PLAIN_TEXT, "ok\n"),
            Err(reason) => {
                warn!(%reason, "health check failed");
                let body = format!("unavailable: {reason}\n");
                text(StatusCode::SERVICE_UNAVAILABLE, PLAIN_TEXT, body)
            }
        }
    }

    /// Run `operation` on the store, one at a time, within
    /// [`STORE_TIMEOUT`]; or say why it failed.
    async fn with_store<T, F>(&self, operation: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = Arc::clone(&self.context.store);
        self.store_calls
            .run(move || operation(store.as_ref()))
            .await
    }
}

/// Blocking operations run one at a time, each on a blocking thread, and
/// waited for (the wait for the one before included) for at most a
/// deadline. One that overruns it keeps its turn until it returns, so
/// that however often they are asked for, at most one thread hangs.
struct OneAtATime {
    /// Held by the operation running, until it returns.
    turn: Arc<Mutex<()>>,
    deadline: Duration,
}

impl OneAtATime {
    fn new(deadline: Duration) -> Self {
        Self {
            turn: Arc::new(Mutex::new(())),
            deadline,
        }
    }

    /// `operation`'s result, or why there is none.
    async fn run<T, F>(&self, operation: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    {
        let turn = Arc::clone(&self.turn);
        let run = async move {
            let held = turn.lock_owned().await;
            tokio::task::spawn_blocking(move || {
                let _held = held;
                operation()
            })
            .await
        };
        match timeout(self.deadline, run).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(error))) => Err(error.to_string()),
            Ok(Err(error)) => Err(format!("the store's check failed: {error}")),
            Err(_) => Err(format!(
                "the store did not answer within {}",
                humantime::format_duration(self.deadline)
            )),
        }
    }
}

/// A response of `body` with `content_type`.
fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_that_hangs_is_reported_and_holds_one_thread_at_most() {
        let calls = OneAtATime::new(Duration::from_millis(300));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let hang = || {
            let (running, most) = (Arc::clone(&running), Arc::clone(&most));
            move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_secs(1));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        };
        let timed_out = Err("the store did not answer within 300ms".to_owned());
        assert_eq!(calls.run(hang()).await, timed_out);
        // Asked again while the first still hangs: no second thread.
        assert_eq!(calls.run(hang()).await, timed_out);
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // Once it has returned, the next one runs.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while running.load(Ordering::SeqCst) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "it never returned");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(calls.run(|| Ok(7)).await, Ok(7));
        let failed = calls.run(|| -> Result<(), _> { Err(StoreError::Corrupt("x".into())) });
        assert_eq!(failed.await, Err("database is inconsistent: x".to_owned()));
    }
}
