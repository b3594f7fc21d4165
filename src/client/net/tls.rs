//! Why a TLS handshake with a server failed, in terms a user can act on:
//! the error the handshake returned (a rustls error inside an I/O error,
//! or the socket's own) sorted into the cases msgr explains — a peer that
//! does not speak TLS at all, one that does not speak TLS 1.3, each
//! certificate problem `--ca-cert` verification meets, an alert, a
//! connection that ended or stalled. The sentences are here; the advice
//! is in the command line's table of hints.

use std::fmt;
use std::io;

use rustls::pki_types::ServerName;
use rustls::{AlertDescription, CertificateError, Error, InvalidMessage, PeerIncompatible};

use crate::wire::protocol::MAX_TIME_MS;

/// How many of the names a certificate lists a message shows; a hostile
/// certificate may list thousands.
const NAMES_SHOWN: usize = 4;

/// Why the TLS handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer answered with something that is not TLS (an HTTP server,
    /// say, or any other plain-text service).
    NotTls,
    /// The peer speaks TLS, but not version 1.3, the only one msgr uses.
    NoTls13,
    /// The peer closed the connection before the handshake completed.
    Closed,
    /// The peer did not complete the handshake in time.
    TimedOut,
    /// The certificate presented is a CA's, not a server's.
    CaCertificate,
    /// The certificate does not chain to any certificate of `--ca-cert`:
    /// none bears its issuer's name, or the one that does did not sign it
    /// (another server's self-signed certificate of the same name, or a
    /// forgery).
    UnknownIssuer,
    /// The certificate has expired.
    Expired {
        /// When it stopped being valid, in seconds since the Unix epoch,
        /// if known.
        not_after: Option<u64>,
    },
    /// The certificate is not valid yet.
    NotYetValid {
        /// When it starts being valid, in seconds since the Unix epoch, if
        /// known.
        not_before: Option<u64>,
    },
    /// The certificate does not name the host connected to.
    WrongName {
        /// The host name or address connected to.
        expected: String,
        /// The names the certificate lists (the first few), if known.
        presented: Vec<String>,
        /// How many names it lists beyond those.
        more: usize,
    },
    /// Any other problem with the certificate, in the TLS library's words.
    BadCertificate(String),
    /// The peer ended the handshake with this TLS alert (its RFC 8446
    /// name, such as `handshake_failure`).
    Alert(String),
    /// The peer broke the TLS protocol otherwise, in the TLS library's
    /// words.
    Protocol(String),
    /// The connection failed underneath, in the operating system's words.
    Io(String),
}

impl TlsFailure {
    /// What `error`, as the handshake returned it, means.
    pub fn of(error: &io::Error) -> Self {
        let tls = error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<Error>());
        if let Some(tls) = tls {
            return Self::of_tls(tls);
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Closed,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Self::TimedOut,
            _ => Self::Io(error.to_string()),
        }
    }

    /// What a rustls error met during the handshake means.
    fn of_tls(error: &Error) -> Self {
        match error {
            // A record header no TLS peer sends: the first bytes of some
            // other protocol.
            Error::InvalidMessage(
                InvalidMessage::InvalidContentType
                | InvalidMessage::UnknownProtocolVersion
                | InvalidMessage::MessageTooLarge
                | InvalidMessage::InvalidEmptyPayload,
            ) => Self::NotTls,
            Error::AlertReceived(AlertDescription::ProtocolVersion)
            | Error::PeerIncompatible(
                PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig
                | PeerIncompatible::SupportedVersionsExtensionRequired,
            ) => Self::NoTls13,
            Error::AlertReceived(alert) => Self::Alert(alert_name(*alert)),
            Error::InvalidCertificate(certificate) => Self::of_certificate(certificate),
            other => Self::Protocol(other.to_string()),
        }
    }

    /// What a certificate error means.
    fn of_certificate(error: &CertificateError) -> Self {
        match error {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Self::UnknownIssuer,
            CertificateError::Expired => Self::Expired { not_after: None },
            CertificateError::ExpiredContext { not_after, .. } => Self::Expired {
                not_after: Some(not_after.as_secs()),
            },
            CertificateError::NotValidYet => Self::NotYetValid { not_before: None },
            CertificateError::NotValidYetContext { not_before, .. } => Self::NotYetValid {
                not_before: Some(not_before.as_secs()),
            },
            CertificateError::NotValidForName => Self::WrongName {
                expected: String::new(),
                presented: Vec::new(),
                more: 0,
            },
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => {
                let hosts: Vec<String> =
                    presented.iter().filter_map(|n| presented_host(n)).collect();
                Self::WrongName {
                    expected: host(expected),
                    more: hosts.len().saturating_sub(NAMES_SHOWN),
                    presented: hosts.into_iter().take(NAMES_SHOWN).collect(),
                }
            }
            CertificateError::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::CaUsedAsEndEntity) => Self::CaCertificate,
                Some(webpki::Error::EndEntityUsedAsCa) => {
                    Self::BadCertificate("its chain uses a server certificate as a CA".into())
                }
                _ => Self::BadCertificate(other.to_string()),
            },
            other => Self::BadCertificate(other.to_string()),
        }
    }

    /// The sentence saying that the handshake with `server` failed so.
    pub fn sentence(&self, server: &str) -> String {
        match self {
            Self::NotTls => format!("the server at {server} does not speak TLS"),
            Self::NoTls13 => {
                format!("the server at {server} does not speak TLS 1.3, which msgr requires")
            }
            Self::Closed => {
                format!("the server at {server} closed the connection during the TLS handshake")
            }
            Self::TimedOut => {
                format!("the server at {server} did not complete the TLS handshake in time")
            }
            Self::CaCertificate => {
                format!("the certificate of {server} is a CA certificate, not a server certificate")
            }
            Self::UnknownIssuer => format!(
                "the certificate of {server} was not issued by a certificate in the --ca-cert file"
            ),
            Self::Expired { not_after } => match not_after {
                Some(time) => format!("the certificate of {server} expired at {}", rfc3339(*time)),
                None => format!("the certificate of {server} has expired"),
            },
            Self::NotYetValid { not_before } => match not_before {
                Some(time) => format!(
                    "the certificate of {server} is not valid until {}",
                    rfc3339(*time)
                ),
                None => format!("the certificate of {server} is not valid yet"),
            },
            Self::WrongName {
                expected,
                presented,
                more,
            } => {
                let host = if expected.is_empty() {
                    "the host"
                } else {
                    expected
                };
                format!(
                    "the certificate of {server} is not for {host}: {}",
                    Names(presented, *more)
                )
            }
            Self::BadCertificate(detail) => {
                format!("the certificate of {server} is unusable: {detail}")
            }
            Self::Alert(alert) => {
                format!("the server at {server} refused the TLS handshake (alert {alert})")
            }
            Self::Protocol(detail) | Self::Io(detail) => {
                format!("the TLS handshake with {server} failed: {detail}")
            }
        }
    }
}

