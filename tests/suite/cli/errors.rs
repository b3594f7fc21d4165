//! Every error the command line can report, as stderr shows it: each
//! variant of each layer's error and of the command line's own failures,
//! given sample values, goes through the one table and is compared with
//! `snapshots/errors.txt` — message, hint and exit status exactly. A new
//! variant does not compile until it has a label here; a changed text fails
//! until the snapshot is rewritten on purpose with
//! `MSGR_UPDATE_SNAPSHOTS=1 cargo test --test suite errors`.
//! (The tests beside this one check that real runs print these lines.)

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use msgr::cli::args::LimitError;
use msgr::cli::error::{AppError, ExitStatus};
use msgr::cli::failure::{Failure, Searched, StorePlace};
use msgr::client::error::ClientError;
use msgr::client::keyring::KeyringError;
use msgr::client::net::trust::ServerPin;
use msgr::client::net::{NetError, ServerAddr, TlsFailure};
use msgr::files::FileError;
use msgr::server::store::StoreError;
use msgr::server::tls::TlsError;
use msgr::wire::crypto::CryptoError;
use msgr::wire::envelope::EnvelopeError;
use msgr::wire::protocol::{ErrorCode, NameError, UserName};

use crate::common::{World, msgr_bare, snapshot};

const FINGERPRINT: &str = "SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU";
const OTHER_FINGERPRINT: &str = "SHA256:ypeBEsobvcr6wjGzmiPcTaeG7/gUfE5yuYB3ha/uSLs";
/// A PostgreSQL database as messages name it.
const SHARED: &str = "msgr@db.example.org:5432/msgr";

fn path(name: &str) -> PathBuf {
    PathBuf::from("/home/alice/.config/msgr/accounts/alice@localhost:12000").join(name)
}

/// The operating system's error `errno` (Linux numbering): its words come
/// from the C library, as in real runs, and not from the Rust release.
fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn refused() -> io::Error {
    os(111)
}

fn denied() -> io::Error {
    os(13)
}

/// Alice looked for on `127.0.0.1:12000`, in a keyring that exists or
/// not and holds her on the servers `elsewhere`.
fn searched(keyring_exists: bool, elsewhere: &[&str]) -> Searched {
    Searched {
        user: "Alice".to_owned(),
        server: "127.0.0.1:12000".to_owned(),
        keyring: PathBuf::from("/home/alice/.config/msgr"),
        keyring_exists,
        elsewhere: elsewhere.iter().map(|server| server.to_string()).collect(),
    }
}

fn name_error() -> NameError {
    "a b".parse::<UserName>().unwrap_err()
}

fn net_errors() -> Vec<NetError> {
    let server = || "localhost:12000".to_owned();
    let mut errors = vec![
        NetError::Connect {
            server: server(),
            source: refused(),
        },
        NetError::CertificateChanged {
            server: server(),
            pinned: ServerPin::Certificate(FINGERPRINT.into()),
            presented: OTHER_FINGERPRINT.into(),
        },
        NetError::TimedOut {
            server: "localhost:12000".into(),
            after: Duration::from_secs(30),
        },
        NetError::Closed,
        NetError::Io(os(110)),
        NetError::Protocol("the response is not JSON".into()),
    ];
    for failure in tls_failures() {
        errors.push(NetError::Tls {
            server: server(),
            failure,
        });
    }
    // What this server says for each code (the sample of a code covers
    // every one of its sentences: the hint comes from the code).
    for code in ErrorCode::ALL {
        let message = match code {
            ErrorCode::BadRequest => "malformed request: missing field `user`",
            ErrorCode::UnsupportedVersion => "this server speaks protocol version 3, not 2",
            ErrorCode::InvalidName => {
                "user name \"a b\" may only contain letters, digits, '.', '_' and '-'"
            }
            ErrorCode::NameTaken => "that name is registered already (letter case does not matter)",
            ErrorCode::KeyInUse => {
                "this key is registered under 3 account(s) on this server already"
            }
            ErrorCode::UnknownUser => "no such user on this server",
            ErrorCode::AuthRequired => "this request needs an authenticated connection",
            ErrorCode::AuthFailed => "the session has expired",
            ErrorCode::TooLarge => {
                "the message is 2000000 bytes, more than the 1048576 this server accepts"
            }
            ErrorCode::Busy => "the server is busy: no connection slot came free in time",
            ErrorCode::StorageFull => {
                "the server is running out of disk space and takes no messages now"
            }
            ErrorCode::MailboxFull => {
                "John's mailbox on this server is full, so the message was not sent"
            }
            ErrorCode::RateLimited => "too many login requests from your address",
            ErrorCode::Internal => "the server failed internally and did nothing",
        };
        errors.push(NetError::Server {
            code,
            message: message.into(),
            retry_after: (code == ErrorCode::RateLimited).then_some(42),
        });
    }
    errors
}

