//! The client's connection to a server: TCP with TCP_NODELAY, TLS 1.3 with
//! the verification policy of [`trust`], the version exchange, and framed
//! requests. Requests may be pipelined: [`Connection::write_request`]
//! queues one and [`Connection::read_response`] sends what is queued and
//! reads the next answer, so several requests share one flight; the
//! `hello` itself leaves with the handshake's last flight and is answered
//! with the first response read. Error responses from the server become
//! [`NetError::Server`] in one place, [`Connection::read_response`].
//! Connecting (TCP and TLS together) and each response must finish within
//! the timeout, however slowly the server trickles its bytes; a request
//! the server may hold (a waiting `fetch`) gets that much longer, and a
//! [`Canceller`] can end the connection from another thread.

mod address;
mod tls;
pub mod trust;

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use thiserror::Error;
use tracing::{debug, info};

use crate::wire::crypto::sha256;
use crate::wire::protocol::{
    CLIENT_MAX_FRAME, ErrorCode, FrameError, MAX_RETRY_AFTER, PROTOCOL_VERSION, Request, Response,
    decode_frame, printable,
};
use crate::wire::signing::CertificateDigest;

pub use address::{AddrError, ServerAddr};
pub use tls::TlsFailure;
use trust::{ServerPin, TrustOutcome, TrustPolicy, Verifier};

