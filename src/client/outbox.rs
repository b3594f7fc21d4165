//! Sending one message: for each recipient, the key answer checked (and
//! pinned as the policy allows), the envelope sealed to the recipient's
//! prekeys — or the one sealed ahead of time used, if the server confirms
//! everything it assumed — and queued on the server. For the recipient
//! sealed ahead, a one-time prekey claimed with the message is kept for
//! the next message, so that it too can be sealed while connecting.

use tracing::debug;

use crate::client::directory::{self, Acceptance, CheckedKey, PinPolicy};
use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::{AccountDir, Contact, OneTimeOffer};
use crate::client::net::{Connection, NetError, unexpected};
use crate::wire::crypto::PrivateKey;
use crate::wire::envelope::{self, EnvelopeError, Header, RecipientPrekey, RecipientPrekeys};
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
    /// Shown each recipient's checked key, to say how its pin changed.
    pub announce: &'a dyn Fn(&CheckedKey),
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
    /// confirms), and queue. With a head start, a one-time prekey is kept
    /// for the next message: the one claimed with the key answer if the
    /// envelope sealed ahead was used, else one claimed with the message.
    pub fn send(&mut self, name: &UserName, head_start: Option<HeadStart>) -> ClientResult<Queued> {
        let keeps_next = head_start.is_some();
        let (key_answer, presealed) = match head_start {
            Some(head_start) => (head_start.key_answer, head_start.presealed),
            None => (
                self.connection.request(&directory::key_request(name, true)),
                None,
            ),
        };
        let recipient = directory::check_answer(self.account, name, key_answer, self.acceptance())?;
        (self.announce)(&recipient);
        let Some(signed) = recipient.prekey else {
            return Err(ClientError::NoPrekey {
                name: recipient.name.to_string(),
            });
        };
        let (header, sealed, unused_offer) =
            match presealed.and_then(|presealed| presealed.confirmed(self.me, &recipient)) {
                Some((header, sealed)) => (header, sealed, recipient.one_time),
                None => {
                    let header = Header::new(self.me, &recipient.name);
                    let prekeys = RecipientPrekeys {
                        signed,
                        one_time: recipient.one_time.map(|offer| offer.prekey),
                    };
                    let sealed = envelope::seal(&header, self.body, self.identity, &prekeys);
                    (header, sealed, None)
                }
            };
        let sealed = sealed.map_err(ClientError::Seal)?;
        let overhead = (sealed.len() - self.body.len()) as u64;
        let largest = self.connection.max_envelope()?.saturating_sub(overhead);
        let size = self.body.len() as u64;
        if size > largest {
            return Err(ClientError::TooLarge { size, largest });
        }
        self.connection.write_request(&Request::Send {
            recipient: recipient.name.to_string(),
            envelope: Base64Bytes(sealed),
        })?;
        // An empty pool (no one-time prekey came) is not asked again.
        let claim_next = keeps_next && unused_offer.is_none() && recipient.one_time.is_some();
        if claim_next {
            self.connection
                .write_request(&directory::key_request(&recipient.name, true))?;
        }
        self.connection.flush()?;
        if let Some(offer) = unused_offer {
            self.keep(&recipient, &offer);
        }
        let response = self.connection.read_response();
        if claim_next {
            let answer = self.connection.read_response();
            match directory::check_answer(self.account, &recipient.name, answer, self.acceptance())
            {
                Ok(next) => {
                    (self.announce)(&next);
                    if let Some(offer) = &next.one_time {
                        self.keep(&next, offer);
                    }
                }
                Err(error) => debug!(%error, "no one-time prekey kept for the next message"),
            }
        }
        let response = response?;
        let Response::Sent { .. } = response else {
            return Err(unexpected(&response).into());
        };
        Ok(Queued {
            to: recipient.name.into(),
            id: hex(&header.message_id),
        })
    }

    fn acceptance(&self) -> Acceptance<'static> {
        Acceptance {
            policy: self.policy,
            expect: None,
        }
    }

    /// Keep `offer` for the next message to `recipient`; a failure costs
    /// only that message's head start.
    fn keep(&self, recipient: &CheckedKey, offer: &OneTimeOffer) {
        if let Err(error) = self
            .account
            .keep_claimed(&recipient.name, &recipient.key, offer)
        {
            debug!(%error, "no one-time prekey kept for the next message");
        }
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
/// the recipient's name, key and signed prekey it assumes (from the
/// keyring: the registration and the pin), to those and a one-time prekey
/// claimed by an earlier message.
pub struct Presealed {
    me: UserName,
    /// The pin it was sealed for, with the prekey it was sealed to.
    recipient: Contact,
    header: Header,
    sealed: Result<Vec<u8>, EnvelopeError>,
}

impl Presealed {
    /// Seal `body` from `me` to the pinned `recipient`'s signed prekey, if
    /// the pin holds one, and to `one_time`, taken from those kept for them.
    pub fn seal(
        me: UserName,
        recipient: Contact,
        one_time: RecipientPrekey,
        body: &[u8],
        identity: &PrivateKey,
    ) -> Option<Self> {
        let signed = recipient.prekey?;
        let header = Header::new(&me, &recipient.name);
        let prekeys = RecipientPrekeys {
            signed,
            one_time: Some(one_time),
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
            && self.recipient.name == recipient.name
            && self.recipient.key == recipient.key
            && self.recipient.prekey == recipient.prekey)
            .then_some((self.header, self.sealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::username;
    use crate::wire::signing::PrekeyKind;

    #[test]
    fn a_presealed_envelope_is_used_only_for_what_the_server_confirms() {
        let [alice, john, other] = crate::wire::crypto::test_keys();
        let generate = crate::wire::crypto::agreement::AgreementSecret::generate;
        let (john_prekey, john_one_time) = (generate().unwrap(), generate().unwrap());
        let prekey = RecipientPrekey {
            id: 1,
            public_key: john_prekey.public_key().unwrap(),
        };
        let one_time = RecipientPrekey {
            id: 5,
            public_key: john_one_time.public_key().unwrap(),
        };
        let preseal = || {
            let pin = Contact {
                name: username("John"),
                key: john.public_key(),
                prekey: Some(prekey),
                previous: Vec::new(),
            };
            Presealed::seal(username("Alice"), pin, one_time, b"hi", alice)
                .expect("the pin has a prekey")
        };
        let confirmed = |name: &str, key: &PrivateKey| CheckedKey {
            name: username(name),
            key: key.public_key(),
            prekey: Some(prekey),
            one_time: None,
            status: directory::PinStatus::Unchanged,
            replaced: Vec::new(),
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
        assert_eq!(opened.one_time_prekey_id, Some(5));
        let john_holds = |kind, id| match (kind, id) {
            (PrekeyKind::Signed, 1) => Some(&john_prekey),
            (PrekeyKind::OneTime, 5) => Some(&john_one_time),
            _ => None,
        };
        assert_eq!(
            opened
                .open(&username("John"), &alice.public_key(), john_holds)
                .unwrap(),
            b"hi"
        );
        let rotated = CheckedKey {
            prekey: Some(RecipientPrekey { id: 2, ..prekey }),
            ..confirmed("John", john)
        };
        assert!(preseal().confirmed(&username("Alice"), &rotated).is_none());
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