/// One sample of each way a TLS handshake fails.
fn tls_failures() -> Vec<TlsFailure> {
    vec![
        TlsFailure::NotTls,
        TlsFailure::NoTls13,
        TlsFailure::Closed,
        TlsFailure::TimedOut,
        TlsFailure::CaCertificate,
        TlsFailure::UnknownIssuer,
        TlsFailure::Expired {
            not_after: Some(1_764_028_800),
        },
        TlsFailure::NotYetValid { not_before: None },
        TlsFailure::WrongName {
            expected: "localhost".into(),
            presented: vec!["msgr.example.org".into(), "www.example.org".into()],
            more: 0,
        },
        TlsFailure::BadCertificate(
            "certificate does not allow extended key usage for server authentication".into(),
        ),
        TlsFailure::Alert("handshake_failure".into()),
        TlsFailure::Protocol("peer misbehaved: IllegalMiddleboxChangeCipherSpec".into()),
        TlsFailure::Io("Network is unreachable (os error 101)".into()),
    ]
}

fn keyring_errors() -> Vec<KeyringError> {
    vec![
        KeyringError::File(FileError {
            path: path("contacts.toml"),
            source: denied(),
        }),
        KeyringError::TooOpen {
            path: path("identity.pem"),
            mode: 0o644,
        },
        KeyringError::Corrupt {
            path: path("contacts.toml"),
            detail: "expected `=`".into(),
        },
        KeyringError::BadIdentity {
            path: path("identity.pem"),
            source: CryptoError::BadKey("unexpected end of input".into()),
        },
        KeyringError::WrongPassphrase {
            path: path("identity.pem"),
        },
    ]
}

// Long as a list is: one sample per variant.
fn client_errors() -> Vec<ClientError> {
    let s = |text: &str| text.to_owned();
    vec![
        ClientError::NotRegistered {
            user: s("Alice"),
            server: s("localhost:12000"),
        },
        ClientError::KeyRefused { user: s("Alice") },
        ClientError::NotOwnName {
            user: s("Alice"),
            answered: s("Mallory"),
        },
        ClientError::UnknownUser { name: s("Johnny") },
        ClientError::OtherAccount {
            asked: s("John"),
            answered: s("Mallory"),
        },
        ClientError::UnusableKey {
            name: s("John"),
            source: CryptoError::UnsupportedSize(1024),
        },
        ClientError::ForeignPrekey {
            name: s("John"),
            fingerprint: s(FINGERPRINT),
        },
        ClientError::UnexpectedKey {
            name: s("John"),
            offered: s(OTHER_FINGERPRINT),
            expected: s(FINGERPRINT),
        },
        ClientError::KeyChanged {
            name: s("John"),
            pinned: s(FINGERPRINT),
            offered: s(OTHER_FINGERPRINT),
        },
        ClientError::NotPinned { name: s("John") },
        ClientError::PinMismatch {
            server: s("localhost:12000"),
            pinned: ServerPin::Certificate(FINGERPRINT.into()),
            presented: s(OTHER_FINGERPRINT),
            known: PathBuf::from("/home/alice/.config/msgr/known_servers"),
        },
        ClientError::CaFile {
            path: PathBuf::from("ca.pem"),
            detail: s("it holds no PEM certificate"),
        },
        ClientError::NameTaken {
            user: s("Alice"),
            server: s("localhost:12000"),
        },
        ClientError::NameRefused {
            message: s("user name \"a b\" may only contain letters, digits, '.', '_' and '-'"),
        },
        ClientError::NoPrekey { name: s("John") },
        ClientError::TooLarge {
            size: 1_052_673,
            largest: 1_052_107,
        },
        ClientError::Seal(EnvelopeError::Malformed("body too large")),
        ClientError::Crypto {
            doing: "sign the login",
            source: CryptoError::Failed,
        },
        ClientError::EmptyPassphrase,
        ClientError::PassphrasesDiffer,
        ClientError::PassphraseFile {
            path: PathBuf::from("/home/alice/.msgr-pass"),
            source: os(2),
        },
        ClientError::PassphraseFileOpen {
            path: PathBuf::from("/home/alice/.msgr-pass"),
            mode: 0o644,
        },
        ClientError::NoConfigDir,
        ClientError::ConfigUnreadable {
            path: PathBuf::from("/home/alice/.config/msgr/config.toml"),
            source: denied(),
        },
        ClientError::ConfigInvalid {
            path: PathBuf::from("/home/alice/.config/msgr/config.toml"),
            detail: s("unknown field `colour`"),
        },
        ClientError::Signals(denied()),
        ClientError::NoTerminal,
        ClientError::ReconnectFailed {
            server: "localhost:12000".into(),
            within: Duration::from_secs(300),
            last: Box::new(ClientError::Net(NetError::Connect {
                server: "localhost:12000".into(),
                source: os(111),
            })),
        },
    ]
}

