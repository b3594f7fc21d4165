//! `HOST:PORT` server addresses as given on the command line.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rustls::pki_types::ServerName;
use thiserror::Error;

/// A server address: a DNS name or IP literal and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    host: String,
    port: u16,
}

/// Why a `--server` value was refused.
#[derive(Debug, Error)]
#[error("server address {0:?} is not HOST:PORT (for example localhost:12000 or [::1]:12000)")]
pub struct AddrError(String);

impl FromStr for ServerAddr {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || AddrError(text.to_owned());
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6
                .parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad())?
                .to_string(),
            // An IPv6 literal needs brackets, or the port would be ambiguous.
            None if host.contains(':') => return Err(bad()),
            None if host.parse::<IpAddr>().is_ok() => host.to_owned(),
            None => {
                ServerName::try_from(host).map_err(|_| bad())?;
                host.to_ascii_lowercase()
            }
        };
        if port == 0 || host.is_empty() || host.contains(['/', '\\']) {
            return Err(bad());
        }
        Ok(Self { host, port })
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ServerAddr {
    /// The host part, without IPv6 brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The name the server's certificate is checked against.
    pub fn server_name(&self) -> ServerName<'static> {
        ServerName::try_from(self.host.clone()).expect("validated when parsed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_ip_literals() {
        let addr: ServerAddr = "LocalHost:12000".parse().unwrap();
        assert_eq!((addr.host(), addr.port()), ("localhost", 12000));
        assert_eq!(addr.to_string(), "localhost:12000");
        let v6: ServerAddr = "[::1]:80".parse().unwrap();
        assert_eq!((v6.host(), v6.to_string().as_str()), ("::1", "[::1]:80"));
        assert_eq!(
            "127.0.0.1:5".parse::<ServerAddr>().unwrap().to_string(),
            "127.0.0.1:5"
        );
    }

    #[test]
    fn rejects_malformed_addresses() {
        for text in [
            "localhost",
            "localhost:",
            ":80",
            "host:0",
            "host:99999",
            "a/b:1",
            "::1:80",
            "[x]:1",
            "a b:1",
        ] {
            assert!(text.parse::<ServerAddr>().is_err(), "{text}");
        }
    }
}