/// "it names a, b and 3 more", or "it names no host".
struct Names<'a>(&'a [String], usize);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Names(names, more) = *self;
        if names.is_empty() {
            return f.write_str("it names no host");
        }
        write!(f, "it names {}", names.join(", "))?;
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        Ok(())
    }
}

/// The host name or address in one of the names a certificate presents,
/// as webpki describes them (`DnsName("example.org")`, `IpAddress(10.0.0.7)`);
/// none for names that are not hosts (a URI, a directory name).
fn presented_host(name: &str) -> Option<String> {
    let host = if let Some(dns) = name.strip_prefix("DnsName(\"") {
        dns.strip_suffix("\")")?
    } else if let Some(ip) = name.strip_prefix("IpAddress(") {
        ip.strip_suffix(')')?
    } else if name.contains('(') {
        return None;
    } else {
        name
    };
    Some(host.to_owned())
}

/// The host name or address connected to, as the user wrote it.
fn host(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(dns) => dns.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

/// `seconds` since the Unix epoch in RFC 3339 (UTC); a certificate's time
/// is at most the year 9999, which RFC 3339 can write.
fn rfc3339(seconds: u64) -> String {
    let seconds = seconds.min(MAX_TIME_MS / 1000);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    humantime::format_rfc3339_seconds(time).to_string()
}

/// The RFC 8446 name of `alert` (`handshake_failure`, `unknown_ca`), or
/// its number if rustls does not know it.
fn alert_name(alert: AlertDescription) -> String {
    let Some(camel) = alert.as_str() else {
        return format!("number {}", u8::from(alert));
    };
    let mut snake = String::with_capacity(camel.len() + 4);
    let chars: Vec<char> = camel.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let after_lower = chars[i - 1].is_ascii_lowercase();
            let before_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if after_lower || (before_lower && chars[i - 1].is_ascii_uppercase()) {
                snake.push('_');
            }
        }
        snake.push(c.to_ascii_lowercase());
    }
    snake
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(error: Error) -> TlsFailure {
        TlsFailure::of(&io::Error::new(io::ErrorKind::InvalidData, error))
    }

    #[test]
    fn alerts_have_their_rfc_names() {
        assert_eq!(
            alert_name(AlertDescription::HandshakeFailure),
            "handshake_failure"
        );
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            alert_name(AlertDescription::UnknownPSKIdentity),
            "unknown_psk_identity"
        );
        assert_eq!(alert_name(AlertDescription::from(0xfe)), "number 254");
    }

    #[test]
    fn rustls_errors_are_sorted_into_what_they_mean() {
        let plain_text = Error::InvalidMessage(InvalidMessage::InvalidContentType);
        assert_eq!(failure(plain_text), TlsFailure::NotTls);
        let old = Error::AlertReceived(AlertDescription::ProtocolVersion);
        assert_eq!(failure(old), TlsFailure::NoTls13);
        let ca = CertificateError::Other(rustls::OtherError(std::sync::Arc::new(
            webpki::Error::CaUsedAsEndEntity,
        )));
        assert_eq!(
            failure(Error::InvalidCertificate(ca)),
            TlsFailure::CaCertificate
        );
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert_eq!(TlsFailure::of(&eof), TlsFailure::Closed);
    }

    #[test]
    fn a_certificate_with_many_names_shows_a_few() {
        let expected = ServerName::try_from("localhost").unwrap();
        let mut presented: Vec<String> = (0..100)
            .map(|i| format!("DnsName(\"host{i}.example\")"))
            .collect();
        presented.push("UniformResourceIdentifier(\"https://example.org/\")".into());
        let wrong = CertificateError::NotValidForNameContext {
            expected,
            presented,
        };
        assert_eq!(
            failure(Error::InvalidCertificate(wrong)).sentence("localhost:1"),
            "the certificate of localhost:1 is not for localhost: it names host0.example, \
             host1.example, host2.example, host3.example and 96 more"
        );
    }

    #[test]
    fn certificate_times_read_as_rfc3339() {
        let expired = TlsFailure::Expired {
            not_after: Some(1_700_000_000),
        };
        assert_eq!(
            expired.sentence("localhost:1"),
            "the certificate of localhost:1 expired at 2023-11-14T22:13:20Z"
        );
        let far = TlsFailure::NotYetValid {
            not_before: Some(u64::MAX),
        };
        assert_eq!(
            far.sentence("localhost:1"),
            "the certificate of localhost:1 is not valid until 9999-12-31T23:59:59Z"
        );
    }
}
