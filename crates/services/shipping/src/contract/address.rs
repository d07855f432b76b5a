//! A postal address as shipping publishes it, with the rules its fields follow.
//!
//! The rules belong to the contract, not to shipping's private domain: orders and the storefront
//! check an address with [`Address::parse`] before they send it, and shipping answers 422 with
//! the same field errors (prefixed `address.`) for an address that fails it. So they are written
//! once, here, beside the OpenAPI patterns that document exactly what they accept; shipping's
//! domain builds on them and never the other way round.

use flotilla_chassis::openapi::{trimmed_pattern, trimmed_text};
use flotilla_chassis::problem::FieldError;
use flotilla_chassis::text::{TextError, clean_text, normalized};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest postal code, in ASCII characters.
pub const MAX_POSTAL_CODE_LEN: usize = 20;

// The documented rules of the fields: exactly what `Address::parse` accepts, written as patterns
// (the server trims first, so whitespace around a value is allowed).
fn name_schema() -> utoipa::openapi::Object {
    trimmed_text(
        100,
        "The recipient: 1 to 100 characters, no control characters.",
    )
}
fn line1_schema() -> utoipa::openapi::Object {
    trimmed_text(
        200,
        "Street and number: 1 to 200 characters, no control characters.",
    )
}
fn city_schema() -> utoipa::openapi::Object {
    trimmed_text(100, "1 to 100 characters, no control characters.")
}
pub(crate) fn postal_code_schema() -> utoipa::openapi::Object {
    trimmed_pattern(
        "[A-Za-z0-9-](?:[A-Za-z0-9 -]{0,18}[A-Za-z0-9-])?",
        "1 to 20 ASCII letters, digits, spaces and hyphens.",
    )
}
pub(crate) fn country_schema() -> utoipa::openapi::Object {
    // The alternation of every assigned code, so that a client generating valid input from the
    // document (schemathesis does) sends only codes the server accepts.
    trimmed_pattern(
        &ASSIGNED_COUNTRY_CODES.join("|"),
        "An assigned ISO 3166-1 alpha-2 country code, two upper-case letters.",
    )
}

/// A postal address. Every field is compared and stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    /// The recipient, 1 to 100 characters.
    #[schema(schema_with = name_schema, example = "Ada Lovelace")]
    pub name: String,
    /// Street and number, 1 to 200 characters.
    #[schema(schema_with = line1_schema, example = "Unter den Linden 1")]
    pub line1: String,
    /// 1 to 100 characters.
    #[schema(schema_with = city_schema, example = "Berlin")]
    pub city: String,
    /// 1 to 20 ASCII letters, digits, spaces and hyphens. `00000` is the test address the
    /// carrier always rejects ([`TEST_REJECTED_POSTAL_CODE`](super::TEST_REJECTED_POSTAL_CODE)).
    #[schema(schema_with = postal_code_schema, example = "10117")]
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, two upper-case letters.
    #[schema(schema_with = country_schema, example = "DE")]
    pub country: String,
}

impl Address {
    /// The address as shipping stores and compares it ([`Address::trimmed`]), or every invalid
    /// field (checked trimmed), named `name`, `line1`, `city`, `postal_code` or `country`.
    pub fn parse(&self) -> Result<Address, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (field, value, max) in [
            ("name", &self.name, 100),
            ("line1", &self.line1, 200),
            ("city", &self.city, 100),
        ] {
            // The platform's text rule: no control, invisible or direction-changing characters.
            if let Err(err) = clean_text(value, max) {
                let message = match err {
                    TextError::Empty | TextError::TooLong(_) => {
                        format!("must be 1 to {max} characters")
                    }
                    other => other.to_string(),
                };
                errors.push(field_error(field, message));
            }
        }
        check_postal_code(&self.postal_code, "postal_code", &mut errors);
        check_country(&self.country, "country", &mut errors);
        if errors.is_empty() {
            Ok(self.trimmed())
        } else {
            Err(errors)
        }
    }

    /// [`Address::parse`] for a caller that only wants to know.
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        self.parse().map(drop)
    }

    /// The same address with every field trimmed, and the free-text ones NFC-normalised: how
    /// shipping stores and compares it.
    pub fn trimmed(&self) -> Address {
        Address {
            name: normalized(&self.name),
            line1: normalized(&self.line1),
            city: normalized(&self.city),
            postal_code: self.postal_code.trim().to_owned(),
            country: self.country.trim().to_owned(),
        }
    }
}

