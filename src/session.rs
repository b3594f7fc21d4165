//! Logging in and authenticating a connection. Commands that act for the
//! user call [`authenticate`], which reuses the stored token and logs in
//! again on the same connection when the token is missing, expired or
//! refused, so unattended jobs never break on expiry. [`end`] logs out.

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
    if let Some(session) = account.files().load_session()?
        && session.expires_at > unix_now() + EXPIRY_MARGIN_SECS
    {
        debug!("presenting the stored session token");
        match present(connection, user, &session.token) {
            Err(NetError::Server {
                code: ErrorCode::AuthFailed,
                ..
            }) => debug!("the server refused the stored token"),
            result => return result.map_err(AppError::from),
        }
    }
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
    let response = connection.request(&Request::Authenticate {
        user: user.to_owned(),
        token: Base64Bytes(token.expose().to_vec()),
    })?;
    match response {
        Response::Authenticated { user, .. } => Ok(user),
        other => Err(unexpected(&other)),
    }
}
