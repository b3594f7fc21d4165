//! `msgr serve`: bind the listening sockets (and the metrics endpoint's,
//! with `--metrics`), prepare the data directory (locked against a second
//! server) or the database several servers share (`--database`) and the
//! TLS material, announce the addresses, the
//! certificate fingerprint and the metrics address on stdout, then run
//! [`crate::server::run`] until SIGINT or SIGTERM; SIGHUP loads `--cert`
//! and `--key` again for new connections. Everything that can
//! fail at start-up fails here, before the first connection, with a hint;
//! what needs no disk (the limits, `--cert`/`--key`, the port) is checked
//! first, so that such a failure leaves nothing behind. Logs go to stderr
//! through `tracing` (set up by [`crate::cli::logging`] before this runs).

mod data_dir;
mod database;
mod listen;

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::{info, warn};

use crate::cli::args::{ServeArgs, StoreLocation};
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::server::tls::{self, ServerTls};
use crate::server::{self, Listeners, Metrics, Presenting, Store};

pub use data_dir::{LOCK_FILE, chosen as chosen_data_dir, lock as lock_data_dir};

/// Run the server until it is told to stop; exit status 0 after a clean
/// shutdown.
pub fn run(args: &ServeArgs) -> Result<(), AppError> {
    let limits = args.limits().map_err(Failure::Limit)?;
    let operator_tls = operator_tls(args)?;
    let sockets = listen::bind(&args.bind, args.port)?;
    let metrics_socket = args.metrics.map(listen::bind_metrics).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(start("start the async runtime"))?;
    // Signal handlers go in before the announcement, so that a signal
    // sent right after it is never missed.
    let (listeners, metrics_listener, shutdown, hangups) = {
        let _context = runtime.enter();
        let shutdown = shutdown_signal().map_err(start("install signal handlers"))?;
        let hangups = signal(SignalKind::hangup()).map_err(start("install signal handlers"))?;
        let listeners = sockets
            .into_iter()
            .map(tokio::net::TcpListener::from_std)
            .collect::<Result<Vec<_>, _>>()
            .map_err(start("use the listening socket"))?;
        let metrics_listener = metrics_socket
            .map(tokio::net::TcpListener::from_std)
            .transpose()
            .map_err(start("use the metrics socket"))?;
        (listeners, metrics_listener, shutdown, hangups)
    };
    let listeners = Listeners::new(listeners).expect("bind returns at least one socket");
    let metrics = Arc::new(Metrics::new());
    let (store, tls, lock): (Arc<dyn Store>, _, _) = match args.store.location() {
        StoreLocation::Database(url) => {
            let shared = database::open(url, operator_tls, metrics.batch_sizes())?;
            (Arc::new(shared.store), shared.tls, None)
        }
        StoreLocation::DataDir(dir) => {
            let data = data_dir::open(dir, operator_tls, metrics.batch_sizes())?;
            (Arc::new(data.store), data.tls, Some(data.lock))
        }
    };
    let presenting = Presenting::new(&tls);
    let operator_files = args.cert.clone().zip(args.key.clone());
    runtime.spawn(reload_on_hangup(
        hangups,
        presenting.clone(),
        operator_files,
    ));
    let fingerprint = &tls.fingerprint;
    let parts = server::Parts {
        tls: presenting,
        store,
        limits,
        clock: Arc::new(server::SystemClock),
        metrics,
        metrics_listener,
    };
    runtime.block_on(serve(listeners, fingerprint, parts, shutdown))?;
    // The database is closed once the runtime is gone; only then may
    // another server take the data directory.
    drop(runtime);
    drop(lock);
    info!("shut down cleanly");
    Ok(())
}

/// Inside the runtime: announce, then serve until `shutdown`.
async fn serve(
    listeners: Listeners,
    fingerprint: &str,
    parts: server::Parts,
    shutdown: impl Future<Output = ()>,
) -> AppResult<()> {
    let metrics = (parts.metrics_listener.as_ref())
        .map(tokio::net::TcpListener::local_addr)
        .transpose()
        .map_err(start("use the metrics socket"))?;
    announce(&listeners, fingerprint, metrics).map_err(AppError::stdout)?;
    server::run(listeners, parts, shutdown).await;
    Ok(())
}

/// The operator's `--cert` and `--key`, if given, loaded before anything
/// is written to disk.
fn operator_tls(args: &ServeArgs) -> AppResult<Option<ServerTls>> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => tls::from_files(cert, key)
            .map(Some)
            .map_err(|error| Failure::OperatorTls(error).into()),
        _ => Ok(None),
    }
}

/// The failure of a start-up step, `doing`, that needs no advice.
fn start(doing: &'static str) -> impl FnOnce(std::io::Error) -> Failure {
    move |source| Failure::Start { doing, source }
}

/// The lines scripts and tests read: each bound address (with the real
/// port when 0 was asked for), one line each, then the certificate
/// fingerprint, then (with `--metrics`) the metrics endpoint's address.
/// That comes last so that scripts reading the first lines read them as
/// before.
fn announce(
    listeners: &Listeners,
    fingerprint: &str,
    metrics: Option<SocketAddr>,
) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for address in listeners.local_addrs()? {
        writeln!(stdout, "msgr listening on {address}")?;
    }
    writeln!(stdout, "certificate fingerprint {fingerprint}")?;
    if let Some(address) = metrics {
        writeln!(stdout, "msgr metrics on http://{address}")?;
    }
    stdout.flush()
}

/// On each SIGHUP, load the operator's certificate and key (`files`)
/// again and present them to new connections; connections open go on with
/// the old one. Files that fail to load leave the certificate as it was,
/// and the log says why. A server using the data directory's own
/// certificate has nothing to reload.
async fn reload_on_hangup(
    mut hangups: Signal,
    presenting: Presenting,
    files: Option<(PathBuf, PathBuf)>,
) {
    while hangups.recv().await.is_some() {
        let Some((cert, key)) = &files else {
            info!("SIGHUP: nothing to reload; only a certificate given with --cert and --key is");
            continue;
        };
        match tls::from_files(cert, key) {
            Ok(tls) => {
                presenting.replace(&tls);
                info!(fingerprint = %tls.fingerprint, "SIGHUP: certificate reloaded for new connections");
            }
            Err(error) => {
                warn!(%error, "SIGHUP: certificate not reloaded; still presenting the one before");
            }
        }
    }
}

/// Completes on the first SIGINT or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        info!(signal = name, "shutting down");
    })
}
