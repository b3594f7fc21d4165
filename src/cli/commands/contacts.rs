//! `msgr contacts`: the public keys pinned in this account, one per line
//! with its fingerprint (JSON: one object per line). Local only.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use crate::cli::context::ClientContext;
use crate::cli::error::{AppError, AppResult};
use crate::cli::output::{Human, Render};

/// Print every pinned contact, ordered by name.
pub fn run(context: &ClientContext) -> AppResult<()> {
    let account = context.account_dir()?;
    let contacts = account.all_contacts()?;
    for contact in &contacts {
        let record = ContactRecord {
            user: contact.name.as_str(),
            fingerprint: contact.key.fingerprint(),
            bits: contact.key.bits(),
        };
        context.output.emit(&record).map_err(AppError::stdout)?;
    }
    if contacts.is_empty() && !context.output.is_json() && std::io::stdout().is_terminal() {
        context
            .output
            .notice("no keys pinned yet; `msgr key NAME` pins one");
    }
    Ok(())
}

/// One pinned contact.
#[derive(Serialize)]
struct ContactRecord<'a> {
    user: &'a str,
    fingerprint: String,
    bits: usize,
}

impl Render for ContactRecord<'_> {
    fn human(&self, out: &mut Human<'_>) -> std::io::Result<()> {
        writeln!(out, "{} {}", self.user, self.fingerprint)
    }
}
