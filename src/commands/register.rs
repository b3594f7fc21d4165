//! `msgr register`: make a key pair, keep it in the keyring, and register
//! the name and public key on the server with proof of possession.

use crate::cli::RegisterArgs;
use crate::context::ClientContext;
use crate::crypto::PrivateKey;
use crate::error::{AppError, AppResult, ExitStatus};
use crate::net::{NetError, unexpected};
use crate::protocol::{Base64Bytes, ErrorCode, Request, Response, registration_proof_message};

/// Register the account. A key left by an interrupted registration is
/// reused, so retrying is safe; a refused name removes the unused key.
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
    let mut connection = context.connect()?;
    let identity = if account.has_identity() {
        account.load_identity()?
    } else {
        let key = PrivateKey::generate(args.bits).map_err(|e| AppError::local(e.to_string()))?;
        account.save_identity(&key)?;
        key
    };
    let public_der = identity.public_key().to_der();
    let proof = identity
        .sign(&registration_proof_message(user, &public_der))
        .map_err(|e| AppError::local(e.to_string()))?;
    let request = Request::Register {
        user: user.clone(),
        public_key: Base64Bytes(public_der),
        proof: Base64Bytes(proof),
    };
    match connection.request(&request) {
        Ok(Response::Registered { user: name }) => {
            let fingerprint = identity.public_key().fingerprint();
            account.mark_registered(&name, &fingerprint)?;
            println!("Registered {name} on {server}; key fingerprint {fingerprint}");
            Ok(())
        }
        Ok(other) => Err(unexpected(&other).into()),
        Err(NetError::Server {
            code: code @ (ErrorCode::NameTaken | ErrorCode::InvalidName),
            message,
        }) => {
            account.remove_identity()?;
            let message = match code {
                ErrorCode::NameTaken => format!("the name {user} is already taken on {server}"),
                _ => message,
            };
            Err(AppError::new(ExitStatus::Refused, message).hint("choose another name with --user"))
        }
        Err(error) => Err(error.into()),
    }
}
