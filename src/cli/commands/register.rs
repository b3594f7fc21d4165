//! `msgr register`: make an identity key pair (passphrase-protected on
//! request) and a first signed prekey, keep them in the keyring, and
//! register the name, the public key and the prekey on the server with a
//! proof of possession bound to that server.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::RegisterArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult, ExitStatus};
use crate::cli::output::{Human, Render};
use crate::client::net::{NetError, unexpected};
use crate::client::session::{self, own_name};
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::{Base64Bytes, ErrorCode, Request, Response};
use crate::wire::signing;

/// Register the account. A key left by an interrupted registration is
/// reused, so retrying is safe; a refused name removes the key this run
/// made, and keeps one it reused.
pub fn run(context: &ClientContext, args: &RegisterArgs) -> AppResult<()> {
    let account = context.account()?;
    let (user, server) = (&context.user, &context.server);
    if account.is_registered() {
        return Err(AppError::new(
            ExitStatus::Refused,
            format!("{user} is already registered on {server} from this keyring"),
        )
        .hint(format!(
            "its key is in {}; run `msgr login` to start a session",
            account.identity_path().display()
        )));
    }
    let passphrase = match args.passphrase {
        true => Some(context.passphrase().choose()?),
        false => None,
    };
    let mut connection = context.connect()?;
    let fresh = !account.has_identity();
    let identity = if !fresh {
        context.identity(&account)?
    } else {
        let _spinner = context
            .output
            .spinner(&format!("generating a {}-bit RSA key", args.bits));
        PrivateKey::generate(args.bits).map_err(|e| AppError::local(e.to_string()))?
    };
    if fresh || passphrase.is_some() {
        account.save_identity(&identity, passphrase.as_ref().map(|p| p.expose()))?;
    }
    let public_key = identity.public_key();
    let public_der = public_key.to_der();
    // Made now, or left by an interrupted registration.
    let prekeys = session::prekeys_with_current(&account)?;
    let current = prekeys.current().expect("made if missing");
    let signed_prekey = session::sign_prekey(current, user, &identity)?;
    let prekey_id = current.id;
    let statement = signing::registration(connection.certificate_digest(), user, &public_der);
    let proof = identity
        .sign(&statement)
        .map_err(|e| AppError::local(e.to_string()))?;
    let request = Request::Register {
        user: user.clone(),
        public_key: Base64Bytes(public_der),
        signed_prekey,
        proof: Base64Bytes(proof),
    };
    match connection.request(&request) {
        Ok(Response::Registered { user: name }) => {
            let name = own_name(user, name)?;
            let mut prekeys = account.load_prekeys()?;
            prekeys.mark_published(prekey_id);
            account.save_prekeys(&prekeys)?;
            let fingerprint = public_key.fingerprint();
            account.mark_registered(&name, &fingerprint)?;
            let record = Registered {
                user: &name,
                server: server.to_string(),
                fingerprint,
                bits: public_key.bits(),
                passphrase_protected: account.identity_is_encrypted()?,
            };
            context.output.emit(&record).map_err(AppError::stdout)
        }
        Ok(other) => Err(unexpected(&other).into()),
        Err(NetError::Server {
            code: code @ (ErrorCode::NameTaken | ErrorCode::InvalidName),
            message,
        }) => {
            // Only a key made by this run is unused for sure: a key kept
            // from an interrupted registration may be the one the server
            // registered before its answer was lost.
            if fresh {
                account.remove_identity()?;
                account.remove_prekeys()?;
            }
            let message = match code {
                ErrorCode::NameTaken => format!("the name {user} is already taken on {server}"),
                _ => message,
            };
            Err(AppError::new(ExitStatus::Refused, message).hint("choose another name with --user"))
        }
        Err(error) => Err(error.into()),
    }
}

/// The result of `register`.
#[derive(Serialize)]
struct Registered<'a> {
    user: &'a str,
    server: String,
    fingerprint: String,
    bits: usize,
    passphrase_protected: bool,
}

impl Render for Registered<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(
            out,
            "Registered {} on {}; key fingerprint {}",
            self.user, self.server, self.fingerprint
        )
    }
}
