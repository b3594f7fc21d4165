//! The reference tables the README and `msgr man` share: the environment
//! variables, the exit statuses, where files live, and the example
//! session. `msgr man` renders them as the ENVIRONMENT, EXIT STATUS, FILES
//! and EXAMPLES sections of msgr(1) ([`man_sections`]); a test renders
//! them as Markdown and finds each table, row for row, in the README, so
//! that neither can drift from the other. Text in backticks is code: bold
//! in the manual page, as typed in the README. The README's table of the
//! metrics of `serve --metrics` is checked the same way against
//! [`METRICS`], the server's own catalogue.

use crate::cli::commands::serve::LOCK_FILE;
use crate::cli::error::ExitStatus;
pub use crate::server::metrics::CATALOGUE as METRICS;
use crate::server::sqlite::DB_FILE;
use crate::server::tls::{CERT_FILE, KEY_FILE};

/// A global option with its environment variable and `config.toml` key.
pub struct Setting {
    /// The flag and its value, as typed: `--server HOST:PORT`.
    pub flag: &'static str,
    /// Its environment variable.
    pub variable: &'static str,
    /// What the variable holds, when it is not the flag's value.
    pub holds: Option<&'static str>,
    /// Its `config.toml` key, if it has one.
    pub key: Option<&'static str>,
}

/// The global options that an environment variable can set, in the
/// README's order.
pub const SETTINGS: &[Setting] = &[
    Setting {
        flag: "--server HOST:PORT",
        variable: "MSGR_SERVER",
        holds: None,
        key: Some("server"),
    },
    Setting {
        flag: "--user NAME",
        variable: "MSGR_USER",
        holds: None,
        key: Some("user"),
    },
    Setting {
        flag: "--config-dir DIR",
        variable: "MSGR_CONFIG_DIR",
        holds: None,
        key: None,
    },
    Setting {
        flag: "--ca-cert FILE",
        variable: "MSGR_CA_CERT",
        holds: None,
        key: Some("ca_cert"),
    },
    Setting {
        flag: "--json[=BOOL]",
        variable: "MSGR_JSON",
        holds: None,
        key: Some("json"),
    },
    Setting {
        flag: "--passphrase-file FILE",
        variable: "MSGR_PASSPHRASE",
        holds: Some("the passphrase itself"),
        key: Some("passphrase_file"),
    },
    Setting {
        flag: "--pin-policy first-use|explicit",
        variable: "MSGR_PIN_POLICY",
        holds: None,
        key: Some("pin_policy"),
    },
    Setting {
        flag: "--timeout SECONDS",
        variable: "MSGR_TIMEOUT",
        holds: None,
        key: Some("timeout"),
    },
];

/// The other environment variables msgr reads: `(variables, effect)`.
pub const OTHER_VARIABLES: &[(&str, &str)] = &[
    (
        "`MSGR_DATA_DIR`",
        "the data directory of `msgr serve` and `msgr admin`, as `--data-dir DIR`; either \
         flag wins over it",
    ),
    (
        "`MSGR_DATABASE_URL`",
        "the PostgreSQL database of `msgr serve` and `msgr admin`, as `--database URL`; either \
         flag wins over it; the place for its password, which `ps` does not show",
    ),
    (
        "`RUST_LOG`",
        "the log filter (`RUST_LOG=msgr=debug`), unless `-v` or `-q` is given",
    ),
    ("`NO_COLOR`", "not empty: no colour, even on a terminal"),
    (
        "`CLICOLOR_FORCE`",
        "not empty: colour even when not on a terminal, unless `NO_COLOR` is set",
    ),
    ("`CLICOLOR`", "`0`: no colour"),
    (
        "`XDG_CONFIG_HOME`, `XDG_DATA_HOME`",
        "on Linux, the default config directory is `$XDG_CONFIG_HOME/msgr` (else \
         `~/.config/msgr`) and the default data directory `$XDG_DATA_HOME/msgr` (else \
         `~/.local/share/msgr`)",
    ),
];

/// An exit status, what it means, and what its JSON `code` notes.
pub struct Exit {
    /// The status.
    pub status: ExitStatus,
    /// The failures that end with it.
    pub meaning: &'static str,
    /// A remark after the JSON code, if any.
    pub code_note: Option<&'static str>,
}

