//! `msgr create RECIPIENT [MESSAGE]`: seal a message to the recipient's
//! checked key and queue it on the server.

use std::io::Read;

use crate::cli::CreateArgs;
use crate::context::ClientContext;
use crate::directory;
use crate::envelope::{self, Header};
use crate::error::{AppError, AppResult, ExitStatus};
use crate::net::unexpected;
use crate::protocol::{Base64Bytes, Request, Response, validate_username};
use crate::session;

use super::require_identity;

/// Most bytes read from standard input; servers accept far less.
const STDIN_LIMIT: u64 = 64 * 1024 * 1024;

/// Send one message and print where it went.
pub fn run(context: &ClientContext, args: &CreateArgs) -> AppResult<()> {
    validate_username(&args.recipient)
        .map_err(|e| AppError::new(ExitStatus::Usage, e.to_string()))?;
    let body = read_body(args.message.as_deref())?;
    let account = context.account()?;
    let identity = require_identity(context, &account)?;
    let mut connection = context.connect()?;
    check_size(body.len() as u64, connection.max_envelope())?;
    let me = session::authenticate(&mut connection, &account, &context.user, &identity)?;
    let recipient = directory::fetch_checked(&mut connection, &account, &args.recipient, false)?;
    let header = Header::new(&me, &recipient.name);
    let sealed = envelope::seal(&header, &body, &identity, &recipient.key)
        .map_err(|e| AppError::local(format!("cannot seal the message: {e}")))?;
    check_size(sealed.len() as u64, connection.max_envelope())?;
    let response = connection.request(&Request::Send {
        recipient: recipient.name.clone(),
        envelope: Base64Bytes(sealed),
    })?;
    let Response::Sent { .. } = response else {
        return Err(unexpected(&response).into());
    };
    println!("Sent to {}", recipient.name);
    Ok(())
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
