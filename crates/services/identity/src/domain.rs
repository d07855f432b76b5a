//! The rules of identity as types: an [`Email`] is normalised and plausible, a [`Password`] has
//! an acceptable length, a [`DisplayName`] is trimmed and bounded. Each parses once at the edge,
//! so the rest of the service handles only values that are already known to be valid. No I/O.
//! Emails and names follow the platform's text rule ([`flotilla_chassis::text`]), so an
//! identity cannot look like another (`аdmin` with a Cyrillic а, a zero-width space).

use flotilla_chassis::Role;
use flotilla_chassis::problem::FieldError;
use flotilla_chassis::text::{self, TextError};
use time::OffsetDateTime;

use crate::contract::SignupRequest;

/// Shortest password accepted (OWASP ASVS 2.1.1 asks for at least 8).
const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted: long enough for passphrases, short enough to bound the work.
const MAX_PASSWORD_CHARS: usize = 128;
/// Longest display name accepted.
const MAX_NAME_CHARS: usize = 100;

/// A user id: a UUIDv7 made here, so ids sort by creation time on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// A fresh id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// An id read back from storage or from a trusted caller header.
    pub fn from_trusted(id: String) -> Self {
        Self(id)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, trimmed and lower-cased, with the shape the sign-up form promises: see
/// [`text::email_address`] (ASCII before the `@`, an IDNA domain, no look-alike letters).
///
/// The check is deliberately shallow otherwise: the only real proof an address works is a
/// message that arrives, which a later issue may add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        text::email_address(raw).map(Self)
    }

    /// An address read back from storage, where only parsed addresses are written. Not checked
    /// again, so that tightening the rules later cannot lock existing users out.
    pub fn from_stored(email: String) -> Self {
        Self(email)
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of acceptable length. Its `Debug` output is redacted.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks a new password's length (in characters, not bytes, so that non-ASCII passphrases
    /// are judged the way their owners count them).
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err("must be at least 8 characters");
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err("must be at most 128 characters");
        }
        Ok(Self(raw))
    }

    /// A password as typed at login: not checked, because a login attempt must fail the same way
    /// whatever is wrong with it.
    pub fn unchecked(raw: String) -> Self {
        Self(raw)
    }

    /// The bytes to hash.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// A PHC-format Argon2 hash, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`. `Debug` is redacted:
/// a hash is not a password, but it is what an offline guessing attack starts from.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// A PHC string, as the hasher writes it or read back from storage.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storage.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// A display name: trimmed, NFC, 1 to 100 characters, no control, invisible or
/// direction-changing characters ([`text::clean_text`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims, normalises and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, TextError> {
        text::clean_text(raw, MAX_NAME_CHARS).map(Self)
    }

    /// A name read back from storage (see [`Email::from_stored`]).
    pub fn from_stored(name: String) -> Self {
        Self(name)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid sign-up. There is no role here: sign-up always creates customers, whatever the
/// request body says.
#[derive(Debug)]
pub struct NewUser {
    /// The login address.
    pub email: Email,
    /// The chosen password.
    pub password: Password,
    /// The display name.
    pub name: DisplayName,
}

impl NewUser {
    /// Parses a sign-up request, reporting every invalid field at once.
    pub fn parse(req: SignupRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut field = |name: &str, message: &str| {
            errors.push(FieldError {
                field: name.to_owned(),
                message: message.to_owned(),
            });
        };
        let email = Email::parse(&req.email).map_err(|m| field("email", &m.to_string()));
        let password = Password::parse(req.password).map_err(|m| field("password", m));
        let name = DisplayName::parse(&req.name).map_err(|m| field("name", &m.to_string()));
        match (email, password, name) {
            (Ok(email), Ok(password), Ok(name)) => Ok(Self {
                email,
                password,
                name,
            }),
            _ => Err(errors),
        }
    }
}

/// A stored account.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: UserId,
    pub email: Email,
    pub name: DisplayName,
    pub role: Role,
    pub password_hash: PasswordHash,
    pub created_at: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        let email = Email::parse("  Ada@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ada@example.com");
    }

    #[test]
    fn implausible_emails_are_refused() {
        let long = format!("{}@example.com", "a".repeat(250));
        for bad in [
            "",
            "   ",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "a@b@example.com",
            "ada lovelace@example.com",
            "ada@example..com",
            "ada@.example.com",
            "ada@example.com.",
            long.as_str(),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn passwords_are_judged_by_length_in_characters() {
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
        assert!(Password::parse("é".repeat(128)).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
    }

    #[test]
    fn passwords_do_not_print() {
        let password = Password::unchecked("hunter2hunter2".into());
        assert!(!format!("{password:?}").contains("hunter2"));
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(DisplayName::parse("  Ada ").expect("valid").as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"n".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"n".repeat(101)).is_err());
        assert!(DisplayName::parse("Ada\u{0}").is_err());
    }

    #[test]
    fn signup_reports_every_invalid_field() {
        let req = SignupRequest {
            email: "nope".into(),
            password: "short".into(),
            name: " ".into(),
        };
        let errors = NewUser::parse(req).expect_err("invalid");
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["email", "password", "name"]);
    }
}
