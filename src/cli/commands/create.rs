//! `msgr create RECIPIENT[,RECIPIENT...] [MESSAGE]`: seal one envelope per
//! recipient, each to that recipient's checked key, and queue them all on
//! one connection. The result names who got the message; if some did not,
//! the command fails naming them (exit status 8 when others did get it).

use std::io::{IsTerminal, Read, Write};
use std::time::Duration;

use serde::Serialize;

use crate::cli::args::CreateArgs;
use crate::cli::context::{ClientContext, Lease};
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Render, listed};
use crate::client::directory;
use crate::client::keyring::AccountDir;
use crate::client::outbox::{HeadStart, Outbox, Presealed};
use crate::client::{prekeys, session};
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::{UserName, unix_now};

/// Most bytes read from standard input; servers accept far less.
const STDIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Send one message to every recipient and report where it went.
pub fn run(context: &ClientContext, args: &CreateArgs) -> AppResult<()> {
    let recipients = recipients(&args.recipients.0)?;
    // Unlocked: concurrent creates from one account (cron jobs) run in
    // parallel; the rare change (a new pin, a new token) locks briefly.
    // Found before the message is typed, not after.
    let account = context.account_dir()?;
    let body = read_body(context, args.message.as_deref())?;
    if body.is_empty() && !args.allow_empty {
        return Err(Failure::EmptyBody.into());
    }
    let identity = context.identity(&account)?;
    let (mut connection, me, head_start) =
        connect_with_head_start(context, &account, &identity, &recipients[0], &body)?;
    let announce = |checked: &_| context.output.pin_changes(checked);
    let mut outcome = Outcome {
        from: me.as_str(),
        sent: Vec::new(),
        failed: Vec::new(),
    };
    let mut outbox = Outbox {
        connection: &mut connection,
        account: &account,
        identity: &identity,
        me: &me,
        body: &body,
        policy: context.pin_policy(),
        announce: &announce,
    };
    let mut head_start = Some(head_start);
    for name in &recipients {
        match outbox.send(name, head_start.take()) {
            Ok(queued) => outcome.sent.push(Sent {
                to: queued.to,
                id: queued.id,
            }),
            Err(error) => outcome
                .failed
                .push(Failed::new(name.as_str(), error.into())),
        }
    }
    context.output.emit(&outcome).map_err(AppError::stdout)?;
    outcome.into_result(context)
}

/// Connect and authenticate, asking in the same flight for the key of
/// `first`, the first recipient; meanwhile a second thread seals `body`
/// for `first` under the names and keys the keyring expects, to a one-time
/// prekey kept from an earlier message (or, with nothing to seal to,
/// readies the key for signing). Returns the connection and the user's
/// name as the server spells it.
fn connect_with_head_start<'c>(
    context: &'c ClientContext,
    account: &AccountDir,
    identity: &PrivateKey,
    first: &UserName,
    body: &[u8],
) -> AppResult<(Lease<'c>, UserName, HeadStart)> {
    // A guess only: a file it cannot read means no head start, and the
    // pin is read again (and any problem reported) when the key is checked.
    let guess = match (account.registration(), account.contact(first)) {
        (Ok(Some(registration)), Ok(Some(contact))) if contact.prekey.is_some() => {
            let now = unix_now();
            account
                .take_claimed(first, &contact.key, |offer| {
                    prekeys::one_time_is_usable(offer.created_at, now)
                })
                .map(|offer| (registration.user, contact, offer.prekey))
        }
        _ => None,
    };
    let (connected, presealed) = std::thread::scope(|scope| {
        let sealing = scope.spawn(|| {
            let presealed = guess.and_then(|(me, recipient, one_time)| {
                account.persist_taken(first).ok()?;
                Presealed::seal(me, recipient, one_time, body, identity)
            });
            if presealed.is_none() {
                // A key that cannot sign is reported when it signs.
                let _ = identity.prepare();
            }
            presealed
        });
        let connected = context.connect().and_then(|mut connection| {
            let (me, key_answer) = session::authenticate_then(
                &mut connection,
                account,
                &context.user,
                identity,
                &directory::key_request(first, true),
                Duration::ZERO,
            )?;
            Ok((connection, me, key_answer))
        });
        let presealed = sealing.join().expect("sealing does not panic");
        (connected, presealed)
    });
    let (connection, me, key_answer) = connected?;
    Ok((
        connection,
        me,
        HeadStart {
            key_answer,
            presealed,
        },
    ))
}

