//! Parsed user input: once a value is one of these types, it is valid.
//!
//! Lengths are counted in Unicode scalar values (`char`s), except the password maximum, which
//! is in bytes because that is what the hash consumes.

use evently_core::Problem;
use secrecy::{ExposeSecret, SecretString};
use std::fmt;

/// A normalised email address: trimmed, lowercased, one `@`, a dotted domain, at most 254
/// characters. Two spellings that differ only in case are the same email.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses and normalises `raw`.
    ///
    /// # Errors
    /// 422 on `/email` when it is not a plausible address.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let email = raw.trim().to_lowercase();
        let invalid = |why: &str| Problem::invalid_field("/email", why.to_owned());
        if email.is_empty() {
            return Err(invalid("email is required"));
        }
        if email.chars().count() > 254 {
            return Err(invalid("email is longer than 254 characters"));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "email must not contain spaces or control characters",
            ));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(invalid("email must contain @"));
        };
        if local.is_empty() || local.chars().count() > 64 || domain.contains('@') {
            return Err(invalid("email is not a valid address"));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels
                .iter()
                .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-'))
        {
            return Err(invalid("email domain is not valid"));
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds an email read back from the store (already normalised).
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

impl fmt::Debug for Email {
    // Emails are personal data; keep them out of debug logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

/// Passwords shorter than this are refused (NIST SP 800-63B, OWASP ASVS 6.2.1).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Passwords longer than this many characters are refused, bounding hashing work.
pub const MAX_PASSWORD_CHARS: usize = 1024;

static COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

/// A password that meets the policy: 8 to 1024 characters, not one of the most
/// common passwords. No composition rules. Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks `raw` against the policy.
    ///
    /// # Errors
    /// 422 on `/password`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let invalid = |why: &str| Problem::invalid_field("/password", why.to_owned());
        if raw.chars().count() < MIN_PASSWORD_CHARS {
            return Err(invalid("password must be at least 8 characters"));
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(invalid("password must be at most 1024 characters"));
        }
        if raw.contains('\0') {
            return Err(invalid("password must not contain NUL characters"));
        }
        let lowered = raw.to_lowercase();
        if COMMON_PASSWORDS
            .lines()
            .any(|common| common.trim() == lowered)
        {
            return Err(invalid(
                "password is too common; choose one that is harder to guess",
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The secret, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A display name: trimmed, 1 to 100 characters, no control characters. Stored exactly as
/// given (after trimming), so any script and emoji round-trip unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Parses `raw`.
    ///
    /// # Errors
    /// 422 on `/name`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let name = raw.trim();
        let invalid = |why: &str| Problem::invalid_field("/name", why.to_owned());
        if name.is_empty() {
            return Err(invalid("name is required"));
        }
        if raw.chars().count() > 100 {
            return Err(invalid("name must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(invalid("name must not contain control characters"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a name read back from the store.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

/// A phone number: an optional leading `+` and 6 to 15 digits; spaces, dashes, dots and
/// parentheses are accepted and removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

impl Phone {
    /// Parses `raw`.
    ///
    /// # Errors
    /// 422 on `/phone`.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let trimmed = raw.trim();
        let (plus, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => ("+", rest),
            None => ("", trimmed),
        };
        let mut digits = String::new();
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(Problem::invalid_field(
                        "/phone",
                        "phone may contain only digits, spaces, dashes, dots, parentheses and a leading +",
                    ));
                }
            }
        }
        if !(6..=15).contains(&digits.len()) {
            return Err(Problem::invalid_field(
                "/phone",
                "phone must have 6 to 15 digits",
            ));
        }
        Ok(Self(format!("{plus}{digits}")))
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a phone read back from the store.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(
            Email::parse("  A@Example.IO ").unwrap().as_str(),
            "a@example.io"
        );
        for bad in [
            "", "a", "a@", "@b.io", "a@b", "a b@c.io", "a@@b.io", "a@b..io", "a@-b.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn password_policy() {
        assert!(Password::parse("7chars!").is_err());
        assert!(Password::parse("correct horse").is_ok());
        assert!(Password::parse(&"x9".repeat(32)).is_ok());
        assert!(Password::parse(&"x9".repeat(64)).is_ok());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        assert!(Password::parse("password").is_err());
        assert!(Password::parse("Password1").is_err());
        assert!(Password::parse("12345678").is_err());
    }

    #[test]
    fn names_keep_unicode_and_refuse_controls() {
        assert_eq!(Name::parse(" Zoë 🎟 ").unwrap().as_str(), "Zoë 🎟");
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Name::parse("   ").is_err());
        assert!(Name::parse(&"é".repeat(100)).is_ok());
        assert!(Name::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn phones_are_normalised() {
        assert_eq!(
            Phone::parse("+1 (555) 010-9999").unwrap().as_str(),
            "+15550109999"
        );
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("call me").is_err());
    }

    proptest! {
        #[test]
        fn email_parse_is_idempotent(local in "[a-zA-Z0-9._%+-]{1,20}", domain in "[a-zA-Z0-9]{1,10}\\.[a-z]{2,5}") {
            let raw = format!("{local}@{domain}");
            if let Ok(email) = Email::parse(&raw) {
                let again = Email::parse(email.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), email.as_str());
            }
        }

        /// A parsed phone is canonical: parsing it again gives it back.
        #[test]
        fn phone_parse_round_trips(s in "\\+?[0-9 ().-]{0,25}|\\PC{0,20}") {
            if let Ok(phone) = Phone::parse(&s) {
                prop_assert_eq!(Phone::parse(phone.as_str()).unwrap(), phone);
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = Email::parse(&s);
            let _ = Password::parse(&s);
            let _ = Name::parse(&s);
            let _ = Phone::parse(&s);
        }
    }
}
