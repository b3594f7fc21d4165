//! User-name rules: 1–32 ASCII letters, digits, `.`, `_` or `-`, unique
//! regardless of letter case. Checked before a name reaches a path or a
//! request.

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
pub fn validate_username(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.to_owned()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    // "." and ".." are legal by the character rule but would be path
    // traversal in the client's account folders.
    if !name.chars().all(allowed) || name.chars().all(|c| c == '.') {
        return Err(NameError::BadCharacter(name.to_owned()));
    }
    Ok(())
}

/// The case-insensitive form that decides uniqueness and pins.
pub fn canonical_name(name: &str) -> String {
    name.to_ascii_lowercase()
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
    fn canonical_form_ignores_case() {
        assert_eq!(canonical_name("JoHn"), canonical_name("john"));
    }
}
