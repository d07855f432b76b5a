//! The one rule for text people type into Flotilla: names, addresses, notes and email addresses.
//!
//! Sign-up once accepted `z\u{200b}w@t.io` (a zero-width space), `аdmin@t.io` (a Cyrillic а)
//! and a name with U+202E (right-to-left override): identities that look like others, and names
//! that rearrange the text around them. So every free-text field goes through [`clean_text`]:
//! control, invisible (zero-width, BOM, soft hyphen, fillers, tags…) and bidirectional control
//! characters are refused, and the text is normalised to NFC, so one name has one spelling. An
//! email address goes through [`email_address`]: ASCII before the `@`, and a domain stored in
//! its IDNA (punycode) form, a label that mixes look-alike alphabets refused.

use std::fmt;
use unicode_normalization::UnicodeNormalization;

/// Why a text was refused; its `Display` is the message for the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextError {
    /// Nothing but whitespace.
    Empty,
    /// More characters than the field takes.
    TooLong(usize),
    /// A control character (newline, tab, NUL…) or a line or paragraph separator.
    Control,
    /// A character that shows nothing (zero-width space, BOM, soft hyphen, filler…).
    Invisible,
    /// A character that changes the direction of the text around it (U+202E…).
    Bidi,
    /// An email address of the wrong shape; the message says what is wrong.
    Email(&'static str),
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong(max) => write!(f, "must be at most {max} characters"),
            Self::Control => f.write_str("must not contain control characters or line breaks"),
            Self::Invisible => f.write_str(
                "must not contain invisible characters (zero-width spaces, soft hyphens and the like)",
            ),
            Self::Bidi => {
                f.write_str("must not contain characters that change the direction of the text")
            }
            Self::Email(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TextError {}

/// `raw` trimmed and NFC-normalised, 1 to `max_chars` characters (counted after
/// normalisation), with no control, invisible or bidirectional control characters.
pub fn clean_text(raw: &str, max_chars: usize) -> Result<String, TextError> {
    let text: String = raw.trim().nfc().collect();
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.chars().count() > max_chars {
        return Err(TextError::TooLong(max_chars));
    }
    check_chars(&text)?;
    Ok(text)
}

/// `raw` trimmed and NFC-normalised, unchecked: the stored form of a text [`clean_text`]
/// accepted, for code that checks and stores in separate steps.
pub fn normalized(raw: &str) -> String {
    raw.trim().nfc().collect()
}

/// [`clean_text`] for a field that may be left empty: `None` when it is.
pub fn clean_optional_text(raw: &str, max_chars: usize) -> Result<Option<String>, TextError> {
    match clean_text(raw, max_chars) {
        Err(TextError::Empty) => Ok(None),
        other => other.map(Some),
    }
}

/// Refuses control, invisible and bidirectional control characters in `text`. A zero-width
/// joiner or non-joiner between characters outside ASCII, and a variation selector after one,
/// are accepted (Persian names, emoji sequences need them) and refused next to ASCII, where
/// their only use is a look-alike of a plain word.
pub fn check_chars(text: &str) -> Result<(), TextError> {
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            return Err(TextError::Control);
        }
        if is_bidi_control(c) {
            return Err(TextError::Bidi);
        }
        if is_joiner(c) {
            let outside_ascii =
                |n: Option<&char>| n.is_some_and(|n| !n.is_ascii() && !n.is_whitespace());
            let before = i.checked_sub(1).and_then(|b| chars.get(b));
            // A variation selector modifies the character before it only.
            let selector = matches!(c, '\u{FE00}'..='\u{FE0F}');
            if outside_ascii(before) && (selector || outside_ascii(chars.get(i + 1))) {
                continue;
            }
            return Err(TextError::Invisible);
        }
        if is_invisible(c) {
            return Err(TextError::Invisible);
        }
    }
    Ok(())
}

/// True for a character [`check_chars`] may refuse as invisible or as a direction control
/// (for escaping it where a message repeats input).
pub fn is_invisible_or_bidi(c: char) -> bool {
    is_bidi_control(c) || is_joiner(c) || is_invisible(c)
}

/// Unicode's bidirectional formatting characters (UAX #9 §2): marks, embeddings, overrides,
/// isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Zero-width (non-)joiner and the variation selectors of the BMP.
fn is_joiner(c: char) -> bool {
    matches!(c, '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}')
}

/// Characters that render as nothing, or as a blank that is not a space: Unicode's
/// Default_Ignorable_Code_Point set (DerivedCoreProperties.txt) less the joiners, plus the
/// blank-looking fillers used to fake empty names.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'
            | '\u{2060}'..='\u{206F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Longest email address accepted (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_CHARS: usize = 254;

