//! `msgr register`: make an identity key pair (passphrase-protected on
//! request) and a first signed prekey, keep them in the keyring, and
//! register the name, the public key and the prekey on the server with a
//! proof of possession bound to that server. A keyring whose account the
//! server no longer knows (it lost its data) registers the same key again.

use std::io::Write;

use serde::Serialize;

use crate::cli::args::RegisterArgs;
use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::failure::Failure;
use crate::cli::output::{Human, Render};
use crate::client::directory;
use crate::client::net::{Connection, NetError};
use crate::client::session;
use crate::wire::crypto::PrivateKey;
use crate::wire::protocol::{ErrorCode, UserName};

/// Register the account. A key left by an interrupted registration is
/// reused, so retrying is safe (see [`session::register`]); so is the key
/// of an account the server has lost.
pub fn run(context: &ClientContext, args: &RegisterArgs) -> AppResult<()> {
    let account = context.new_account()?;
    let (user, server) = (&context.user, &context.server);
    let already = || Failure::AlreadyRegistered {
        user: user.to_string(),
        server: server.to_string(),
        identity: account.identity_path(),
    };
    let again = account.is_registered();
    if again && args.passphrase {
        return Err(already().into());
    }
    let passphrase = match args.passphrase {
        true => Some(context.passphrase().choose()?),
        false => None,
    };
    let fresh = !account.has_identity();
    // Made before connecting: a connection that is not logged in may stay
    // silent only briefly, and a large key takes a while.
    let identity = if !fresh {
        context.identity(&account)?
    } else {
        let _spinner = context
            .output
            .spinner(&format!("generating a {}-bit RSA key", args.bits));
        PrivateKey::generate(args.bits).map_err(Failure::KeyGeneration)?
    };
    let mut connection = context.connect()?;
    if again && server_knows(&mut connection, user)? {
        return Err(already().into());
    }
    if fresh || passphrase.is_some() {
        account.save_identity(&identity, passphrase.as_ref().map(|p| p.expose()))?;
    }
    let server_name = server.to_string();
    let name = session::register(
        &mut connection,
        &account,
        &server_name,
        user,
        &identity,
        fresh,
    )?;
    if again {
        context.output.notice(&format!(
            "{server} did not know {name} (it may have lost its data); registered this keyring's key again"
        ));
    }
    let public_key = identity.public_key();
    let record = Registered {
        user: name.as_str(),
        server: server_name,
        fingerprint: public_key.fingerprint(),
        bits: public_key.bits(),
        passphrase_protected: account.identity_is_encrypted()?,
    };
    context.output.emit(&record).map_err(AppError::stdout)
}

/// Whether the server has an account named `user` (whatever its key).
fn server_knows(connection: &mut Connection, user: &UserName) -> AppResult<bool> {
    match connection.request(&directory::key_request(user, false)) {
        Ok(_) => Ok(true),
        Err(NetError::Server {
            code: ErrorCode::UnknownUser,
            ..
        }) => Ok(false),
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