// Long as a list is: one sample per variant.
fn failures() -> Vec<Failure> {
    let s = |text: &str| text.to_owned();
    let data = || PathBuf::from("/var/lib/msgr");
    vec![
        Failure::CommandLine {
            message: s("unrecognized subcommand 'crate'"),
            tips: vec![s("some similar subcommands exist: 'rotate', 'create'")],
            usage: Some(s("msgr [OPTIONS] <COMMAND>")),
        },
        Failure::UnquotedMessage {
            recipients: s("John,Carol"),
            words: vec![s("Lunch"), s("at"), s("one?")],
        },
        Failure::NoServer,
        Failure::BadServer("localhost".parse::<ServerAddr>().unwrap_err()),
        Failure::NoUser,
        Failure::BadName(name_error()),
        Failure::NotAFingerprint(s("abc")),
        // The other forms of these (several servers, none, no keyring,
        // hostile folder names) are pinned by the tests in `accounts`.
        Failure::NoKey(searched(true, &[])),
        Failure::NotRegisteredHere(searched(true, &["localhost:12000"])),
        Failure::NotConfirmed {
            user: s("Alice"),
            why: "there is no terminal to confirm it at",
        },
        Failure::UnfinishedRotation {
            pending: path("identity.next.pem"),
        },
        Failure::AlreadyRegistered {
            user: s("Alice"),
            server: s("localhost:12000"),
            identity: path("identity.pem"),
        },
        Failure::KeyGeneration(CryptoError::UnsupportedSize(1024)),
        Failure::NotInSession("serve"),
        Failure::NoTerminal,
        Failure::Terminal("Input/output error (os error 5)".into()),
        Failure::EmptyBody,
        Failure::StdinTooLarge {
            limit: 64 * 1024 * 1024,
        },
        Failure::Stdin(io::Error::new(
            io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )),
        Failure::SentToNobody {
            missed: s("John and Carol"),
            status: ExitStatus::UnknownUser,
        },
        Failure::Partial {
            reached: s("John"),
            missed: s("Carol"),
        },
        Failure::NotVerified(2),
        Failure::OutDirNotPrivate {
            dir: PathBuf::from("/tmp"),
            why: "is writable by others",
        },
        Failure::NoSuchCommand {
            name: s("send"),
            commands: s("register, login, create, read"),
        },
        Failure::ManualPage(os(12)),
        Failure::Stdout(os(32)),
        Failure::Limit(LimitError {
            flag: "--idle-timeout",
            problem: s("must be at least 1"),
        }),
        Failure::NoDataDir,
        Failure::NoDatabase { dir: data() },
        Failure::NoSuchAccount {
            name: s("Mallory"),
            store: StorePlace::DataDir(data()),
        },
        Failure::BackupExists {
            file: PathBuf::from("/backups/msgr.db"),
        },
        Failure::BackupOfSharedDatabase { target: s(SHARED) },
        Failure::DatabaseNotEmpty { target: s(SHARED) },
        Failure::CreateDataDir {
            dir: data(),
            source: denied(),
        },
        Failure::DataDirInUse {
            dir: data(),
            lock: data().join("lock"),
            pid: Some(4242),
        },
        Failure::LockDataDir {
            lock: data().join("lock"),
            source: denied(),
        },
        Failure::RestrictDataDir {
            dir: data(),
            source: denied(),
        },
        Failure::OpenStore {
            dir: data(),
            source: StoreError::Setup(s("the database was made by a newer msgr (schema 9)")),
        },
        Failure::StoreFailed {
            store: StorePlace::Database(s(SHARED)),
            source: StoreError::Unavailable(s(
                "no database connection became free within 30 seconds",
            )),
        },
        Failure::OperatorTls(TlsError::Cert {
            path: PathBuf::from("cert.pem"),
            reason: s("it holds no PEM certificate"),
        }),
        Failure::SelfSignedTls {
            dir: data(),
            source: TlsError::Key {
                path: data().join("key.pem"),
                reason: s("it holds no PEM private key"),
            },
        },
        Failure::OpenSharedStore(StoreError::Setup(s(
            "cannot reach PostgreSQL at msgr@db.example.org:5432/msgr: connection refused",
        ))),
        Failure::SharedTls(TlsError::Stored(s("it holds no PEM private key"))),
        Failure::Resolve {
            host: s("msgr.example.org"),
            source: io::Error::other(
                "failed to lookup address information: Name or service not known",
            ),
        },
        Failure::Listen {
            address: s("0.0.0.0:12000"),
            source: os(98),
        },
        Failure::MetricsListen {
            address: ([127, 0, 0, 1], 9464).into(),
            source: os(98),
        },
        Failure::Start {
            doing: "install signal handlers",
            source: denied(),
        },
    ]
}