/// `raw` as a stored email address: trimmed and lower-cased, the part before the `@` in ASCII
/// (a Cyrillic `а` there would make a second `admin`), the domain in its IDNA ASCII form
/// (`bücher.example` → `xn--bcher-kva.example`), with no domain label that mixes Latin,
/// Cyrillic and Greek letters.
///
/// The check stays shallow beyond that (a dotted domain, no spaces): the only proof an address
/// works is a message that arrives.
pub fn email_address(raw: &str) -> Result<String, TextError> {
    // Counted as sent too, before trimming and lower-casing (which can lengthen a few letters):
    // the rule the published schemas state.
    if raw.chars().count() > MAX_EMAIL_CHARS {
        return Err(TextError::TooLong(MAX_EMAIL_CHARS));
    }
    let email = raw.trim().to_lowercase();
    if email.is_empty() {
        return Err(TextError::Empty);
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return Err(TextError::TooLong(MAX_EMAIL_CHARS));
    }
    check_chars(&email)?;
    if email.chars().any(char::is_whitespace) {
        return Err(TextError::Email("must not contain spaces"));
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(TextError::Email("must contain exactly one @"));
    };
    if local.is_empty() {
        return Err(TextError::Email("must have a part before the @"));
    }
    if !local.is_ascii() || local.contains(['"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']'])
    {
        return Err(TextError::Email(
            "the part before the @ must be ASCII letters, digits and . _ + - (no look-alike letters)",
        ));
    }
    if domain.split('.').any(mixes_scripts) {
        return Err(TextError::Email(
            "the domain mixes alphabets that look alike (such as Latin and Cyrillic)",
        ));
    }
    let bad_domain = "must have a domain such as example.com after the @";
    let domain = idna::domain_to_ascii(domain).map_err(|_| TextError::Email(bad_domain))?;
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return Err(TextError::Email(bad_domain));
    }
    let email = format!("{local}@{domain}");
    if email.len() > MAX_EMAIL_CHARS {
        return Err(TextError::TooLong(MAX_EMAIL_CHARS));
    }
    Ok(email)
}

/// True when `label` has letters of more than one of the Latin, Greek and Cyrillic alphabets,
/// whose look-alikes (а/a, ο/o, р/p) make one domain pass for another.
fn mixes_scripts(label: &str) -> bool {
    let (mut latin, mut greek, mut cyrillic) = (false, false, false);
    for c in label.chars().filter(|c| c.is_alphabetic()) {
        match c {
            'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' => {
                latin = true;
            }
            '\u{0370}'..='\u{03FF}' | '\u{1F00}'..='\u{1FFF}' => greek = true,
            '\u{0400}'..='\u{052F}' | '\u{1C80}'..='\u{1C8F}' | '\u{2DE0}'..='\u{2DFF}' => {
                cyrillic = true;
            }
            _ => {}
        }
    }
    u8::from(latin) + u8::from(greek) + u8::from(cyrillic) > 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_normalised() {
        // "é" as e + combining acute becomes the one code point.
        assert_eq!(clean_text("  Rene\u{301} ", 10), Ok("Ren\u{e9}".to_owned()));
        assert_eq!(clean_text("   ", 10), Err(TextError::Empty));
        assert_eq!(clean_text("abcdef", 5), Err(TextError::TooLong(5)));
        assert_eq!(clean_optional_text(" ", 5), Ok(None));
    }

    #[test]
    fn invisible_and_direction_characters_are_refused() {
        for (text, error) in [
            ("z\u{200b}w", TextError::Invisible),
            ("ad\u{ad}min", TextError::Invisible),
            ("\u{feff}ada", TextError::Invisible),
            ("ad\u{200d}min", TextError::Invisible),
            ("admin\u{fe0f}", TextError::Invisible),
            ("\u{3164}", TextError::Invisible),
            ("evil\u{202e}gnp.exe", TextError::Bidi),
            ("a\u{2067}b", TextError::Bidi),
            ("two\nlines", TextError::Control),
            ("a\u{2028}b", TextError::Control),
        ] {
            assert_eq!(clean_text(text, 100), Err(error), "{text:?}");
        }
    }

    #[test]
    fn joiners_between_letters_outside_ascii_are_kept() {
        // Persian "mi-khaham" needs a zero-width non-joiner; a family emoji needs joiners.
        for text in [
            "می\u{200c}خواهم",
            "👩\u{200d}👩\u{200d}👧",
            "❤\u{fe0f}",
            "Zoë Åberg",
        ] {
            assert!(clean_text(text, 100).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn email_addresses_are_ascii_or_idna() {
        assert_eq!(
            email_address("  Ada@Example.COM ").as_deref(),
            Ok("ada@example.com")
        );
        assert_eq!(
            email_address("ada@Bücher.example").as_deref(),
            Ok("ada@xn--bcher-kva.example")
        );
        for bad in [
            "z\u{200b}w@t.io",
            "\u{430}dmin@t.io",
            "ada@p\u{430}ypal.com",
            "ada@t.io\u{202e}",
            "a b@t.io",
            "@t.io",
            "ada@localhost",
            "a@b@c.io",
            "ada@.io",
        ] {
            assert!(email_address(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@t.io", "a".repeat(300));
        assert_eq!(email_address(&long), Err(TextError::TooLong(254)));
    }
}
