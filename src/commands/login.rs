//! `msgr login`: get a fresh session token and keep it in the keyring.

use crate::context::ClientContext;
use crate::error::AppResult;
use crate::session;

use super::{format_time, require_identity};

/// Log in and report until when the session is valid.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account()?;
    let identity = require_identity(context, &account)?;
    let mut connection = context.connect()?;
    let session = session::login(&mut connection, &account, &context.user, &identity)?;
    println!(
        "Logged in as {} on {}; the session is valid until {}",
        context.user,
        context.server,
        format_time(session.expires_at * 1000)
    );
    Ok(())
}