/// Each failure's variant, spelt out; exhaustive, so a new variant needs
/// a sample above before this compiles.
fn failure_label(failure: &Failure) -> &'static str {
    match failure {
        Failure::CommandLine { .. } => "CommandLine",
        Failure::UnquotedMessage { .. } => "UnquotedMessage",
        Failure::NoServer => "NoServer",
        Failure::BadServer(_) => "BadServer",
        Failure::NoUser => "NoUser",
        Failure::BadName(_) => "BadName",
        Failure::NotAFingerprint(_) => "NotAFingerprint",
        Failure::NoKey { .. } => "NoKey",
        Failure::NotRegisteredHere { .. } => "NotRegisteredHere",
        Failure::NotConfirmed { .. } => "NotConfirmed",
        Failure::UnfinishedRotation { .. } => "UnfinishedRotation",
        Failure::AlreadyRegistered { .. } => "AlreadyRegistered",
        Failure::KeyGeneration(_) => "KeyGeneration",
        Failure::Stdin(_) => "Stdin",
        Failure::NotInSession(_) => "NotInSession",
        Failure::NoTerminal => "NoTerminal",
        Failure::Terminal(_) => "Terminal",
        Failure::EmptyBody => "EmptyBody",
        Failure::StdinTooLarge { .. } => "StdinTooLarge",
        Failure::SentToNobody { .. } => "SentToNobody",
        Failure::Partial { .. } => "Partial",
        Failure::NotVerified(_) => "NotVerified",
        Failure::OutDirNotPrivate { .. } => "OutDirNotPrivate",
        Failure::NoSuchCommand { .. } => "NoSuchCommand",
        Failure::ManualPage(_) => "ManualPage",
        Failure::Stdout(_) => "Stdout",
        Failure::Limit(_) => "Limit",
        Failure::NoDataDir => "NoDataDir",
        Failure::NoDatabase { .. } => "NoDatabase",
        Failure::NoSuchAccount { .. } => "NoSuchAccount",
        Failure::BackupExists { .. } => "BackupExists",
        Failure::BackupOfSharedDatabase { .. } => "BackupOfSharedDatabase",
        Failure::DatabaseNotEmpty { .. } => "DatabaseNotEmpty",
        Failure::CreateDataDir { .. } => "CreateDataDir",
        Failure::DataDirInUse { .. } => "DataDirInUse",
        Failure::LockDataDir { .. } => "LockDataDir",
        Failure::RestrictDataDir { .. } => "RestrictDataDir",
        Failure::OpenStore { .. } => "OpenStore",
        Failure::StoreFailed { .. } => "StoreFailed",
        Failure::OperatorTls(_) => "OperatorTls",
        Failure::SelfSignedTls { .. } => "SelfSignedTls",
        Failure::OpenSharedStore(_) => "OpenSharedStore",
        Failure::SharedTls(_) => "SharedTls",
        Failure::Resolve { .. } => "Resolve",
        Failure::Listen { .. } => "Listen",
        Failure::MetricsListen { .. } => "MetricsListen",
        Failure::Start { .. } => "Start",
    }
}

