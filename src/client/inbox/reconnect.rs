//! A following read, or an interactive session watching for messages,
//! that outlives a server restart: when the connection breaks, or the
//! server cannot be reached or is busy, connect again — after half a
//! second, then ever less often up to every 30 seconds, jittered so that
//! many clients do not return at once — until a connection is made, the
//! time allowed runs out, or the caller stops waiting ([`Reconnecting`]).

use std::time::{Duration, Instant};

use crate::client::connect::Dialer;
use crate::client::error::{ClientError, ClientResult};
use crate::client::net::{Connection, NetError};
use crate::wire::crypto::random_bytes;
use crate::wire::protocol::ErrorCode;

/// The pause before the first attempt.
const FIRST_PAUSE: Duration = Duration::from_millis(500);
/// The longest pause between attempts.
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Who waits for a connection again: told of the loss and of the return,
/// and deciding whether to go on after each pause.
pub trait Reconnecting {
    /// The connection was lost with `error`; attempts go on for up to
    /// `within`.
    fn connection_lost(&mut self, error: &ClientError, within: Duration);

    /// Connected again to `server`.
    fn reconnected(&mut self, server: &str);

    /// Wait `pause` before the next attempt; `false` to give up at once
    /// (a stop was asked for).
    fn pause(&mut self, pause: Duration) -> bool;
}

/// How to connect again, and for how long to keep trying.
#[derive(Debug, Clone)]
pub struct Reconnect {
    dialer: Dialer,
    within: Duration,
}

impl Reconnect {
    /// Connect again with `dialer`, giving up after `within`.
    pub fn new(dialer: Dialer, within: Duration) -> Self {
        Self { dialer, within }
    }

    /// A new connection after `error` ended the last one, telling
    /// `waiting` of the loss and the return; `Ok(None)` if it gave up
    /// during a pause.
    pub fn connect_again(
        &self,
        error: ClientError,
        waiting: &mut impl Reconnecting,
    ) -> ClientResult<Option<Connection>> {
        waiting.connection_lost(&error, self.within);
        let give_up_at = Instant::now() + self.within;
        let mut pause = FIRST_PAUSE;
        let mut last = error;
        loop {
            let left = give_up_at.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::ReconnectFailed {
                    server: self.dialer.server().to_string(),
                    within: self.within,
                    last: Box::new(last),
                });
            }
            if !waiting.pause(jittered(pause).min(left)) {
                return Ok(None);
            }
            match self.dialer.dial() {
                Ok(connected) => {
                    waiting.reconnected(&self.dialer.server().to_string());
                    return Ok(Some(connected.connection));
                }
                Err(error) if is_transient(&error) => last = error,
                Err(error) => return Err(error),
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
    }
}

/// Whether `error` is one a following read or a session outlives by
/// connecting again: the connection broke or timed out, the server could
/// not be reached, or it was too busy. A refusal, a trust failure or a
/// broken protocol is not.
pub fn is_transient(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Net(
            NetError::Connect { .. }
                | NetError::TimedOut { .. }
                | NetError::Closed
                | NetError::Io(_)
                | NetError::Server {
                    code: ErrorCode::Busy,
                    ..
                }
        )
    )
}

/// Between half and all of `pause`, at random.
fn jittered(pause: Duration) -> Duration {
    let [random] = random_bytes::<1>();
    pause.mul_f64(0.5 + f64::from(random) / 510.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_pause() {
        for _ in 0..200 {
            let pause = jittered(Duration::from_secs(2));
            assert!(pause >= Duration::from_secs(1) && pause <= Duration::from_secs(2));
        }
    }

    #[test]
    fn only_a_lost_or_unreachable_server_is_worth_another_try() {
        let closed = ClientError::Net(NetError::Closed);
        let busy = ClientError::Net(NetError::Server {
            code: ErrorCode::Busy,
            message: "busy".into(),
            retry_after: None,
        });
        let refused = ClientError::Net(NetError::Server {
            code: ErrorCode::AuthFailed,
            message: "no".into(),
            retry_after: None,
        });
        let broken = ClientError::Net(NetError::Protocol("junk".into()));
        assert!(is_transient(&closed) && is_transient(&busy));
        assert!(!is_transient(&refused) && !is_transient(&broken));
    }
}
