//! `msgr create RECIPIENT[,RECIPIENT...] [MESSAGE]`: seal one envelope per
//! recipient, each to that recipient's checked key, and queue them all on
//! one connection. The result names who got the message; if some did not,
//! the command fails naming them (exit status 8 when others did get it).

use std::io::{Read, Write};
use std::time::Duration;

use serde::Serialize;

use crate::cli::args::CreateArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult, ExitStatus};
use crate::cli::output::{Human, Render};
use crate::client::directory::{self, CheckedKey, PinStatus};
use crate::client::keyring::{AccountDir, Contact};
use crate::client::net::{Connection, NetError, unexpected};
use crate::client::session;
use crate::wire::crypto::PrivateKey;
use crate::wire::envelope::{self, EnvelopeError, Header, RecipientPrekey};
use crate::wire::protocol::{
    Base64Bytes, Request, Response, canonical_name, hex, validate_username,
};

/// Most bytes read from standard input; servers accept far less.
const STDIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Send one message to every recipient and report where it went.
pub fn run(context: &ClientContext, args: &CreateArgs) -> AppResult<()> {
    let recipients = recipients(&args.recipients.0)?;
    let body = read_body(args.message.as_deref())?;
    // Unlocked: concurrent creates from one account (cron jobs) run in
    // parallel; the rare change (a new pin, a new token) locks briefly.
    let account = context.account_dir()?;
    let identity = context.identity(&account)?;
    let (mut connection, me, head_start) =
        connect_with_head_start(context, &account, &identity, &recipients[0], &body)?;
    check_size(body.len() as u64, connection.max_envelope()?)?;
    let mut outcome = Outcome {
        from: &me,
        sent: Vec::new(),
        failed: Vec::new(),
    };
    let mut sender = Sender {
        context,
        connection: &mut connection,
        account: &account,
        identity: &identity,
        me: &me,
        body: &body,
    };
    let mut head_start = Some(head_start);
    for name in &recipients {
        match sender.send(name, head_start.take()) {
            Ok(sent) => outcome.sent.push(sent),
            Err(error) => outcome.failed.push(Failed::new(name, error)),
        }
    }
    context.output.emit(&outcome).map_err(AppError::stdout)?;
    outcome.into_result(context)
}

