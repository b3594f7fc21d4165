//! The listening sockets of `msgr serve`: `--bind` as an IP address, bound
//! as given, or as a host name, whose every address is bound on the one
//! port (localhost: 127.0.0.1 and, where the name has it, ::1); and the
//! socket of `--metrics`. This runs before anything is written to disk,
//! so that a port in use leaves no data directory behind.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use tracing::warn;

use crate::cli::args::BindHost;
use crate::cli::error::AppResult;
use crate::cli::failure::Failure;

/// How many free ports PORT 0 tries before giving up, when the port the
/// first address got is taken on another address of the name.
const PORT_TRIES: usize = 8;

/// Listen on `host` at `port` (0: a free port, the same for every
/// address); the sockets are non-blocking, ready for the runtime.
pub fn bind(host: &BindHost, port: u16) -> AppResult<Vec<TcpListener>> {
    let addresses = resolve(host)?;
    // A name may have addresses this machine cannot listen on (::1 where
    // IPv6 is off); those are skipped with a warning. An IP address given
    // as such must work.
    let skip_unusable = matches!(host, BindHost::Name(_));
    let mut tries = 0;
    let sockets = loop {
        match bind_all(&addresses, port, skip_unusable) {
            Ok(sockets) => break sockets,
            Err(Refused::PortTakenElsewhere) if tries < PORT_TRIES => tries += 1,
            Err(Refused::PortTakenElsewhere) => {
                return Err(Failure::Start {
                    doing: "find a port free on every address of --bind",
                    source: io::ErrorKind::AddrInUse.into(),
                }
                .into());
            }
            Err(Refused::Address(address, source)) => {
                return Err(Failure::Listen {
                    address: address.to_string(),
                    source,
                }
                .into());
            }
        }
    };
    for socket in &sockets {
        socket
            .set_nonblocking(true)
            .map_err(|source| Failure::Start {
                doing: "configure the socket",
                source,
            })?;
    }
    Ok(sockets)
}

/// Listen on `address` for the metrics endpoint (port 0: a free one); the
/// socket is non-blocking, ready for the runtime.
pub fn bind_metrics(address: SocketAddr) -> AppResult<TcpListener> {
    let failed = |source| Failure::MetricsListen { address, source };
    let socket = TcpListener::bind(address).map_err(failed)?;
    socket.set_nonblocking(true).map_err(failed)?;
    Ok(socket)
}

/// Why [`bind_all`] bound nothing.
enum Refused {
    /// This address cannot be listened on.
    Address(SocketAddr, io::Error),
    /// PORT 0 gave the first address a port that a later one has taken:
    /// worth trying another.
    PortTakenElsewhere,
}

/// Every address of `host`, in the resolver's order, each once.
fn resolve(host: &BindHost) -> AppResult<Vec<SocketAddr>> {
    let name = match host {
        BindHost::Ip(ip) => return Ok(vec![SocketAddr::new(*ip, 0)]),
        BindHost::Name(name) => name,
    };
    let failed = |source| Failure::Resolve {
        host: name.clone(),
        source,
    };
    let mut addresses = Vec::new();
    for address in (name.as_str(), 0).to_socket_addrs().map_err(failed)? {
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    if addresses.is_empty() {
        let none = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        return Err(failed(none).into());
    }
    Ok(addresses)
}

/// Bind each of `addresses` at `port`; with port 0, the first bound picks
/// the port and the others follow it.
fn bind_all(
    addresses: &[SocketAddr],
    port: u16,
    skip_unusable: bool,
) -> Result<Vec<TcpListener>, Refused> {
    let mut sockets = Vec::new();
    let mut chosen = port;
    let mut skipped = None;
    for address in addresses {
        let mut address = *address;
        address.set_port(chosen);
        match TcpListener::bind(address) {
            Ok(socket) => {
                if chosen == 0 {
                    chosen = socket
                        .local_addr()
                        .map_err(|error| Refused::Address(address, error))?
                        .port();
                }
                sockets.push(socket);
            }
            Err(error) if skip_unusable && unusable_here(&error) => {
                warn!(%address, %error, "not listening on this address of --bind");
                skipped.get_or_insert((address, error));
            }
            Err(error)
                if port == 0 && !sockets.is_empty() && error.kind() == io::ErrorKind::AddrInUse =>
            {
                return Err(Refused::PortTakenElsewhere);
            }
            Err(error) => return Err(Refused::Address(address, error)),
        }
    }
    match skipped {
        Some((address, error)) if sockets.is_empty() => Err(Refused::Address(address, error)),
        _ => Ok(sockets),
    }
}

/// Whether `error` says this machine has no such address or no such
/// address family (rather than that the port is taken or forbidden).
fn unusable_here(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::AddrNotAvailable
        || rustix::io::Errno::from_io_error(error) == Some(rustix::io::Errno::AFNOSUPPORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_binds_each_of_its_addresses_on_one_port() {
        let localhost = BindHost::Name("localhost".into());
        let sockets = bind(&localhost, 0).unwrap();
        let addresses: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        assert!(!addresses.is_empty());
        assert!(
            addresses.iter().all(|a| a.ip().is_loopback()),
            "{addresses:?}"
        );
        assert!(addresses.iter().all(|a| a.port() == addresses[0].port()));
        assert!(addresses.iter().any(|a| a.is_ipv4()), "{addresses:?}");
    }

    #[test]
    fn a_taken_metrics_port_is_refused_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let error = bind_metrics(address).unwrap_err();
        assert!(
            error
                .message()
                .starts_with(&format!("cannot listen for metrics on {address}: ")),
            "{error}"
        );
        let free = bind_metrics(([127, 0, 0, 1], 0).into()).unwrap();
        assert_ne!(free.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn a_taken_port_is_refused_naming_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let host = BindHost::Ip([127, 0, 0, 1].into());
        let error = bind(&host, port).unwrap_err();
        assert!(
            error
                .message()
                .starts_with(&format!("cannot listen on 127.0.0.1:{port}: ")),
            "{error}"
        );
    }
}
