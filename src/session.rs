//! Logging in and authenticating a connection. Commands that act for the
//! user call [`authenticate`], which reuses the stored token and logs in
//! again on the same connection when the token is missing, expired or
//! refused, so unattended jobs never break on expiry. [`end`] logs out.

use std::time::Duration;

use tracing::debug;

use crate::crypto::PrivateKey;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::keyring::{AccountAccess, Session, SessionToken};
use crate::net::{Connection, NetError, unexpected};
use crate::protocol::{Base64Bytes, ErrorCode, Request, Response, unix_now};

/// Tokens this close to expiry are renewed rather than used.
const EXPIRY_MARGIN_SECS: u64 = 60;

/// Make `connection` act for `user`; returns the name as the server spells
/// it.
pub fn authenticate(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &str,
    identity: &PrivateKey,
) -> AppResult<String> {
    if let Some(token) = stored_token(account)? {
        match present(connection, user, &token) {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => debug!("the server refused the stored token"),
            result => return result.map_err(AppError::from),
        }
    }
    log_in_and_present(connection, account, user, identity)
}

/// [`authenticate`], with `next` sent in the same flight as the stored
/// token: returns the name and `next`'s response, read with up to `held`
/// of waiting. If the token is refused, `next` (refused too, without
/// effect, on an unauthenticated connection) is sent again after a fresh
/// login.
pub fn authenticate_then(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &str,
    identity: &PrivateKey,
    next: &Request,
    held: Duration,
) -> AppResult<(String, Result<Response, NetError>)> {
    if let Some(token) = stored_token(account)? {
        connection.write_request(&authenticate_request(user, &token))?;
        connection.write_request(next)?;
        let presented = connection.read_response().and_then(authenticated);
        let answer = connection.read_response_held(held);
        match presented {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => debug!("the server refused the stored token"),
            Ok(me) => return Ok((me, answer)),
            Err(other) => return Err(other.into()),
        }
    }
    let me = log_in_and_present(connection, account, user, identity)?;
    Ok((me, connection.request_held(next, held)))
}

/// The stored session token, unless it is missing or about to expire.
fn stored_token(account: &impl AccountAccess) -> AppResult<Option<SessionToken>> {
    Ok(account
        .files()
        .load_session()?
        .filter(|session| session.expires_at > unix_now() + EXPIRY_MARGIN_SECS)
        .map(|session| {
            debug!("presenting the stored session token");
            session.token
        }))
}

fn log_in_and_present(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &str,
    identity: &PrivateKey,
) -> AppResult<String> {
    debug!("logging in");
    let session = login(connection, account, user, identity)?;
    Ok(present(connection, user, &session.token)?)
}

/// Ask the server for a new token, unwrap it with the private key and keep
/// it in the keyring.
pub fn login(
    connection: &mut Connection,
    account: &impl AccountAccess,
    user: &str,
    identity: &PrivateKey,
) -> AppResult<Session> {
    let response = connection
        .request(&Request::Login {
            user: user.to_owned(),
        })
        .map_err(|error| match error {
            NetError::Server {
                code: ErrorCode::UnknownUser,
                ..
            } => AppError::new(
                ExitStatus::Auth,
                format!("{user} is not registered on this server"),
            )
            .hint("run `msgr register` first"),
            other => other.into(),
        })?;
    let Response::LoginChallenge {
        wrapped_token,
        expires_at,
    } = response
    else {
        return Err(unexpected(&response).into());
    };
    let token = identity.unwrap(&wrapped_token.0).map_err(|_| {
        AppError::new(
            ExitStatus::Auth,
            format!("the server's login challenge for {user} could not be decrypted with this keyring's key"),
        )
        .hint("the account on the server belongs to a different key; register another name")
    })?;
    let session = Session {
        token: SessionToken::new(token.to_vec()),
        expires_at,
    };
    account.locked(|locked| locked.save_session(&session))?;
    Ok(session)
}

/// End the session of `token` on the server. A token the server no longer
/// accepts (expired, or ended before) counts as ended.
pub fn end(connection: &mut Connection, user: &str, token: &SessionToken) -> AppResult<()> {
    match present(connection, user, token) {
        Ok(_) => {}
        Err(NetError::Server {
            code: ErrorCode::AuthFailed,
            ..
        }) => return Ok(()),
        Err(other) => return Err(other.into()),
    }
    match connection.request(&Request::Logout)? {
        Response::LoggedOut => Ok(()),
        other => Err(unexpected(&other).into()),
    }
}

fn present(
    connection: &mut Connection,
    user: &str,
    token: &SessionToken,
) -> Result<String, NetError> {
    connection
        .request(&authenticate_request(user, token))
        .and_then(authenticated)
}

fn authenticate_request(user: &str, token: &SessionToken) -> Request {
    Request::Authenticate {
        user: user.to_owned(),
        token: Base64Bytes(token.expose().to_vec()),
    }
}

/// The name from an `authenticated` response.
fn authenticated(response: Response) -> Result<String, NetError> {
    match response {
        Response::Authenticated { user, .. } => Ok(user),
        other => Err(unexpected(&other)),
    }
}
