//! `msgr key NAME`: fetch a user's public key, pin it, and print its
//! fingerprint for out-of-band comparison.

use std::io::Write;

use serde::Serialize;

use crate::cli::KeyArgs;
use crate::context::ClientContext;
use crate::directory::{self, PinStatus};
use crate::error::{AppError, AppResult};
use crate::output::{Human, Render};
use crate::protocol::validate_username;

/// Print `NAME FINGERPRINT`; a changed key is refused unless `--replace`.
pub fn run(context: &ClientContext, args: &KeyArgs) -> AppResult<()> {
    validate_username(&args.name).map_err(|e| AppError::usage(e.to_string()))?;
    let account = context.account()?;
    let mut connection = context.connect()?;
    let checked = directory::fetch_checked(&mut connection, &account, &args.name, args.replace)?;
    let pin = match checked.status {
        PinStatus::New => {
            context
                .output
                .notice(&format!("pinned the key of {}", checked.name));
            "new"
        }
        PinStatus::Replaced => {
            context
                .output
                .notice(&format!("replaced the pinned key of {}", checked.name));
            "replaced"
        }
        PinStatus::Unchanged => "unchanged",
    };
    let record = KeyRecord {
        user: &checked.name,
        fingerprint: checked.key.fingerprint(),
        bits: checked.key.bits(),
        pin,
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// The result of `key`.
#[derive(Serialize)]
struct KeyRecord<'a> {
    user: &'a str,
    fingerprint: String,
    bits: usize,
    /// `new`, `unchanged` or `replaced`.
    pin: &'static str,
}

impl Render for KeyRecord<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(out, "{} {}", self.user, self.fingerprint)
    }
}
