//! User-name rules: 1–32 ASCII letters, digits, `.`, `_` or `-`, unique
//! regardless of letter case. [`UserName`] holds a name that passed them,
//! so code that takes one needs no check of its own before the name
//! reaches a path, a signed statement or a request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest user name accepted.
pub const MAX_NAME_LEN: usize = 32;

/// Why a user name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// Empty name.
    #[error("user name is empty; use 1 to 32 letters, digits, '.', '_' or '-'")]
    Empty,
    /// More than [`MAX_NAME_LEN`] characters.
    #[error("user name {0:?} is longer than 32 characters")]
    TooLong(String),
    /// A character outside the allowed set, or a name made only of dots.
    #[error("user name {0:?} may only contain letters, digits, '.', '_' and '-'")]
    BadCharacter(String),
}

/// Check a user name against the naming rules.
fn validate_username(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(shortened(name)));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    // "." and ".." are legal by the character rule but would be path
    // traversal in the client's account folders.
    if !name.chars().all(allowed) || name.chars().all(|c| c == '.') {
        return Err(NameError::BadCharacter(shortened(name)));
    }
    Ok(())
}

/// `name` as an error message quotes it: at most a little more than a
/// valid name, so that a huge name is not echoed back whole.
fn shortened(name: &str) -> String {
    const SHOWN: usize = 2 * MAX_NAME_LEN;
    match name.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &name[..end]),
        None => name.to_owned(),
    }
}

/// The case-insensitive form that decides uniqueness and pins.
pub fn canonical_name(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A user name that follows the naming rules, spelt as it was given. Read
/// from a file, it is checked like any other.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive form that decides uniqueness and pins.
    pub fn canonical(&self) -> String {
        canonical_name(&self.0)
    }

    /// Whether `other` names the same account, letter case ignored.
    pub fn is(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }

    /// `answered` as a name, if it names this account in some letter case
    /// (and so follows the rules too).
    pub fn same_account(&self, answered: String) -> Option<UserName> {
        self.is(&answered).then_some(Self(answered))
    }
}

impl FromStr for UserName {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, NameError> {
        validate_username(name)?;
        Ok(Self(name.to_owned()))
    }
}

impl TryFrom<String> for UserName {
    type Error = NameError;

    fn try_from(name: String) -> Result<Self, NameError> {
        validate_username(&name)?;
        Ok(Self(name))
    }
}

impl PartialEq<&str> for UserName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// `name` as a [`UserName`], for tests that spell valid names.
#[cfg(test)]
pub fn username(name: &str) -> UserName {
    name.parse().expect("a valid test name")
}

impl From<UserName> for String {
    fn from(name: UserName) -> Self {
        name.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for UserName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        for name in ["Alice", "a", "john.doe_2-x", &"x".repeat(32)] {
            assert_eq!(validate_username(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn rejects_empty_long_and_foreign_characters() {
        assert_eq!(validate_username(""), Err(NameError::Empty));
        assert!(matches!(
            validate_username(&"x".repeat(33)),
            Err(NameError::TooLong(_))
        ));
        for name in ["a b", "a/b", "..", ".", "ä", "a@b", "a\0"] {
            assert!(
                matches!(validate_username(name), Err(NameError::BadCharacter(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn a_huge_name_is_not_echoed_back_whole() {
        let huge = "é".repeat(1 << 20);
        let message = validate_username(&huge).unwrap_err().to_string();
        assert!(message.len() < 200, "{} bytes", message.len());
        assert!(
            message.contains(&format!("{}…", "é".repeat(64))),
            "{message}"
        );
        let bad = "a b".to_owned();
        assert_eq!(
            validate_username(&bad),
            Err(NameError::BadCharacter(bad.clone()))
        );
    }

    #[test]
    fn canonical_form_ignores_case() {
        assert_eq!(canonical_name("JoHn"), canonical_name("john"));
        let name: UserName = "JoHn".parse().unwrap();
        assert_eq!(name.as_str(), "JoHn");
        assert_eq!(name.canonical(), "john");
        assert!(name.is("JOHN"));
        assert!(!name.is("johnny"));
        assert_eq!(
            name.same_account("JOHN".into()).map(String::from),
            Some("JOHN".to_owned())
        );
        assert_eq!(name.same_account("jon".into()), None);
    }

    #[test]
    fn a_user_name_exists_only_for_a_valid_name() {
        assert_eq!(
            "..".parse::<UserName>(),
            Err(NameError::BadCharacter("..".into()))
        );
        assert_eq!(UserName::try_from(String::new()), Err(NameError::Empty));
    }
}
