//! `msgr key NAME`: fetch a user's public key, pin it, and print its
//! fingerprint for out-of-band comparison.

use crate::cli::KeyArgs;
use crate::context::ClientContext;
use crate::directory::{self, PinStatus};
use crate::error::{AppError, AppResult, ExitStatus};
use crate::protocol::validate_username;

/// Print `NAME FINGERPRINT`; a changed key is refused unless `--replace`.
pub fn run(context: &ClientContext, args: &KeyArgs) -> AppResult<()> {
    validate_username(&args.name).map_err(|e| AppError::new(ExitStatus::Usage, e.to_string()))?;
    let account = context.account()?;
    let mut connection = context.connect()?;
    let checked = directory::fetch_checked(&mut connection, &account, &args.name, args.replace)?;
    match checked.status {
        PinStatus::New => eprintln!("msgr: pinned the key of {}", checked.name),
        PinStatus::Replaced => eprintln!("msgr: replaced the pinned key of {}", checked.name),
        PinStatus::Unchanged => {}
    }
    println!("{} {}", checked.name, checked.key.fingerprint());
    Ok(())
}
