//! Money: an integer amount of minor units (cents) and an ISO 4217 currency code. Never a float.
//! Arithmetic is checked: adding different currencies or overflowing is an error, not a wrong
//! total.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub struct Money {
    /// Amount in minor units (e.g. cents): 1999 is 19.99.
    pub amount_minor: i64,
    /// ISO 4217 code, three upper-case letters.
    #[schema(value_type = String, example = "EUR")]
    pub currency: Currency,
}

/// A three-letter ISO 4217 currency code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

/// Why money arithmetic or parsing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    /// Two amounts in different currencies.
    #[error("cannot combine {0} and {1}")]
    CurrencyMismatch(String, String),
    /// The result does not fit.
    #[error("amount out of range")]
    Overflow,
    /// Not a three-letter upper-case code.
    #[error("invalid currency code {0:?}")]
    InvalidCurrency(String),
}

impl Currency {
    /// The euro.
    pub const EUR: Currency = Currency(*b"EUR");

    /// Parses a code such as `EUR`.
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency([*a, *b, *c])),
            _ => Err(MoneyError::InvalidCurrency(code.chars().take(8).collect())),
        }
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }

    /// Digits after the decimal point (2 for every currency Flotilla sells in, except JPY).
    pub fn exponent(&self) -> u32 {
        if &self.0 == b"JPY" { 0 } else { 2 }
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Money {
    /// `amount_minor` units of `currency`.
    pub const fn new(amount_minor: i64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// `self + other`, same currency only.
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::CurrencyMismatch(
                self.currency.to_string(),
                other.currency.to_string(),
            ));
        }
        let amount = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }

    /// `self × n`.
    pub fn checked_mul(self, n: i64) -> Result<Money, MoneyError> {
        let amount = self
            .amount_minor
            .checked_mul(n)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(amount, self.currency))
    }
}

impl std::fmt::Display for Money {
    /// `19.99 EUR`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exp = self.currency.exponent();
        if exp == 0 {
            return write!(f, "{} {}", self.amount_minor, self.currency);
        }
        let unit = 10_i64.pow(exp);
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let abs = self.amount_minor.unsigned_abs();
        let unit = unit.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            abs / unit,
            abs % unit,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_is_checked() {
        let a = Money::new(1999, Currency::EUR);
        assert_eq!(a.checked_mul(3).expect("fits").amount_minor, 5997);
        assert_eq!(a.checked_add(a).expect("fits").to_string(), "39.98 EUR");
        let usd = Money::new(1, Currency::parse("USD").expect("valid"));
        assert!(a.checked_add(usd).is_err());
        assert_eq!(
            Money::new(i64::MAX, Currency::EUR).checked_add(a),
            Err(MoneyError::Overflow)
        );
        assert_eq!(Money::new(-5, Currency::EUR).to_string(), "-0.05 EUR");
        assert!(Currency::parse("eur").is_err());
        assert!(serde_json::from_str::<Money>(r#"{"amount_minor":1,"currency":"EURO"}"#).is_err());
    }
}