/// How long connecting, and then each response, may take unless the user
/// says otherwise (`--timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Failures talking to the server.
#[derive(Debug, Error)]
pub enum NetError {
    /// No address of the server accepted a TCP connection.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server as given.
        server: String,
        /// The last connection error.
        source: io::Error,
    },
    /// The server's certificate is not the one pinned.
    #[error("the certificate of {server} is not the one pinned")]
    CertificateChanged {
        /// The server as given.
        server: String,
        /// The pin on record.
        pinned: ServerPin,
        /// Fingerprint presented now.
        presented: String,
    },
    /// The TLS handshake failed (including certificate verification).
    #[error("{}", .failure.sentence(.server))]
    Tls {
        /// The server as given.
        server: String,
        /// Why.
        failure: TlsFailure,
    },
    /// Connecting, or a response, took longer than the timeout.
    #[error("timed out after {} waiting for {server}", seconds(*.after))]
    TimedOut {
        /// The server as given.
        server: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The server closed the connection before answering (it may be
    /// restarting).
    #[error("the server closed the connection")]
    Closed,
    /// The connection broke.
    #[error("connection to the server failed: {0}")]
    Io(#[from] io::Error),
    /// The server sent something that is not valid protocol.
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    /// The server answered with an error response.
    #[error("{message}")]
    Server {
        /// Machine-readable reason.
        code: ErrorCode,
        /// The server's sentence, with control and bidirectional-formatting
        /// characters made visible.
        message: String,
        /// For `rate_limited`: the seconds to wait that the server gave,
        /// bounded to 1 to [`MAX_RETRY_AFTER`].
        retry_after: Option<u64>,
    },
}

/// An open, verified connection; the version exchange is completed with
/// the first response read.
pub struct Connection {
    tls: StreamOwned<ClientConnection, TcpStream>,
    buffer: Vec<u8>,
    /// Largest envelope the server accepts, once its `hello` has been read.
    max_envelope: Option<u64>,
    new_pin: Option<ServerPin>,
    /// SHA-256 of the certificate the server presented.
    certificate_digest: CertificateDigest,
    /// The server as given, for errors.
    server: String,
    /// How long each response may take.
    timeout: Duration,
}

impl Connection {
    /// Connect to `server` within `timeout` and verify it under `policy`;
    /// `hello` is queued. Each response must then come within `timeout`.
    pub fn open(
        server: &ServerAddr,
        policy: TrustPolicy,
        timeout: Duration,
    ) -> Result<Self, NetError> {
        let deadline = Instant::now() + timeout;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(Verifier::new(policy, provider.clone()));
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("TLS 1.3 is supported by the provider")
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let mut session = ClientConnection::new(Arc::new(config), server.server_name())
            .map_err(|e| NetError::Protocol(e.to_string()))?;
        // Queued requests are held whole until the next flush; they are
        // already in memory as frames, so no limit is needed.
        session.set_buffer_limit(None);
        // Held until the handshake completes (after verification), then
        // sent with the client's last handshake flight.
        session.writer().write_all(
            &Request::Hello {
                version: PROTOCOL_VERSION,
            }
            .to_frame(),
        )?;
        let socket = connect_tcp(server, timeout, deadline)?;
        debug!(%server, "TCP connected; TLS handshake");
        let mut tls = StreamOwned::new(session, socket);
        while tls.conn.is_handshaking() {
            match exchange(&mut tls, deadline) {
                Ok(0) => {
                    return Err(NetError::Tls {
                        server: server.to_string(),
                        failure: TlsFailure::Closed,
                    });
                }
                Ok(_) => {}
                Err(source) if is_timeout(&source) => {
                    return Err(NetError::TimedOut {
                        server: server.to_string(),
                        after: timeout,
                    });
                }
                Err(source) => {
                    return Err(match verifier.outcome() {
                        Some(TrustOutcome::Changed { pinned, presented }) => {
                            NetError::CertificateChanged {
                                server: server.to_string(),
                                pinned,
                                presented,
                            }
                        }
                        _ => NetError::Tls {
                            server: server.to_string(),
                            failure: TlsFailure::of(&source),
                        },
                    });
                }
            }
        }
        let new_pin = match verifier.outcome() {
            Some(TrustOutcome::NewPin(pin)) => Some(pin),
            _ => None,
        };
        let certificate_digest = match tls.conn.peer_certificates() {
            Some([end_entity, ..]) => sha256(end_entity.as_ref()),
            _ => return Err(NetError::Protocol("the server sent no certificate".into())),
        };
        debug!(%server, "TLS established");
        Ok(Self {
            tls,
            buffer: Vec::new(),
            max_envelope: None,
            new_pin,
            certificate_digest,
            server: server.to_string(),
            timeout,
        })
    }

    /// A handle that can end this connection from another thread, waking
    /// a request blocked on the server.
    pub fn canceller(&self) -> io::Result<Canceller> {
        Ok(Canceller(self.tls.sock.try_clone()?))
    }

    /// Whether the connection still looks usable between requests: the
    /// server has not closed it, nor sent anything unasked (which between
    /// requests can only come before a close), as far as can be told
    /// without waiting. What has arrived is taken in.
    pub fn is_open(&mut self) -> bool {
        if !self.buffer.is_empty() || self.tls.sock.set_nonblocking(true).is_err() {
            return false;
        }
        let (conn, sock) = (&mut self.tls.conn, &mut self.tls.sock);
        let open = loop {
            match retrying_interrupted(|| conn.read_tls(sock)) {
                Ok(0) => break false,
                Ok(_) => match conn.process_new_packets() {
                    Ok(state) if state.peer_has_closed() || state.plaintext_bytes_to_read() > 0 => {
                        break false;
                    }
                    Ok(_) => {}
                    Err(_) => break false,
                },
                Err(error) => break error.kind() == io::ErrorKind::WouldBlock,
            }
        };
        sock.set_nonblocking(false).is_ok() && open
    }

    /// The server as given.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// What to pin if this was the first contact with the server.
    pub fn new_pin(&self) -> Option<&ServerPin> {
        self.new_pin.as_ref()
    }

    /// SHA-256 of the server's certificate, which login and registration
    /// statements are bound to.
    pub fn certificate_digest(&self) -> &CertificateDigest {
        &self.certificate_digest
    }

    /// Largest envelope the server accepts (reading its `hello` if that
    /// has not been read yet).
    pub fn max_envelope(&mut self) -> Result<u64, NetError> {
        match self.max_envelope {
            Some(max_envelope) => Ok(max_envelope),
            None => self.greeting(),
        }
    }

    /// Send one request and wait for its response; error responses become
    /// [`NetError::Server`]. Requests queued before it must have been
    /// answered.
    pub fn request(&mut self, request: &Request) -> Result<Response, NetError> {
        self.write_request(request)?;
        self.read_response()
    }

    /// Queue `request` without waiting: it is sent with the next flush, and
    /// its response is the one [`read_response`](Self::read_response)
    /// returns after those of the requests queued before it.
    pub fn write_request(&mut self, request: &Request) -> Result<(), NetError> {
        self.tls.conn.writer().write_all(&request.to_frame())?;
        Ok(())
    }

    /// Send what is queued without waiting for answers.
    pub fn flush(&mut self) -> Result<(), NetError> {
        self.tls.flush().map_err(|e| self.failed(e))
    }

    /// Send what is queued and read the next response; error responses
    /// become [`NetError::Server`].
    pub fn read_response(&mut self) -> Result<Response, NetError> {
        self.read_response_within(self.timeout)
    }

    /// [`read_response`](Self::read_response), the response allowed to
    /// take `allowed`.
    fn read_response_within(&mut self, allowed: Duration) -> Result<Response, NetError> {
        self.max_envelope()?;
        match self.read_frame(allowed)? {
            Response::Error {
                code,
                message,
                retry_after,
            } => Err(server_error(code, &message, retry_after)),
            response => Ok(response),
        }
    }

    /// [`request`](Self::request) for a request the server may hold for
    /// up to `held` before answering; the read timeout grows to match.
    pub fn request_held(
        &mut self,
        request: &Request,
        held: Duration,
    ) -> Result<Response, NetError> {
        self.write_request(request)?;
        self.read_response_held(held)
    }

    /// [`read_response`](Self::read_response) for a request the server may
    /// hold for up to `held`.
    pub fn read_response_held(&mut self, held: Duration) -> Result<Response, NetError> {
        self.read_response_within(self.timeout + held)
    }

    /// [`read_response_held`](Self::read_response_held), unless `wake`
    /// becomes readable before the answer is complete: then `Ok(None)`,
    /// and what has arrived of the answer stays for the next read. The
    /// socket and `wake` are waited on together, so a thread blocked here
    /// is woken by a write to `wake` without the connection being touched
    /// from elsewhere.
    pub fn read_response_held_unless(
        &mut self,
        held: Duration,
        wake: BorrowedFd<'_>,
    ) -> Result<Option<Response>, NetError> {
        self.max_envelope()?;
        match self.read_frame_unless(self.timeout + held, Some(wake))? {
            None => Ok(None),
            Some(Response::Error {
                code,
                message,
                retry_after,
            }) => Err(server_error(code, &message, retry_after)),
            Some(response) => Ok(Some(response)),
        }
    }

    /// Read the answer to the `hello` queued by [`open`](Self::open).
    fn greeting(&mut self) -> Result<u64, NetError> {
        match self.read_frame(self.timeout)? {
            Response::Hello { max_envelope, .. } => {
                info!(max_envelope, "connected");
                self.max_envelope = Some(max_envelope);
                Ok(max_envelope)
            }
            Response::Error {
                code,
                message,
                retry_after,
            } => Err(server_error(code, &message, retry_after)),
            other => Err(unexpected(&other)),
        }
    }

    /// Flush, then read one response frame, which must come whole within
    /// `allowed`.
    fn read_frame(&mut self, allowed: Duration) -> Result<Response, NetError> {
        Ok(self
            .read_frame_unless(allowed, None)?
            .expect("only a wake ends a read early"))
    }

    /// [`read_frame`](Self::read_frame), or `None` as soon as `wake` is
    /// readable while the frame is not yet whole.
    fn read_frame_unless(
        &mut self,
        allowed: Duration,
        wake: Option<BorrowedFd<'_>>,
    ) -> Result<Option<Response>, NetError> {
        self.flush()?;
        let deadline = Instant::now() + allowed;
        loop {
            match decode_frame(&self.buffer, CLIENT_MAX_FRAME) {
                Ok(Some((payload, used))) => {
                    let response = Response::from_payload(payload).map_err(|e| {
                        // serde quotes what the server sent.
                        let detail = e.to_string();
                        NetError::Protocol(format!("unreadable response: {}", printable(&detail)))
                    });
                    self.buffer.drain(..used);
                    return response.map(Some);
                }
                Ok(None) => {}
                Err(FrameError::TooLarge { len, max }) => {
                    return Err(NetError::Protocol(format!(
                        "response of {len} bytes exceeds the client limit of {max}"
                    )));
                }
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.tls.conn.reader().read(&mut chunk) {
                Ok(0) => return Err(NetError::Closed),
                Ok(read) => {
                    self.buffer.extend_from_slice(&chunk[..read]);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(NetError::Closed),
                Err(e) => return Err(e.into()),
            }
            if let Some(wake) = wake
                && !self.tls.conn.wants_write()
            {
                match wait_readable(&self.tls.sock, wake, deadline) {
                    Ok(true) => {}
                    Ok(false) => return Ok(None),
                    Err(e) => return Err(self.failed(e)),
                }
            }
            match exchange(&mut self.tls, deadline) {
                Ok(0) => return Err(NetError::Closed),
                Ok(_) => {}
                Err(e) => return Err(self.failed(e)),
            }
        }
    }

    /// The error for `error` on this connection's socket.
    fn failed(&self, error: io::Error) -> NetError {
        if is_timeout(&error) {
            NetError::TimedOut {
                server: self.server.clone(),
                after: self.timeout,
            }
        } else {
            NetError::Io(error)
        }
    }
}

/// One round of TLS traffic: send what rustls has queued, then wait until
/// `deadline` at the latest for bytes from the server and process them.
/// Returns how many bytes were read (0: the server closed the connection).
/// Doing the socket reads here, one at a time, is what lets a deadline
/// hold however the server splits its records.
fn exchange(
    tls: &mut StreamOwned<ClientConnection, TcpStream>,
    deadline: Instant,
) -> io::Result<usize> {
    let (conn, sock) = (&mut tls.conn, &mut tls.sock);
    while conn.wants_write() {
        retrying_interrupted(|| conn.write_tls(sock))?;
    }
    let read = retrying_interrupted(|| {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        sock.set_read_timeout(Some(remaining))?;
        conn.read_tls(sock)
    })?;
    if let Err(error) = conn.process_new_packets() {
        // Tell the server why (the alert rustls queued), as far as it listens.
        let _ = conn.write_tls(sock);
        return Err(io::Error::new(io::ErrorKind::InvalidData, error));
    }
    Ok(read)
}

/// Wait until `deadline` for `socket` or `wake` to be readable: `true`
/// for the socket (or both), `false` for `wake` alone.
fn wait_readable(socket: &TcpStream, wake: BorrowedFd<'_>, deadline: Instant) -> io::Result<bool> {
    let mut fds = [
        PollFd::new(socket, PollFlags::IN),
        PollFd::from_borrowed_fd(wake, PollFlags::IN),
    ];
    retrying_interrupted(|| {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match poll(&mut fds, Some(&poll_timeout(remaining)))? {
            0 => Err(io::ErrorKind::TimedOut.into()),
            _ => Ok(()),
        }
    })?;
    Ok(!fds[0].revents().is_empty() || fds[1].revents().is_empty())
}

/// `wait` as poll(2) takes it, the longest it can take if longer.
pub fn poll_timeout(wait: Duration) -> Timespec {
    Timespec::try_from(wait).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    })
}

/// `operation` again for as long as a signal interrupts it (the signal,
/// such as the SIGTERM that stops a waiting read, is handled elsewhere).
fn retrying_interrupted<T>(mut operation: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match operation() {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Whether a socket operation failed because its timeout expired.
fn is_timeout(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `duration` in words: "30 seconds", "1 second", "0.5 seconds".
pub fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs == 1.0 {
        "1 second".to_owned()
    } else {
        format!("{secs} seconds")
    }
}

/// Ends a [`Connection`] from another thread: its blocked read returns and
/// every later request fails.
#[derive(Debug)]
pub struct Canceller(TcpStream);

impl Canceller {
    /// Shut the connection down.
    pub fn cancel(&self) {
        // Already closed is as good as closed.
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

/// The error for a response of the wrong type; it names the type only, as
/// the fields are the server's choice.
pub fn unexpected(response: &Response) -> NetError {
    NetError::Protocol(format!("unexpected response {}", response.kind()))
}

/// An error response, its sentence made safe to print and its wait (only
/// a `rate_limited` one has any) bounded, as both are the server's choice.
fn server_error(code: ErrorCode, message: &str, retry_after: Option<u64>) -> NetError {
    NetError::Server {
        code,
        message: printable(message).into_owned(),
        retry_after: retry_after
            .filter(|_| code == ErrorCode::RateLimited)
            .map(|seconds| seconds.clamp(1, MAX_RETRY_AFTER)),
    }
}

/// A TCP connection to an address of `server`, made before `deadline`;
/// reads and writes on it time out after `timeout`.
fn connect_tcp(
    server: &ServerAddr,
    timeout: Duration,
    deadline: Instant,
) -> Result<TcpStream, NetError> {
    let connect_error = |source| NetError::Connect {
        server: server.to_string(),
        source,
    };
    let addresses = (server.host(), server.port())
        .to_socket_addrs()
        .map_err(connect_error)?;
    let mut last_error = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
    for address in addresses {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&address, remaining) {
            Ok(socket) => {
                socket.set_nodelay(true)?;
                socket.set_read_timeout(Some(timeout))?;
                socket.set_write_timeout(Some(timeout))?;
                return Ok(socket);
            }
            Err(error) => last_error = error,
        }
    }
    if is_timeout(&last_error) || Instant::now() >= deadline {
        return Err(NetError::TimedOut {
            server: server.to_string(),
            after: timeout,
        });
    }
    Err(connect_error(last_error))
}