/// Each client error's variant, spelt out; exhaustive like
/// [`failure_label`].
fn client_label(error: &ClientError) -> String {
    let name = match error {
        ClientError::Net(net) => return format!("Net::{}", net_label(net)),
        ClientError::Keyring(keyring) => return format!("Keyring::{}", keyring_label(keyring)),
        ClientError::NotRegistered { .. } => "NotRegistered",
        ClientError::KeyRefused { .. } => "KeyRefused",
        ClientError::NotOwnName { .. } => "NotOwnName",
        ClientError::UnknownUser { .. } => "UnknownUser",
        ClientError::OtherAccount { .. } => "OtherAccount",
        ClientError::UnusableKey { .. } => "UnusableKey",
        ClientError::ForeignPrekey { .. } => "ForeignPrekey",
        ClientError::UnexpectedKey { .. } => "UnexpectedKey",
        ClientError::KeyChanged { .. } => "KeyChanged",
        ClientError::NotPinned { .. } => "NotPinned",
        ClientError::PinMismatch { .. } => "PinMismatch",
        ClientError::CaFile { .. } => "CaFile",
        ClientError::NameTaken { .. } => "NameTaken",
        ClientError::NameRefused { .. } => "NameRefused",
        ClientError::NoPrekey { .. } => "NoPrekey",
        ClientError::TooLarge { .. } => "TooLarge",
        ClientError::Seal(_) => "Seal",
        ClientError::Crypto { .. } => "Crypto",
        ClientError::EmptyPassphrase => "EmptyPassphrase",
        ClientError::PassphrasesDiffer => "PassphrasesDiffer",
        ClientError::PassphraseFile { .. } => "PassphraseFile",
        ClientError::PassphraseFileOpen { .. } => "PassphraseFileOpen",
        ClientError::NoConfigDir => "NoConfigDir",
        ClientError::ConfigUnreadable { .. } => "ConfigUnreadable",
        ClientError::ConfigInvalid { .. } => "ConfigInvalid",
        ClientError::Signals(_) => "Signals",
        ClientError::NoTerminal => "NoTerminal",
        ClientError::ReconnectFailed { .. } => "ReconnectFailed",
    };
    name.to_owned()
}

fn keyring_label(error: &KeyringError) -> &'static str {
    match error {
        KeyringError::File(_) => "File",
        KeyringError::TooOpen { .. } => "TooOpen",
        KeyringError::Corrupt { .. } => "Corrupt",
        KeyringError::BadIdentity { .. } => "BadIdentity",
        KeyringError::WrongPassphrase { .. } => "WrongPassphrase",
    }
}

fn net_label(error: &NetError) -> String {
    let name = match error {
        NetError::Connect { .. } => "Connect",
        NetError::CertificateChanged { .. } => "CertificateChanged",
        NetError::Tls { failure, .. } => return format!("Tls({})", tls_label(failure)),
        NetError::TimedOut { .. } => "TimedOut",
        NetError::Closed => "Closed",
        NetError::Io(_) => "Io",
        NetError::Protocol(_) => "Protocol",
        NetError::Server { code, .. } => return format!("Server({})", code.as_str()),
    };
    name.to_owned()
}