/// Every exit status, in order.
pub const EXITS: &[Exit] = &[
    Exit {
        status: ExitStatus::Success,
        meaning: "success",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Failure,
        meaning: "local failure: keyring files, permissions, standard output; `msgr serve` \
                  cannot start (port taken, data directory in use)",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Usage,
        meaning: "usage: bad arguments, missing `--server`/`--user`, invalid name",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Connection,
        meaning: "connection: cannot connect, timed out (`--timeout`), TLS failure, protocol \
                  or server failure, the server is busy (no connection slot)",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Auth,
        meaning: "authentication: not registered in this keyring under that spelling of the \
                  server, the server refused the credentials, or a key rotation is unfinished",
        code_note: Some("also a wrong passphrase"),
    },
    Exit {
        status: ExitStatus::UnknownUser,
        meaning: "unknown user: the recipient or contact does not exist on the server",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Trust,
        meaning: "trust violation: server certificate or contact key differs from its pin, \
                  an unpinned contact under `pin_policy = \"explicit\"`, a server answer that \
                  is not what was asked for, or a message failed verification",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Refused,
        meaning: "refused by the server: name taken, key registered under too many \
                  accounts, message too large, mailbox or disk full, rate limits",
        code_note: None,
    },
    Exit {
        status: ExitStatus::Partial,
        meaning: "partial: a message reached some of its recipients but not all",
        code_note: None,
    },
];

/// A file or folder in one of msgr's directories.
pub struct FileEntry {
    /// How deep it is: 0 for the directory's own entries, 1 inside a
    /// folder listed just above it.
    pub depth: usize,
    /// Its name; a folder's ends in `/`.
    pub name: &'static str,
    /// What it holds.
    pub holds: &'static str,
}

/// A directory msgr keeps state in, and its entries.
pub struct Directory {
    /// The sentence that introduces it.
    pub intro: &'static str,
    /// Its entries; a folder's come right after it, one level deeper.
    pub entries: &'static [FileEntry],
}

const fn entry(depth: usize, name: &'static str, holds: &'static str) -> FileEntry {
    FileEntry { depth, name, holds }
}

/// The client's config directory.
pub const CONFIG_DIR: Directory = Directory {
    intro: "The client keeps its state in the config directory (`--config-dir`, default \
            `~/.config/msgr` on Linux):",
    entries: &[
        entry(0, "config.toml", "defaults for the global options"),
        entry(
            0,
            "known_servers.toml",
            "pinned server certificate fingerprints (or system-roots)",
        ),
        entry(
            0,
            "known_servers.lock",
            "held while a pin is added to known_servers.toml",
        ),
        entry(
            0,
            "history",
            "lines typed in interactive sessions, never a message (mode 0600)",
        ),
        entry(
            0,
            "accounts/<user>@<host:port>/",
            "one folder per account, named in lower case, made by register (mode 0700)",
        ),
        entry(
            1,
            "identity.pem",
            "private key, PKCS#8 PEM, encrypted with --passphrase (mode 0600)",
        ),
        entry(
            1,
            "identity.next.pem",
            "the new key of a `msgr rotate` not yet finished (mode 0600)",
        ),
        entry(
            1,
            "account.toml",
            "written once the server confirmed registration",
        ),
        entry(1, "session.toml", "session token and its expiry"),
        entry(
            1,
            "prekeys.toml",
            "private halves of the signed and unused one-time prekeys (mode 0600)",
        ),
        entry(
            1,
            "contacts.toml",
            "pinned public keys of other users (and their last signed prekey)",
        ),
        entry(
            1,
            "seen.txt",
            "ids of messages already shown, with their send times",
        ),
        entry(
            1,
            "claimed/<user>/<id>",
            "a one-time prekey of <user> kept for the next message to them",
        ),
        entry(
            1,
            "received/<user>-<id>",
            "a binary body `read` saved instead of printing it",
        ),
        entry(
            1,
            "rejected/<user>-<id>.json",
            "a message that failed verification, kept for `read --retry-rejected`",
        ),
        entry(1, "lock", "held while a command changes the account"),
    ],
};

/// The server's data directory.
pub const DATA_DIR: Directory = Directory {
    intro: "The server keeps its state in the data directory (`--data-dir`, default \
            `~/.local/share/msgr` on Linux):",
    entries: &[
        entry(
            0,
            DB_FILE,
            "the database: SQLite in WAL mode with full sync (mode 0600)",
        ),
        entry(
            0,
            "msgr.db-wal, msgr.db-shm",
            "its write-ahead log and shared memory (mode 0600)",
        ),
        entry(
            0,
            CERT_FILE,
            "the self-signed certificate made on first start, unless --cert and --key are given",
        ),
        entry(0, KEY_FILE, "its private key (mode 0600)"),
        entry(
            0,
            LOCK_FILE,
            "held by the `msgr serve` using the directory, with its process id",
        ),
    ],
};

/// The directories, client first.
pub const DIRECTORIES: [&Directory; 2] = [&CONFIG_DIR, &DATA_DIR];

/// A command of the example session, and what it does.
pub struct Example {
    /// The command line.
    pub command: &'static str,
    /// The comment after it, if any.
    pub comment: Option<&'static str>,
}

