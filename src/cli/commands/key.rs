//! `msgr key NAME`: fetch a user's public key, pin it, and print its
//! fingerprint for out-of-band comparison; with `--expect FINGERPRINT`,
//! pin (or replace the pin with) only the key of that fingerprint.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::KeyArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Render};
use crate::client::directory::{self, Acceptance, PinPolicy, PinStatus};
use crate::wire::protocol::UserName;

/// Print `NAME FINGERPRINT`; a changed key is refused unless it has the
/// `--expect`ed fingerprint.
pub fn run(context: &ClientContext, args: &KeyArgs) -> AppResult<()> {
    let name: UserName = args.name.parse().map_err(Failure::BadName)?;
    if let Some(expect) = &args.expect
        && !is_fingerprint(expect)
    {
        return Err(Failure::NotAFingerprint(expect.clone()).into());
    }
    let account = context.account()?;
    let mut connection = context.connect()?;
    // Asking for the key by name is the explicit way to pin it, whatever
    // the pin policy says about pinning on sight.
    let acceptance = Acceptance {
        policy: PinPolicy::FirstUse,
        expect: args.expect.as_deref(),
    };
    let checked = directory::fetch_checked(&mut connection, &account, &name, acceptance)?;
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
        PinStatus::Rotated => {
            context.output.pin_changes(&checked);
            "rotated"
        }
        PinStatus::Unchanged => "unchanged",
    };
    let record = KeyRecord {
        user: checked.name.as_str(),
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
    /// `new`, `unchanged`, `replaced` or `rotated`.
    pin: &'static str,
}

/// Whether `text` has the form of a key fingerprint: `SHA256:` and the
/// unpadded base64 of 32 bytes.
fn is_fingerprint(text: &str) -> bool {
    text.strip_prefix("SHA256:").is_some_and(|digest| {
        digest.len() == 43
            && digest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    })
}

impl Render for KeyRecord<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(out, "{} {}", self.user, self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_recognised() {
        let real = crate::wire::crypto::fingerprint(b"key");
        assert!(is_fingerprint(&real));
        assert!(!is_fingerprint(&real[1..]));
        assert!(!is_fingerprint("SHA256:short"));
        assert!(!is_fingerprint(&format!("{real}=")));
    }
}