fn tls_label(failure: &TlsFailure) -> &'static str {
    match failure {
        TlsFailure::NotTls => "NotTls",
        TlsFailure::NoTls13 => "NoTls13",
        TlsFailure::Closed => "Closed",
        TlsFailure::TimedOut => "TimedOut",
        TlsFailure::CaCertificate => "CaCertificate",
        TlsFailure::UnknownIssuer => "UnknownIssuer",
        TlsFailure::Expired { .. } => "Expired",
        TlsFailure::NotYetValid { .. } => "NotYetValid",
        TlsFailure::WrongName { .. } => "WrongName",
        TlsFailure::BadCertificate(_) => "BadCertificate",
        TlsFailure::Alert(_) => "Alert",
        TlsFailure::Protocol(_) => "Protocol",
        TlsFailure::Io(_) => "Io",
    }
}

/// `label`, the exit status, the stderr line of `error`, and the wait
/// JSON mode adds as `retry_after` if there is one.
fn entry(label: &str, error: AppError) -> String {
    let status = error.status();
    let mut entry = format!(
        "{label}\n  exit {} ({})\n  msgr: {error}\n",
        status as u8,
        status.code()
    );
    if let Some(seconds) = error.retry_after() {
        entry += &format!("  retry_after {seconds}\n");
    }
    entry
}

fn rendered() -> String {
    let mut out = String::new();
    for failure in failures() {
        let label = format!("Failure::{}", failure_label(&failure));
        out += &entry(&label, failure.into());
    }
    for error in client_errors() {
        let label = format!("Client::{}", client_label(&error));
        out += &entry(&label, error.into());
    }
    for error in keyring_errors() {
        let label = format!("Keyring::{}", keyring_label(&error));
        out += &entry(&label, error.into());
    }
    for error in net_errors() {
        let label = format!("Net::{}", net_label(&error));
        out += &entry(&label, error.into());
    }
    let file = FileError {
        path: PathBuf::from("out/john-0102"),
        source: denied(),
    };
    out += &entry("File", file.into());
    out
}

#[test]
fn every_error_reads_as_the_snapshot_says() {
    if let Some(difference) = snapshot::differs("errors.txt", &rendered()) {
        panic!("{difference}");
    }
}

#[test]
fn every_variant_has_one_sample() {
    let text = rendered();
    let labels: Vec<&str> = text.lines().filter(|l| !l.starts_with(' ')).collect();
    let mut unique = labels.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), labels.len(), "a variant is sampled twice");
}

/// The exit status and stderr the snapshot holds for `label`.
fn snapshot_entry(label: &str) -> (i32, String) {
    let text = rendered();
    let mut lines = text.lines();
    lines
        .position(|line| line == label)
        .unwrap_or_else(|| panic!("no {label} in the samples"));
    let status = lines.next().expect("an exit line follows");
    let status = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let line = lines.next().expect("a message line follows");
    (status, format!("{}\n", line.trim_start()))
}

/// Real runs print the very lines the snapshot pins, for the errors whose
/// samples are what a run produces.
#[test]
fn real_runs_print_the_snapshot_lines() {
    let world = World::new();
    world.register("Alice");
    let cases: [(&str, Vec<&str>); 5] = [
        ("Failure::NoServer", vec!["--user", "Alice", "read"]),
        (
            "Failure::NoUser",
            vec!["--server", "localhost:12000", "read"],
        ),
        (
            "Failure::BadName",
            vec!["--server", "localhost:12000", "--user", "a b", "read"],
        ),
        (
            "Failure::NotAFingerprint",
            vec!["key", "John", "--expect", "abc"],
        ),
        ("Client::UnknownUser", vec!["key", "Johnny"]),
    ];
    for (label, args) in cases {
        let mut command = if args.contains(&"key") {
            world.msgr("Alice")
        } else {
            let mut bare = msgr_bare();
            bare.arg("--config-dir").arg(world.config_dir("Alice"));
            bare
        };
        let output = command.args(&args).output().unwrap();
        let (status, stderr) = snapshot_entry(label);
        assert_eq!(String::from_utf8_lossy(&output.stderr), stderr, "{args:?}");
        assert_eq!(output.status.code(), Some(status), "{args:?}");
    }
}