/// The two letters of an ISO 3166-1 alpha-2 code in `raw` (already trimmed): exactly two ASCII
/// upper-case letters. Whether the code is assigned is not checked.
pub(crate) fn country_code(raw: &str) -> Option<[u8; 2]> {
    match raw.as_bytes() {
        [a, b] if ASSIGNED_COUNTRY_CODES.binary_search(&raw).is_ok() => Some([*a, *b]),
        _ => None,
    }
}

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted. A well-formed code outside it
/// (`ZZ`, `XX`: user-assigned or unassigned) names no country a parcel can go to.
pub const ASSIGNED_COUNTRY_CODES: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Reports `raw` (checked trimmed) as `field` unless it is a country code.
pub(crate) fn check_country(raw: &str, field: &str, errors: &mut Vec<FieldError>) {
    if country_code(raw.trim()).is_none() {
        errors.push(field_error(
            field,
            "must be an assigned ISO 3166-1 alpha-2 code: two upper-case letters, e.g. DE",
        ));
    }
}

/// Reports `raw` (checked trimmed) as `field` unless it is a postal code.
pub(crate) fn check_postal_code(raw: &str, field: &str, errors: &mut Vec<FieldError>) {
    let value = raw.trim();
    let valid = (1..=MAX_POSTAL_CODE_LEN).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b' ' || b == b'-');
    if !valid {
        errors.push(field_error(
            field,
            format!("must be 1 to {MAX_POSTAL_CODE_LEN} ASCII letters, digits, spaces or hyphens"),
        ));
    }
}

pub(crate) fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address() -> Address {
        Address {
            name: "Ada Lovelace".into(),
            line1: "Unter den Linden 1".into(),
            city: "Berlin".into(),
            postal_code: "10117".into(),
            country: "DE".into(),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_valid_address_parses_trimmed() {
        assert_eq!(address().parse(), Ok(address()));
        let padded = Address {
            name: "  Ada ".into(),
            country: " DE ".into(),
            postal_code: " SW1A 1AA ".into(),
            ..address()
        };
        assert_eq!(padded.validate(), Ok(()));
        let parsed = padded.parse().expect("valid");
        assert_eq!(parsed, padded.trimmed());
        assert_eq!(parsed.name, "Ada");
        assert_eq!(parsed.country, "DE");
        assert_eq!(parsed.postal_code, "SW1A 1AA");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let bad = Address {
            name: "   ".into(),
            line1: "x".repeat(201),
            city: "Ber\nlin".into(),
            postal_code: "10117!".into(),
            country: "de".into(),
        };
        let errors = bad.parse().expect_err("invalid");
        assert_eq!(
            fields(&errors),
            ["name", "line1", "city", "postal_code", "country"]
        );
        let long_postcode = Address {
            postal_code: "1".repeat(21),
            ..address()
        };
        assert_eq!(
            fields(&long_postcode.validate().expect_err("invalid")),
            ["postal_code"]
        );
        // Limits count characters, not bytes.
        let umlauts = Address {
            name: "Ä".repeat(100),
            ..address()
        };
        assert_eq!(umlauts.validate(), Ok(()));
    }

    #[test]
    fn country_codes_are_assigned_two_upper_case_letters() {
        assert!(
            ASSIGNED_COUNTRY_CODES.is_sorted(),
            "binary search needs the order"
        );
        assert_eq!(country_code("DE"), Some(*b"DE"));
        for bad in ["de", "D", "DEU", "", "D1", "ÄÖ", "ZZ", "XX", "AA"] {
            assert_eq!(country_code(bad), None, "{bad}");
        }
    }
}
