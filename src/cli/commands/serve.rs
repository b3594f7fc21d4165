//! `msgr serve`: prepare the data directory, database, TLS material and
//! listening socket, announce the address and certificate fingerprint on
//! stdout, then run [`crate::server::run`] until SIGINT or SIGTERM.
//! Everything that can fail at start-up fails here, before the first
//! connection, with a hint; logs go to stderr through `tracing` (set up by
//! [`crate::cli::logging`] before this runs).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tracing::{info, warn};

use crate::cli::args::ServeArgs;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::files;
use crate::server::sqlite::SqliteStore;
use crate::server::tls::{self, ServerTls};
use crate::server::{self, Limits, Store};

/// Run the server until it is told to stop; exit status 0 after a clean
/// shutdown.
pub fn run(args: &ServeArgs) -> Result<(), AppError> {
    let limits = args.limits().map_err(Failure::Limit)?;
    let data_dir = prepare_data_dir(args)?;
    let store: Arc<dyn Store> = Arc::new(open_store(&data_dir)?);
    let tls = load_tls(args, &data_dir)?;
    let listener = bind(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(start("start the async runtime"))?;
    runtime.block_on(serve(listener, tls, store, limits))?;
    drop(runtime);
    info!("shut down cleanly");
    Ok(())
}

/// Inside the runtime: install signal handlers before announcing, so a
/// signal sent right after the announcement is never missed.
async fn serve(
    listener: std::net::TcpListener,
    tls: ServerTls,
    store: Arc<dyn Store>,
    limits: Limits,
) -> AppResult<()> {
    let shutdown = shutdown_signal().map_err(start("install signal handlers"))?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(start("use the listening socket"))?;
    announce(&listener, &tls.fingerprint).map_err(AppError::stdout)?;
    let parts = server::Parts {
        tls,
        store,
        limits,
        clock: Arc::new(server::SystemClock),
    };
    server::run(listener, parts, shutdown).await;
    Ok(())
}

/// The data directory, created with mode 0700 if missing.
fn prepare_data_dir(args: &ServeArgs) -> AppResult<PathBuf> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => directories::ProjectDirs::from("", "", "msgr")
            .map(|dirs| dirs.data_dir().to_owned())
            .ok_or(Failure::NoDataDir)?,
    };
    files::create_private_dir(&dir).map_err(|error| Failure::CreateDataDir {
        dir: dir.clone(),
        source: error.source,
    })?;
    // The data directory holds the TLS key and everyone's queued mail: if
    // group or others may enter it (it existed already), make it 0700.
    let was =
        files::restrict(&dir, files::FOLDER_MODE).map_err(|error| Failure::RestrictDataDir {
            dir: dir.clone(),
            source: error.source,
        })?;
    if let Some(mode) = was {
        warn!(
            dir = %dir.display(),
            was = format!("{mode:o}"),
            "the data directory was open to other users; restricted it to its owner (0700)"
        );
    }
    Ok(dir)
}

fn open_store(data_dir: &Path) -> AppResult<SqliteStore> {
    SqliteStore::open(data_dir).map_err(|source| {
        Failure::OpenStore {
            dir: data_dir.to_owned(),
            source,
        }
        .into()
    })
}

fn load_tls(args: &ServeArgs, data_dir: &Path) -> AppResult<ServerTls> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            tls::from_files(cert, key).map_err(|error| Failure::OperatorTls(error).into())
        }
        _ => tls::self_signed(data_dir).map_err(|source| {
            Failure::SelfSignedTls {
                dir: data_dir.to_owned(),
                source,
            }
            .into()
        }),
    }
}

fn bind(args: &ServeArgs) -> AppResult<std::net::TcpListener> {
    let address = (args.bind, args.port);
    let listener = std::net::TcpListener::bind(address).map_err(|source| Failure::Listen {
        address: format!("{}:{}", args.bind, args.port),
        source,
    })?;
    listener
        .set_nonblocking(true)
        .map_err(start("configure the socket"))?;
    Ok(listener)
}

/// The failure of a start-up step, `doing`, that needs no advice.
fn start(doing: &'static str) -> impl FnOnce(std::io::Error) -> Failure {
    move |source| Failure::Start { doing, source }
}

/// The two lines scripts and tests read: the bound address (with the real
/// port when 0 was asked for) and the certificate fingerprint.
fn announce(listener: &tokio::net::TcpListener, fingerprint: &str) -> std::io::Result<()> {
    let address = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "msgr listening on {address}")?;
    writeln!(stdout, "certificate fingerprint {fingerprint}")?;
    stdout.flush()
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
