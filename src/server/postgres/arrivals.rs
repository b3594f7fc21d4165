//! Wake-ups across servers. The statement that queues a batch's sends
//! also tells PostgreSQL whom it queued for (`pg_notify` for each row, in
//! the writer; delivered only once the transaction commits, and once per
//! recipient); each server listens on one connection of its own,
//! outside the pool, and wakes the reads waiting for those recipients.
//! Notifications are only hints: those sent while a listener reconnects
//! are lost, so after every (re)connection the listener has every waiting
//! read look again, and waiting reads also look again now and then
//! ([`RECHECK_EVERY`]) in case a connection died without a word.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Config, NoTls};
use tracing::{debug, info, warn};

use crate::server::store::{Arrivals, Origin, UserId};
use crate::wire::protocol::hex;

/// The channel the hints go on.
pub(super) const CHANNEL: &str = "msgr_arrivals";

/// How often a waiting read looks again without a hint.
pub(super) const RECHECK_EVERY: Duration = Duration::from_secs(5);

/// First pause before connecting the listener again, doubled up to
/// [`MAX_RECONNECT_PAUSE`].
const FIRST_RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Longest pause before connecting the listener again.
const MAX_RECONNECT_PAUSE: Duration = Duration::from_secs(5);

/// What a hint from the server `origin` starts with; the recipient's id
/// follows. The origin lets the sending server skip its own hints (it has
/// woken its readers itself).
pub(super) fn hint_prefix(origin: &Origin) -> String {
    format!("{}:", hex(origin))
}

/// Listen for other servers' hints on the current runtime until it shuts
/// down, passing them to `arrivals`; connects again, with growing pauses,
/// whenever the connection is lost.
pub(super) fn listen(config: Config, origin: Origin, arrivals: Arc<dyn Arrivals>) {
    tokio::spawn(async move {
        let mut pause = FIRST_RECONNECT_PAUSE;
        loop {
            let connected = || {
                pause = FIRST_RECONNECT_PAUSE;
                // Whatever was stored while not listening went unheard.
                arrivals.look_again();
            };
            match listen_once(&config, &origin, arrivals.as_ref(), connected).await {
                Ok(()) => info!("the database closed the connection hints arrive on; reconnecting"),
                Err(error) => warn!(
                    error = %super::postgres_error_text(&error),
                    "no connection for hints of messages from other servers; reconnecting"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RECONNECT_PAUSE);
        }
    });
}

/// One connection's worth of listening: until it ends.
async fn listen_once(
    config: &Config,
    origin: &Origin,
    arrivals: &dyn Arrivals,
    connected: impl FnOnce(),
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (hints, mut received) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(hint))) => {
                    if hints.send(hint).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    debug!("listening for hints of messages from other servers");
    connected();
    let own = hint_prefix(origin);
    while let Some(hint) = received.recv().await {
        if let Some(user) = recipient(hint.payload(), &own) {
            arrivals.arrived(user);
        }
    }
    drop(client);
    driver.await.unwrap_or(Ok(()))
}

/// The recipient a hint names, unless it came from this server (`own`
/// prefix) or is not one of ours. Any user of the database may notify
/// the channel: a payload that names no account is ignored, and one that
/// names an account only makes its waiting reads look again.
fn recipient(payload: &str, own: &str) -> Option<UserId> {
    if payload.starts_with(own) {
        return None;
    }
    payload.rsplit_once(':')?.1.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_names_a_recipient_unless_it_is_our_own_or_garbage() {
        let own = hint_prefix(&[7; 16]);
        let other = hint_prefix(&[8; 16]);
        assert_eq!(recipient(&format!("{other}42"), &own), Some(42));
        assert_eq!(recipient(&format!("{own}42"), &own), None, "our own");
        for garbage in [
            "",
            "42",
            "x:",
            "x:-",
            "x:4 2",
            "x:99999999999999999999",
            "x:12x",
        ] {
            assert_eq!(recipient(garbage, &own), None, "{garbage:?}");
        }
    }
}
