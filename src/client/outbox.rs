//! Sending one message: for each recipient, the key answer checked (and
//! pinned as the policy allows), the envelope sealed to the recipient's
//! prekey — or the one sealed ahead of time used, if the server confirms
//! everything it assumed — and queued on the server.

use crate::client::directory::{self, CheckedKey, PinPolicy, PinStatus};
use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::{AccountDir, Contact};
use crate::client::net::{Connection, NetError, unexpected};
use crate::wire::crypto::PrivateKey;
use crate::wire::envelope::{self, EnvelopeError, Header, RecipientPrekeys};
use crate::wire::protocol::{Base64Bytes, Request, Response, UserName, hex};

/// Everything needed to seal and queue one message for its recipients.
pub struct Outbox<'a> {
    /// An authenticated connection.
    pub connection: &'a mut Connection,
    /// The sender's account folder (pins are read and made here).
    pub account: &'a AccountDir,
    /// The sender's identity key.
    pub identity: &'a PrivateKey,
    /// The sender's name as the server spells it.
    pub me: &'a UserName,
    /// The message.
    pub body: &'a [u8],
    /// Whether a recipient's key may be pinned on sight.
    pub policy: PinPolicy,
    /// Told `(name, fingerprint)` of each key pinned on sight.
    pub on_new_pin: &'a dyn Fn(&str, &str),
}

/// A message queued for one recipient.
#[derive(Debug)]
pub struct Queued {
    /// The recipient as the server spells the name.
    pub to: String,
    /// The message id the recipient's `read` shows.
    pub id: String,
}

impl Outbox<'_> {
    /// Check the recipient's key (from the head start if there is one,
    /// else asked for now), seal (unless sealed already for what the server
    /// confirms), and queue.
    pub fn send(&mut self, name: &UserName, head_start: Option<HeadStart>) -> ClientResult<Queued> {
        let (key_answer, presealed) = match head_start {
            Some(head_start) => (head_start.key_answer, head_start.presealed),
            None => (
                self.connection.request(&directory::key_request(name, true)),
                None,
            ),
        };
        let acceptance = directory::Acceptance {
            policy: self.policy,
            expect: None,
        };
        let recipient = directory::check_answer(self.account, name, key_answer, acceptance)?;
        if recipient.status == PinStatus::New {
            (self.on_new_pin)(recipient.name.as_str(), &recipient.key.fingerprint());
        }
        let Some(signed) = recipient.prekey else {
            return Err(ClientError::NoPrekey {
                name: recipient.name.to_string(),
            });
        };
        let prekeys = RecipientPrekeys {
            signed,
            one_time: recipient.one_time,
        };
        let (header, sealed) = presealed
            .and_then(|presealed| presealed.confirmed(self.me, &recipient))
            .unwrap_or_else(|| {
                let header = Header::new(self.me, &recipient.name);
                let sealed = envelope::seal(&header, self.body, self.identity, &prekeys);
                (header, sealed)
            });
        let sealed = sealed.map_err(ClientError::Seal)?;
        check_size(sealed.len() as u64, self.connection.max_envelope()?)?;
        let response = self.connection.request(&Request::Send {
            recipient: recipient.name.to_string(),
            envelope: Base64Bytes(sealed),
        })?;
        let Response::Sent { .. } = response else {
            return Err(unexpected(&response).into());
        };
        Ok(Queued {
            to: recipient.name.into(),
            id: hex(&header.message_id),
        })
    }
}

/// What the first recipient's round trip brought: the answer to the key
/// request sent with the authentication, and an envelope sealed meanwhile.
pub struct HeadStart {
    /// The answer to the first recipient's key request.
    pub key_answer: Result<Response, NetError>,
    /// An envelope sealed for the first recipient meanwhile, if the
    /// keyring had what it takes.
    pub presealed: Option<Presealed>,
}

/// An envelope sealed before the server confirmed the sender's name and
/// the recipient's name, key and prekey it assumes (from the keyring: the
/// registration and the pin). It is encrypted to the signed prekey alone,
/// so it is used only if the server had no one-time prekey to hand out.
pub struct Presealed {
    me: UserName,
    /// The pin it was sealed for, with the prekey it was sealed to.
    recipient: Contact,
    header: Header,
    sealed: Result<Vec<u8>, EnvelopeError>,
}

impl Presealed {
    /// Seal `body` from `me` to the pinned `recipient`'s prekey, if the pin
    /// holds one.
    pub fn seal(
        me: UserName,
        recipient: Contact,
        body: &[u8],
        identity: &PrivateKey,
    ) -> Option<Self> {
        let signed = recipient.prekey?;
        let header = Header::new(&me, &recipient.name);
        let prekeys = RecipientPrekeys {
            signed,
            one_time: None,
        };
        let sealed = envelope::seal(&header, body, identity, &prekeys);
        Some(Self {
            me,
            recipient,
            header,
            sealed,
        })
    }

    /// The header and envelope, if the server confirmed all they assume.
    fn confirmed(
        self,
        me: &UserName,
        recipient: &CheckedKey,
    ) -> Option<(Header, Result<Vec<u8>, EnvelopeError>)> {
        (self.me == *me
            && recipient.one_time.is_none()
            && self.recipient.name == recipient.name
            && self.recipient.key == recipient.key
            && self.recipient.prekey == recipient.prekey)
            .then_some((self.header, self.sealed))
    }
}

/// Refuse a message of `size` bytes (read or sealed) beyond `limit`.
pub fn check_size(size: u64, limit: u64) -> ClientResult<()> {
    if size > limit {
        return Err(ClientError::TooLarge { size, limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::envelope::RecipientPrekey;
    use crate::wire::protocol::username;

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
                name: username("John"),
                key: john.public_key(),
                prekey: Some(prekey),
            };
            Presealed::seal(username("Alice"), pin, b"hi", alice).expect("the pin has a prekey")
        };
        let confirmed = |name: &str, key: &PrivateKey| CheckedKey {
            name: username(name),
            key: key.public_key(),
            prekey: Some(prekey),
            one_time: None,
            status: directory::PinStatus::Unchanged,
        };
        let (header, sealed) = preseal()
            .confirmed(&username("Alice"), &confirmed("John", john))
            .expect("everything it assumed was confirmed");
        assert_eq!(
            (header.sender.as_str(), header.recipient.as_str()),
            ("Alice", "John")
        );
        let sealed = sealed.unwrap();
        let opened = envelope::parse(&sealed).unwrap();
        assert_eq!(
            opened
                .open(&username("John"), &alice.public_key(), |_, _| Some(
                    &john_prekey
                ))
                .unwrap(),
            b"hi"
        );
        let rotated = CheckedKey {
            prekey: Some(RecipientPrekey { id: 2, ..prekey }),
            ..confirmed("John", john)
        };
        assert!(preseal().confirmed(&username("Alice"), &rotated).is_none());
        // With a one-time prekey handed out, the envelope is sealed anew.
        let with_one_time = CheckedKey {
            one_time: Some(RecipientPrekey { id: 9, ..prekey }),
            ..confirmed("John", john)
        };
        assert!(
            preseal()
                .confirmed(&username("Alice"), &with_one_time)
                .is_none()
        );
        assert!(
            preseal()
                .confirmed(&username("alice"), &confirmed("John", john))
                .is_none()
        );
        assert!(
            preseal()
                .confirmed(&username("Alice"), &confirmed("Johnny", john))
                .is_none()
        );
        assert!(
            preseal()
                .confirmed(&username("Alice"), &confirmed("John", other))
                .is_none()
        );
    }
}