/// Connect and authenticate, asking in the same flight for the key of
/// `first`, the first recipient; meanwhile a second thread seals `body`
/// for `first` under the names and keys the keyring expects (or, with
/// nothing to expect, readies the key for signing). Returns the
/// connection and the user's name as the server spells it.
fn connect_with_head_start(
    context: &ClientContext,
    account: &AccountDir,
    identity: &PrivateKey,
    first: &str,
    body: &[u8],
) -> AppResult<(Connection, String, HeadStart)> {
    // A guess only: a file it cannot read means no head start, and the
    // pin is read again (and any problem reported) when the key is checked.
    let guess = match (account.registration(), account.contact(first)) {
        (Ok(Some(registration)), Ok(Some(contact))) => Some((registration.user, contact)),
        _ => None,
    };
    let (connected, presealed) = std::thread::scope(|scope| {
        let sealing = scope.spawn(|| {
            let presealed =
                guess.and_then(|(me, recipient)| Presealed::seal(me, recipient, body, identity));
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
                &directory::key_request(first),
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
fn recipients(names: &[String]) -> AppResult<Vec<String>> {
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        validate_username(name).map_err(|e| AppError::usage(e.to_string()))?;
        if !unique
            .iter()
            .any(|kept| canonical_name(kept) == canonical_name(name))
        {
            unique.push(name.clone());
        }
    }
    Ok(unique)
}

/// Everything needed to seal and queue the message for one recipient.
struct Sender<'a> {
    context: &'a ClientContext,
    connection: &'a mut Connection,
    account: &'a AccountDir,
    identity: &'a PrivateKey,
    me: &'a str,
    body: &'a [u8],
}

impl Sender<'_> {
    /// Check the recipient's key (from the head start if there is one,
    /// else asked for now), seal (unless sealed already for what the server
    /// confirms), and queue.
    fn send(&mut self, name: &str, head_start: Option<HeadStart>) -> AppResult<Sent> {
        let (key_answer, presealed) = match head_start {
            Some(head_start) => (head_start.key_answer, head_start.presealed),
            None => (self.connection.request(&directory::key_request(name)), None),
        };
        let acceptance = directory::Acceptance {
            policy: self.context.pin_policy(),
            expect: None,
        };
        let recipient = directory::check_answer(self.account, name, key_answer, acceptance)?;
        if recipient.status == PinStatus::New {
            self.context
                .output
                .pinned_on_sight(&recipient.name, &recipient.key.fingerprint());
        }
        let Some(prekey) = recipient.prekey else {
            return Err(no_prekey(&recipient.name));
        };
        let (header, sealed) = presealed
            .and_then(|presealed| presealed.confirmed(self.me, &recipient))
            .unwrap_or_else(|| {
                let header = Header::new(self.me, &recipient.name);
                let sealed = envelope::seal(&header, self.body, self.identity, &prekey);
                (header, sealed)
            });
        let sealed =
            sealed.map_err(|e| AppError::local(format!("cannot seal the message: {e}")))?;
        check_size(sealed.len() as u64, self.connection.max_envelope()?)?;
        let response = self.connection.request(&Request::Send {
            recipient: recipient.name.clone(),
            envelope: Base64Bytes(sealed),
        })?;
        let Response::Sent { .. } = response else {
            return Err(unexpected(&response).into());
        };
        Ok(Sent {
            to: recipient.name,
            id: hex(&header.message_id),
        })
    }
}

/// The refusal for a recipient with no signed prekey to encrypt to.
fn no_prekey(name: &str) -> AppError {
    AppError::new(
        ExitStatus::Refused,
        format!("{name} has not published an encryption key on this server yet, so nothing was sent"),
    )
    .hint(format!(
        "ask {name} to run any msgr command that logs in (such as `msgr read`) with this version, then send again"
    ))
}

/// What the first recipient's round trip brought: the answer to the key
/// request sent with the authentication, and an envelope sealed meanwhile.
struct HeadStart {
    key_answer: Result<Response, NetError>,
    presealed: Option<Presealed>,
}

/// An envelope sealed before the server confirmed the sender's name and
/// the recipient's name, key and prekey it assumes (from the keyring: the
/// registration and the pin).
struct Presealed {
    me: String,
    recipient: Contact,
    prekey: RecipientPrekey,
    header: Header,
    sealed: Result<Vec<u8>, EnvelopeError>,
}

impl Presealed {
    /// Seal `body` from `me` to the pinned `recipient`'s prekey, if the pin
    /// holds one.
    fn seal(me: String, recipient: Contact, body: &[u8], identity: &PrivateKey) -> Option<Self> {
        let prekey = recipient.prekey?;
        let header = Header::new(&me, &recipient.name);
        let sealed = envelope::seal(&header, body, identity, &prekey);
        Some(Self {
            me,
            recipient,
            prekey,
            header,
            sealed,
        })
    }

    /// The header and envelope, if the server confirmed all they assume.
    fn confirmed(
        self,
        me: &str,
        recipient: &CheckedKey,
    ) -> Option<(Header, Result<Vec<u8>, EnvelopeError>)> {
        (self.me == me
            && self.recipient.name == recipient.name
            && self.recipient.key == recipient.key
            && Some(self.prekey) == recipient.prekey)
            .then_some((self.header, self.sealed))
    }
}

/// The body: the argument, or standard input when it is absent or `-`.
fn read_body(message: Option<&str>) -> AppResult<Vec<u8>> {
    if let Some(text) = message.filter(|m| *m != "-") {
        return Ok(text.as_bytes().to_vec());
    }
    let mut body = Vec::new();
    std::io::stdin()
        .take(STDIN_LIMIT + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            AppError::local(format!("cannot read the message from standard input: {e}"))
        })?;
    check_size(body.len() as u64, STDIN_LIMIT)?;
    Ok(body)
}

fn check_size(size: u64, limit: u64) -> AppResult<()> {
    if size > limit {
        return Err(AppError::new(
            ExitStatus::Refused,
            format!("the message is {size} bytes once sealed or read, more than the limit of {limit} bytes"),
        )
        .hint("send a smaller message"));
    }
    Ok(())
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
            code: error.status.code(),
            message: error.message.clone(),
            hint: error.hint.clone(),
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
        let missed = names(self.failed.iter().map(|f| f.to.as_str()));
        if self.sent.is_empty() {
            let status = self.failed[0].error.status;
            return Err(AppError::new(
                status,
                format!("the message was sent to nobody: not to {missed}"),
            )
            .hint("fix the problems above and send it again"));
        }
        let reached = names(self.sent.iter().map(|s| s.to.as_str()));
        Err(AppError::new(
            ExitStatus::Partial,
            format!("the message was sent to {reached} but not to {missed}"),
        )
        .hint(format!(
            "fix the problems above and send it again to {missed} only"
        )))
    }
}

