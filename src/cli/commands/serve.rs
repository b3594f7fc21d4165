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
use crate::files;
use crate::server::sqlite::SqliteStore;
use crate::server::tls::{self, ServerTls};
use crate::server::{self, Limits, Store};

/// Run the server until it is told to stop; exit status 0 after a clean
/// shutdown.
pub fn run(args: &ServeArgs) -> Result<(), AppError> {
    let limits = args.limits().map_err(|error| {
        AppError::usage(error.to_string())
            .hint("see `msgr serve --help` for each limit's range and default")
    })?;
    let data_dir = prepare_data_dir(args)?;
    let store: Arc<dyn Store> = Arc::new(open_store(&data_dir)?);
    let tls = load_tls(args, &data_dir)?;
    let listener = bind(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| AppError::local(format!("cannot start the async runtime: {error}")))?;
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
    let shutdown = shutdown_signal()
        .map_err(|error| AppError::local(format!("cannot install signal handlers: {error}")))?;
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|error| AppError::local(format!("cannot use the listening socket: {error}")))?;
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
            .ok_or_else(|| {
                AppError::local("cannot determine the platform data directory")
                    .hint("pass --data-dir DIR")
            })?,
    };
    files::create_private_dir(&dir).map_err(|error| {
        AppError::local(format!(
            "cannot create the data directory {}: {}",
            dir.display(),
            error.source
        ))
        .hint("pass --data-dir with a directory you can write to")
    })?;
    // The data directory holds the TLS key and everyone's queued mail: if
    // group or others may enter it (it existed already), make it 0700.
    let was = files::restrict(&dir, files::FOLDER_MODE).map_err(|error| {
        AppError::local(format!(
            "cannot restrict the data directory {} to its owner: {}",
            dir.display(),
            error.source
        ))
        .hint("make it mode 0700 and owned by the user running msgr serve")
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
    SqliteStore::open(data_dir).map_err(|error| {
        AppError::local(format!(
            "cannot open the database in {}: {error}",
            data_dir.display()
        ))
        .hint("check that the directory is writable and that no newer msgr created the database")
    })
}

fn load_tls(args: &ServeArgs, data_dir: &Path) -> AppResult<ServerTls> {
    match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => tls::from_files(cert, key).map_err(|error| {
            AppError::local(error.to_string())
                .hint("give --cert a PEM certificate chain and --key its PEM private key")
        }),
        _ => tls::self_signed(data_dir).map_err(|error| {
            AppError::local(error.to_string()).hint(format!(
                "remove {} and {} from {} to make a new self-signed certificate \
                 (clients that pinned the old one must then accept the new fingerprint)",
                tls::CERT_FILE,
                tls::KEY_FILE,
                data_dir.display()
            ))
        }),
    }
}

fn bind(args: &ServeArgs) -> AppResult<std::net::TcpListener> {
    let address = (args.bind, args.port);
    let listener = std::net::TcpListener::bind(address).map_err(|error| {
        let failure = AppError::local(format!(
            "cannot listen on {}:{}: {error}",
            args.bind, args.port
        ));
        match error.kind() {
            std::io::ErrorKind::AddrInUse => failure
                .hint("stop the program using that port or choose another (0 picks a free one)"),
            std::io::ErrorKind::PermissionDenied => {
                failure.hint("ports below 1024 need privileges; choose a higher port")
            }
            std::io::ErrorKind::AddrNotAvailable => {
                failure.hint("--bind must be an address of this machine")
            }
            _ => failure,
        }
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|error| AppError::local(format!("cannot configure the socket: {error}")))?;
    Ok(listener)
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