/// The example session: a server, two users, a message.
pub const EXAMPLES: &[Example] = &[
    Example {
        command: "msgr serve 12000",
        comment: Some("server: prints its address and certificate fingerprint"),
    },
    Example {
        command: "msgr --server localhost:12000 --user Alice register",
        comment: Some("keypair made and kept locally, name registered"),
    },
    Example {
        command: "msgr --server localhost:12000 --user John register",
        comment: None,
    },
    Example {
        command: "msgr --server localhost:12000 --user Alice login",
        comment: Some("optional: other commands log in by themselves"),
    },
    Example {
        command: "msgr --server localhost:12000 --user Alice key John",
        comment: Some("fetch, pin and show John's key fingerprint"),
    },
    Example {
        command: "msgr --server localhost:12000 --user Alice create John \"Hello John! How are you?\"",
        comment: None,
    },
    Example {
        command: "msgr --server localhost:12000 --user John read",
        comment: None,
    },
];

/// The example session as a block of text, the comments aligned one
/// column after the longest command that has one.
pub fn example_block() -> String {
    let column = EXAMPLES
        .iter()
        .filter(|example| example.comment.is_some())
        .map(|example| example.command.len() + 1)
        .max()
        .unwrap_or(0);
    let mut block = String::new();
    for example in EXAMPLES {
        match example.comment {
            Some(comment) => {
                block += &format!("{:column$}# {comment}\n", example.command);
            }
            None => block += &format!("{}\n", example.command),
        }
    }
    block
}

impl FileEntry {
    /// Its path in the directory: its folder's path and its name.
    fn path(&self, entries: &[FileEntry]) -> String {
        let folder = entries
            .iter()
            .take_while(|other| !std::ptr::eq(*other, self))
            .filter(|other| other.depth + 1 == self.depth)
            .last();
        match folder {
            Some(folder) => format!("{}{}", folder.path(entries), self.name),
            None => self.name.to_owned(),
        }
    }
}

/// The ENVIRONMENT, EXIT STATUS, FILES and EXAMPLES sections of msgr(1),
/// as roff.
pub fn man_sections() -> String {
    let mut roff = String::from(".SH ENVIRONMENT\n");
    for setting in SETTINGS {
        let flag = format!("`{}`", setting.flag);
        let mut text = match setting.holds {
            Some(holds) => format!("{}, in place of {flag}", capitalized(holds)),
            None => format!("The same as {flag}"),
        };
        text += ", which wins over it";
        if let Some(key) = setting.key {
            text += &format!("; it wins over `{key}` in `config.toml`");
        }
        roff += &tagged(&format!("`{}`", setting.variable), &format!("{text}."));
    }
    for (variables, effect) in OTHER_VARIABLES {
        roff += &tagged(variables, &format!("{}.", capitalized(effect)));
    }
    roff += ".SH \"EXIT STATUS\"\n";
    for exit in EXITS {
        let mut text = capitalized(exit.meaning);
        if exit.status != ExitStatus::Success {
            text += &format!(". JSON code `{}`", exit.status.code());
            if let Some(note) = exit.code_note {
                text += &format!(" ({note})");
            }
        }
        roff += &tagged(&format!("`{}`", exit.status as u8), &format!("{text}."));
    }
    roff += ".SH FILES\n";
    for (index, directory) in DIRECTORIES.iter().enumerate() {
        if index > 0 {
            roff += ".PP\n";
        }
        roff += &line(directory.intro);
        for entry in directory.entries {
            let path = format!("`{}`", entry.path(directory.entries));
            roff += &tagged(&path, &format!("{}.", capitalized(entry.holds)));
        }
    }
    roff += ".SH EXAMPLES\n.PP\n.nf\n.RS 4\n";
    for example in example_block().lines() {
        roff += &format!("\\&{}\n", escape(example));
    }
    roff += ".RE\n.fi\n";
    roff
}

/// A `.TP` paragraph: `tag` on its own line, `text` indented below it.
fn tagged(tag: &str, text: &str) -> String {
    format!(".TP\n{}{}", line(tag), line(text))
}

/// `text` as one line of roff text.
fn line(text: &str) -> String {
    let text = inline(text);
    // A line starting with a dot would be a request.
    match text.starts_with('.') {
        true => format!("\\&{text}\n"),
        false => format!("{text}\n"),
    }
}

/// `text` with its code spans in bold, escaped for roff.
fn inline(text: &str) -> String {
    let mut roff = String::new();
    for (index, part) in text.split('`').enumerate() {
        match index % 2 {
            // \% keeps a word of code from being hyphenated.
            1 => roff += &format!("\\fB\\%{}\\fR", escape(part).replace(' ', " \\%")),
            _ => roff += &escape(part),
        }
    }
    roff
}

/// `text` with the characters roff would read as its own escaped.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
        .replace('-', "\\-")
        .replace('\'', "\\*(Aq")
}

/// `text` with its first letter upper case.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