/// `a, b and c`.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
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

    #[test]
    fn recipients_are_validated_and_deduplicated() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            recipients(&names(&["John", "carol", "JOHN"])).unwrap(),
            ["John", "carol"]
        );
        let error = recipients(&names(&["John", ""])).unwrap_err();
        assert_eq!(error.status, ExitStatus::Usage);
    }

    #[test]
    fn a_presealed_envelope_is_used_only_for_what_the_server_confirms() {
        let [alice, john, other] = crate::wire::crypto::test_keys();
        let john_prekey = crate::wire::crypto::agreement::AgreementSecret::generate().unwrap();
        let prekey = RecipientPrekey {
            id: 1,
            public_key: john_prekey.public_key().unwrap(),
        };
        let preseal = || {
            let pin = Contact {
                name: "John".into(),
                key: john.public_key(),
                prekey: Some(prekey),
            };
            Presealed::seal("Alice".into(), pin, b"hi", alice).expect("the pin has a prekey")
        };
        let confirmed = |name: &str, key: &PrivateKey| CheckedKey {
            name: name.into(),
            key: key.public_key(),
            prekey: Some(prekey),
            status: directory::PinStatus::Unchanged,
        };
        let (header, sealed) = preseal()
            .confirmed("Alice", &confirmed("John", john))
            .expect("everything it assumed was confirmed");
        assert_eq!(
            (header.sender.as_str(), header.recipient.as_str()),
            ("Alice", "John")
        );
        let sealed = sealed.unwrap();
        let opened = envelope::parse(&sealed).unwrap();
        assert_eq!(
            opened
                .open("John", &alice.public_key(), |_| Some(&john_prekey))
                .unwrap(),
            b"hi"
        );
        let rotated = CheckedKey {
            prekey: Some(RecipientPrekey { id: 2, ..prekey }),
            ..confirmed("John", john)
        };
        assert!(preseal().confirmed("Alice", &rotated).is_none());
        assert!(
            preseal()
                .confirmed("alice", &confirmed("John", john))
                .is_none()
        );
        assert!(
            preseal()
                .confirmed("Alice", &confirmed("Johnny", john))
                .is_none()
        );
        assert!(
            preseal()
                .confirmed("Alice", &confirmed("John", other))
                .is_none()
        );
    }

    #[test]
    fn names_read_as_a_list() {
        assert_eq!(names(["a"].into_iter()), "a");
        assert_eq!(names(["a", "b"].into_iter()), "a and b");
        assert_eq!(names(["a", "b", "c"].into_iter()), "a, b and c");
    }
}