/// The recipients, validated, without repeats (letter case ignored).
fn recipients(names: &[String]) -> AppResult<Vec<UserName>> {
    let mut unique: Vec<UserName> = Vec::with_capacity(names.len());
    for name in names {
        let name: UserName = name.parse().map_err(Failure::BadName)?;
        if !unique.iter().any(|kept| kept.is(name.as_str())) {
            unique.push(name);
        }
    }
    Ok(unique)
}

/// The body: the argument, or standard input when it is absent or `-`
/// (at a terminal, after saying how to end it).
fn read_body(context: &ClientContext, message: Option<&str>) -> AppResult<Vec<u8>> {
    if let Some(text) = message.filter(|m| *m != "-") {
        return Ok(text.as_bytes().to_vec());
    }
    if std::io::stdin().is_terminal() {
        context
            .output
            .notice("type the message, then press Ctrl-D on a line of its own");
    }
    let mut body = Vec::new();
    std::io::stdin()
        .take(STDIN_LIMIT + 1)
        .read_to_end(&mut body)
        .map_err(Failure::Stdin)?;
    if body.len() as u64 > STDIN_LIMIT {
        return Err(Failure::StdinTooLarge { limit: STDIN_LIMIT }.into());
    }
    Ok(body)
}

/// The result of `create`: who got the message and who did not.
#[derive(Serialize)]
struct Outcome<'a> {
    from: &'a str,
    sent: Vec<Sent>,
    failed: Vec<Failed>,
}

/// One recipient that got the message.
#[derive(Serialize)]
struct Sent {
    /// The recipient as the server spells the name.
    to: String,
    /// The message id the recipient's `read` shows.
    id: String,
}

/// One recipient that did not get the message, and why.
#[derive(Serialize)]
struct Failed {
    to: String,
    code: &'static str,
    message: String,
    hint: Option<String>,
    #[serde(skip)]
    error: AppError,
}

impl Failed {
    fn new(to: &str, error: AppError) -> Self {
        Self {
            to: to.to_owned(),
            code: error.status().code(),
            message: error.message().to_owned(),
            hint: error.hint().map(str::to_owned),
            error,
        }
    }
}

impl Outcome<'_> {
    /// Success if everyone got the message; otherwise the failure: the
    /// recipient's own error when there was one, else a summary that names
    /// who did not get it (after a warning per recipient).
    fn into_result(mut self, context: &ClientContext) -> AppResult<()> {
        if self.failed.is_empty() {
            return Ok(());
        }
        if self.sent.is_empty() && self.failed.len() == 1 {
            return Err(self.failed.remove(0).error);
        }
        for failed in &self.failed {
            context
                .output
                .warning(&format!("not sent to {}: {}", failed.to, failed.error));
        }
        let missed = listed(self.failed.iter().map(|f| f.to.as_str()));
        if self.sent.is_empty() {
            let status = self.failed[0].error.status();
            return Err(Failure::SentToNobody { missed, status }.into());
        }
        let reached = listed(self.sent.iter().map(|s| s.to.as_str()));
        Err(Failure::Partial { reached, missed }.into())
    }
}

impl Render for Outcome<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        for sent in &self.sent {
            writeln!(out, "Sent to {}", sent.to)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::error::ExitStatus;

    #[test]
    fn recipients_are_validated_and_deduplicated() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            recipients(&names(&["John", "carol", "JOHN"]))
                .unwrap()
                .iter()
                .map(UserName::as_str)
                .collect::<Vec<_>>(),
            ["John", "carol"]
        );
        let error = recipients(&names(&["John", ""])).unwrap_err();
        assert_eq!(error.status(), ExitStatus::Usage);
    }
}
