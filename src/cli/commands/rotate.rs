//! `msgr rotate`: replace the account's identity key with a new one. The
//! server records the rotation, signed by both keys, and serves it with the
//! key, so that contacts who pinned the old key move their pin by
//! themselves; messages queued before stay readable. The new key is
//! passphrase-protected if the old one was or `--passphrase` asks.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::RotateArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Render};
use crate::client::rotation;
use crate::wire::crypto::PrivateKey;

/// Rotate the key; a rotation left unfinished is finished with the key it
/// made.
pub fn run(context: &ClientContext, args: &RotateArgs) -> AppResult<()> {
    let account = context.account()?;
    let registration = context.registration(&account)?;
    let old = context.replaced_identity(&account)?;
    let new = match account.load_pending_identity()? {
        Some(pending) => {
            if args.bits.is_some() || args.passphrase {
                context.output.warning(
                    "finishing the rotation interrupted earlier, with the key it made; \
                     --bits and --passphrase apply to the next rotation",
                );
            }
            context.unlock(pending)?
        }
        None => {
            let protect = args.passphrase || account.identity_is_encrypted()?;
            let passphrase = match protect {
                true => Some(context.passphrase().choose()?),
                false => None,
            };
            let bits = args.bits.unwrap_or(old.public_key().bits());
            let new = {
                let _spinner = context
                    .output
                    .spinner(&format!("generating a {bits}-bit RSA key"));
                PrivateKey::generate(bits).map_err(Failure::KeyGeneration)?
            };
            account.save_pending_identity(&new, passphrase.as_ref().map(|p| p.expose()))?;
            new
        }
    };
    let mut connection = context.connect()?;
    let me = rotation::rotate(&mut connection, &account, &context.user, &old, &new)?;
    let record = Rotated {
        user: me.as_str(),
        old_fingerprint: old.public_key().fingerprint(),
        fingerprint: new.public_key().fingerprint(),
        keys: registration.previous.len() + 2,
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// The result of `rotate`.
#[derive(Serialize)]
struct Rotated<'a> {
    user: &'a str,
    old_fingerprint: String,
    fingerprint: String,
    /// How many keys the account has had, this one included.
    keys: usize,
}

impl Render for Rotated<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Replaced the key of {} {} with {}; contacts follow it on their next contact",
            self.user, self.old_fingerprint, self.fingerprint
        )
    }
}
