//! Replacing the account's own identity key (`msgr rotate`): the new key
//! is kept beside the old one until the server takes the rotation —
//! signed by both keys, with prekeys made now and signed by the new one —
//! and replaces it only then, so an interrupted rotation is finished by
//! running it again, whether or not the server took it. A rotation is
//! what one does after a keyring was stolen, so it trusts nothing the
//! thief may hold: it logs in afresh (the server then ends every other
//! session, the stolen token's too) and publishes no prekey made before.

use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::Account;
use crate::client::net::{Connection, unexpected};
use crate::client::{directory, prekeys, session};
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::{KeyRotation, Request, Response, UserName, unix_now};

/// Rotate `user`'s identity key from `old` to `new` (kept in the keyring
/// as pending) on `connection`, and make `new` the keyring's key; returns
/// the name as the server spells it.
pub fn rotate(
    connection: &mut Connection,
    account: &Account,
    user: &UserName,
    old: &PrivateKey,
    new: &PrivateKey,
) -> ClientResult<UserName> {
    let (old_key, new_key) = (old.public_key(), new.public_key());
    // Taken already by a rotation interrupted after the server's answer?
    let (answered, registered_key) =
        match connection.request(&directory::key_request(user, false))? {
            Response::Key {
                user, public_key, ..
            } => (user, public_key.0),
            other => return Err(unexpected(&other).into()),
        };
    let me = if registered_key == new_key.to_der() {
        session::own_name(user, answered)?
    } else {
        let (acting, _) = session::login(connection, account, user, old)?;
        let me = acting.me;
        let publication = prekeys::for_rotation(account, &me, new)?;
        let rotation =
            KeyRotation::sign(&me, old, new, unix_now()).map_err(|source| ClientError::Crypto {
                doing: "sign the key rotation",
                source,
            })?;
        let request = Request::RotateKey {
            rotation,
            signed_prekey: publication
                .signed
                .clone()
                .expect("a rotation signs the current prekey"),
            one_time_prekeys: publication.one_time.clone(),
        };
        match connection.request(&request)? {
            Response::KeyRotated { .. } => publication.confirmed(account)?,
            other => return Err(unexpected(&other).into()),
        }
        me
    };
    account.finish_rotation(&old_key.fingerprint(), &new_key.fingerprint())?;
    Ok(me)
}
