//! Logging in and authenticating a connection. Commands that act for the
//! user call [`authenticate`], which reuses the stored token and logs in
//! again on the same connection when the token is missing, expired or
//! refused, so unattended jobs never break on expiry. Logging in answers
//! the server's challenge with a signature bound to the server's
//! certificate, the name and the challenge ([`crate::wire::signing::login`]):
//! nothing the server sends is ever decrypted. [`end`] logs out. The
//! names the server answers with must be the account's own.

use std::time::Duration;

use tracing::debug;

use crate::client::error::{ClientError, ClientResult};
use crate::client::keyring::{Account, AccountAccess, Session, SessionToken};
use crate::client::net::{Connection, NetError, unexpected};
use crate::client::prekeys;
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::{
    Base64Bytes, ErrorCode, LOGIN_NONCE_LEN, Request, Response, TOKEN_LEN, UserName, printable,
};
use crate::wire::signing;

/// Tokens this close to expiry are renewed rather than used.
const EXPIRY_MARGIN_SECS: u64 = 60;

/// Make `connection` act for `user`, and bring the account's prekeys on
/// the server up to date ([`prekeys::maintain`]); returns the name as the
/// server spells it.
pub fn authenticate(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &UserName,
    identity: &PrivateKey,
) -> ClientResult<UserName> {
    let acting = match stored_token(account)? {
        Some(token) => present(connection, user, &token)?,
        None => None,
    };
    let acting = match acting {
        Some(acting) => acting,
        None => login(connection, account, user, identity)?.0,
    };
    prekeys::maintain(connection, account, &acting.me, identity, acting.held)?;
    Ok(acting.me)
}

/// Whom a connection acts for, and how many one-time prekeys the server
/// holds for the account.
#[derive(Debug)]
pub struct Acting {
    /// The name as the server spells it.
    pub me: UserName,
    /// One-time prekeys the server holds.
    pub held: u32,
}

/// [`authenticate`], with `next` sent in the same flight as the stored
/// token: returns the name and `next`'s response, read with up to `held`
/// of waiting. If the token is refused, `next` (refused too, without
/// effect, on an unauthenticated connection) is sent again after a fresh
/// login; if prekeys wait to be published, `next` waits for that, and if
/// the server's pool runs low it is topped up after `next`.
pub fn authenticate_then(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &UserName,
    identity: &PrivateKey,
    next: &Request,
    held: Duration,
) -> ClientResult<(UserName, Result<Response, NetError>)> {
    let token = stored_token(account)?;
    if let Some(token) = token.filter(|_| prekeys::are_settled(account)) {
        connection.write_request(&authenticate_request(user, &token))?;
        connection.write_request(next)?;
        let presented = connection.read_response();
        let answer = connection.read_response_held(held);
        match presented {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => debug!("the server refused the stored token"),
            Ok(response) => {
                // The prekeys were settled before this flight; only a pool
                // running low needs work.
                let acting = authenticated(user, response)?;
                if acting.held < prekeys::REFILL_BELOW {
                    prekeys::maintain(connection, account, &acting.me, identity, acting.held)?;
                }
                return Ok((acting.me, answer));
            }
            Err(other) => return Err(other.into()),
        }
    }
    let me = authenticate(connection, account, user, identity)?;
    Ok((me, connection.request_held(next, held)))
}

/// The stored session token, unless it is missing or about to expire.
pub fn stored_token(account: &impl AccountAccess) -> ClientResult<Option<SessionToken>> {
    Ok(account
        .files()
        .load_session()?
        .filter(|session| session.is_live(EXPIRY_MARGIN_SECS))
        .map(|session| {
            debug!("presenting the stored session token");
            session.token
        }))
}

/// Log in: answer the server's challenge with a signature, keep the new
/// token in the keyring, and return the name as the server spells it with
/// the session. The connection acts for the user afterwards.
pub fn login(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &UserName,
    identity: &PrivateKey,
) -> ClientResult<(Acting, Session)> {
    let nonce = challenge(connection, user)?;
    let statement = signing::login(connection.certificate_digest(), user, &nonce);
    let signature = identity
        .sign(&statement)
        .map_err(|source| ClientError::Crypto {
            doing: "sign the login",
            source,
        })?;
    let (acting, session) = prove(connection, user, signature)?;
    account.locked(|locked| locked.save_session(&session))?;
    Ok((acting, session))
}

/// Ask to log in as `user`; the server's challenge.
fn challenge(connection: &mut Connection, user: &UserName) -> ClientResult<Vec<u8>> {
    let challenge = connection
        .request(&Request::Login {
            user: user.to_string(),
        })
        .map_err(|error| match error {
            NetError::Server {
                code: ErrorCode::UnknownUser,
                ..
            } => ClientError::NotRegistered {
                user: user.to_string(),
                server: connection.server().to_owned(),
            },
            other => other.into(),
        })?;
    debug!("logging in");
    let Response::LoginChallenge { nonce } = challenge else {
        return Err(unexpected(&challenge).into());
    };
    if nonce.0.len() != LOGIN_NONCE_LEN {
        return Err(NetError::Protocol(format!(
            "the login challenge is {} bytes, not {LOGIN_NONCE_LEN}",
            nonce.0.len()
        ))
        .into());
    }
    Ok(nonce.0)
}

/// Answer the challenge with `signature`; the name as the server spells it
/// and the new session.
fn prove(
    connection: &mut Connection,
    user: &UserName,
    signature: Vec<u8>,
) -> ClientResult<(Acting, Session)> {
    let answer = connection
        .request(&Request::LoginProof {
            signature: Base64Bytes(signature),
        })
        .map_err(|error| match error {
            NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            } => ClientError::KeyRefused {
                user: user.to_string(),
            },
            other => other.into(),
        })?;
    let Response::LoggedIn {
        user: me,
        token,
        expires_at,
        one_time_prekeys,
    } = answer
    else {
        return Err(unexpected(&answer).into());
    };
    let me = own_name(user, me)?;
    if token.0.len() != TOKEN_LEN {
        return Err(NetError::Protocol("the session token has the wrong length".into()).into());
    }
    let session = Session {
        token: SessionToken::new(token.0),
        expires_at,
    };
    let acting = Acting {
        me,
        held: one_time_prekeys,
    };
    Ok((acting, session))
}

/// Register `user` with `identity` and the account's first signed prekey
/// (made now, or left by an interrupted registration), proving possession
/// of the key to the server `connection` reached (named `server` in
/// errors); returns the name as the server stores it. If the server
/// refuses the name, a key this run made (`fresh`) is removed with its
/// prekeys; a key reused from an interrupted registration is kept, as the
/// server may hold it already.
pub fn register(
    connection: &mut Connection,
    account: &Account,
    server: &str,
    user: &UserName,
    identity: &PrivateKey,
    fresh: bool,
) -> ClientResult<UserName> {
    let publication = prekeys::for_registration(account, user, identity)?;
    let public_der = identity.public_key().to_der();
    let statement = signing::registration(connection.certificate_digest(), user, &public_der);
    let proof = identity
        .sign(&statement)
        .map_err(|source| ClientError::Crypto {
            doing: "sign the registration",
            source,
        })?;
    let request = Request::Register {
        user: user.to_string(),
        public_key: Base64Bytes(public_der),
        signed_prekey: publication
            .signed
            .clone()
            .expect("a registration signs the current prekey"),
        one_time_prekeys: publication.one_time.clone(),
        proof: Base64Bytes(proof),
    };
    match connection.request(&request) {
        Ok(Response::Registered { user: name }) => {
            let name = own_name(user, name)?;
            publication.confirmed(account)?;
            account.mark_registered(&name, &identity.public_key().fingerprint())?;
            Ok(name)
        }
        Ok(other) => Err(unexpected(&other).into()),
        Err(NetError::Server {
            code: code @ (ErrorCode::NameTaken | ErrorCode::InvalidName),
            message,
            ..
        }) => {
            if fresh {
                account.remove_identity()?;
                account.remove_prekeys()?;
            }
            Err(match code {
                ErrorCode::NameTaken => ClientError::NameTaken {
                    user: user.to_string(),
                    server: server.to_owned(),
                },
                _ => ClientError::NameRefused { message },
            })
        }
        Err(error) => Err(error.into()),
    }
}

/// The name the server answered with, if it is `user`'s in some letter
/// case; anything else means the server is not acting for this account.
pub fn own_name(user: &UserName, answered: String) -> ClientResult<UserName> {
    let shown = printable(&answered).into_owned();
    user.same_account(answered)
        .ok_or_else(|| ClientError::NotOwnName {
            user: user.to_string(),
            answered: shown,
        })
}

/// End the session of `token` on the server. A token the server no longer
/// accepts (expired, or ended before) counts as ended.
pub fn end(connection: &mut Connection, user: &UserName, token: &SessionToken) -> ClientResult<()> {
    if present(connection, user, token)?.is_none() {
        return Ok(());
    }
    match connection.request(&Request::Logout)? {
        Response::LoggedOut => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}

/// End every session of `user` on the server, logging in with `identity`
/// first if the stored token does not do.
pub fn end_all(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &UserName,
    identity: &PrivateKey,
) -> ClientResult<()> {
    authenticate(connection, account, user, identity)?;
    match connection.request(&Request::LogoutAll)? {
        Response::LoggedOut => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}

/// Delete `user`'s account on the server, logging in with `identity`
/// first if the stored token does not do; the name the account had.
pub fn unregister(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &UserName,
    identity: &PrivateKey,
) -> ClientResult<UserName> {
    authenticate(connection, account, user, identity)?;
    match connection.request(&Request::Unregister)? {
        Response::Unregistered { user: name } => own_name(user, name),
        other => Err(unexpected(&other).into()),
    }
}

/// Present `token`: whom the server acts for now, or `None` if it refused
/// the token. It never logs in.
pub fn present(
    connection: &mut Connection,
    user: &UserName,
    token: &SessionToken,
) -> ClientResult<Option<Acting>> {
    match connection.request(&authenticate_request(user, token)) {
        Err(NetError::Server {
            code: ErrorCode::AuthFailed,
            ..
        }) => {
            debug!("the server refused the stored token");
            Ok(None)
        }
        Err(other) => Err(other.into()),
        Ok(response) => authenticated(user, response).map(Some),
    }
}

fn authenticate_request(user: &UserName, token: &SessionToken) -> Request {
    Request::Authenticate {
        user: user.to_string(),
        token: Base64Bytes(token.expose().to_vec()),
    }
}

/// Whom an `authenticated` response names, checked to be `user`.
fn authenticated(user: &UserName, response: Response) -> ClientResult<Acting> {
    match response {
        Response::Authenticated {
            user: me,
            one_time_prekeys,
            ..
        } => Ok(Acting {
            me: own_name(user, me)?,
            held: one_time_prekeys,
        }),
        other => Err(unexpected(&other).into()),
    }
}
