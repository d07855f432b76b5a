//! Messages about bad input written for people (RELIABILITY.md S9). serde and axum describe a
//! value that does not deserialize in the program's terms — `expected struct SetQuantity`,
//! `to a \`u32\``, `unknown key Some("x")` — and echo the input whole, 10 KB of it if that is
//! what came. A problem's `detail` says instead where the input is wrong and what was expected
//! in the API's words, and whatever it quotes from the request is bounded and escaped
//! ([`quote`]).

/// Most characters of a request's own text a message repeats.
const QUOTED_CHARS: usize = 64;

/// `text` as a message may repeat it: in double quotes, control and invisible characters
/// escaped, cut to 64 characters with `…` when longer.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(QUOTED_CHARS * 2) + 2);
    out.push('"');
    for (n, c) in text.chars().enumerate() {
        if n == QUOTED_CHARS {
            out.push('…');
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() || crate::text::is_invisible_or_bidi(c) => {
                out.extend(c.escape_unicode());
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A message about a value at `path` (`lines[0].quantity`; `.` or empty for the whole input)
/// that failed to deserialize with serde's `message`, in the API's words.
pub fn describe(path: &str, message: &str) -> String {
    let sentence = sentence(message);
    match path {
        "" | "." => sentence,
        path => format!("{}: {sentence}", bounded(path)),
    }
}

/// The field a serde `message` names, for the messages that name one (missing, unknown,
/// duplicate field), appended to `path`.
pub fn field_of(path: &str, message: &str) -> String {
    let named = ["missing field `", "unknown field `", "duplicate field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| bounded(name));
    match (path, named) {
        ("" | ".", Some(name)) => name,
        ("" | ".", None) => String::new(),
        // An unknown field's path already ends with the field itself.
        (path, Some(name))
            if message.starts_with("unknown field `")
                && (path == name || path.ends_with(&format!(".{name}"))) =>
        {
            bounded(path)
        }
        (path, Some(name)) => format!("{}.{name}", bounded(path)),
        (path, None) => bounded(path),
    }
}

/// serde's `message` as a sentence without type names.
fn sentence(message: &str) -> String {
    // serde_json appends the position; a person editing a body can use it, so it is kept.
    let (message, position) = match message.rsplit_once(" at line ") {
        Some((message, at))
            if at
                .chars()
                .all(|c| c.is_ascii_digit() || " column".contains(c)) =>
        {
            (message, Some(at))
        }
        _ => (message, None),
    };
    let text = if let Some(name) = backticked(message, "missing field `") {
        format!("{name} is required")
    } else if let Some(name) = backticked(message, "unknown field `") {
        match message.split_once(", expected ") {
            Some((_, expected)) => {
                format!(
                    "{name} is not a field here (expected {})",
                    bounded(expected)
                )
            }
            None => format!("{name} is not a field here"),
        }
    } else if let Some(name) = backticked(message, "duplicate field `") {
        format!("{name} is given twice")
    } else if let Some(value) = backticked(message, "unknown variant `") {
        match message.split_once(", expected ") {
            Some((_, expected)) => format!("{value} is not one of {}", bounded(expected)),
            None => format!("{value} is not an accepted value"),
        }
    } else if let Some((found, expected)) = message
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        format!(
            "expected {}, found {}",
            expected_text(expected),
            found_text(found)
        )
    } else if let Some((found, expected)) = message
        .strip_prefix("invalid value: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        format!("{} is not {}", found_text(found), expected_text(expected))
    } else if let Some((length, expected)) = message
        .strip_prefix("invalid length ")
        .and_then(|rest| rest.split_once(", expected "))
    {
        format!(
            "expected {}, found {} items",
            expected_text(expected),
            bounded(length)
        )
    } else {
        // Syntax errors and the services' own parse errors ("must be at least 1") are written
        // for people already; anything else is only bounded.
        bounded(message)
    };
    match position {
        Some(at) => format!("{text} at line {at}"),
        None => text,
    }
}

/// The name in `` prefix`name`… ``, quoted.
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let (name, _) = rest.split_once('`').unwrap_or((rest, ""));
    Some(format!("`{}`", bounded(name)))
}

/// What serde's `Visitor::expecting` says, in the API's words: Rust names of structs, enums and
/// primitive types become the JSON they stand for.
fn expected_text(expected: &str) -> String {
    let expected = expected.trim();
    let word = |prefix: &str| expected.starts_with(prefix);
    match expected {
        // With the range: a number too large for the field is told how large it may be, not
        // that it is not a whole number.
        "u8" => format!("a whole number from 0 to {}", u8::MAX),
        "u16" => format!("a whole number from 0 to {}", u16::MAX),
        "u32" => format!("a whole number from 0 to {}", u32::MAX),
        "u64" | "u128" | "usize" => format!("a whole number from 0 to {}", u64::MAX),
        "i8" => format!("a whole number from {} to {}", i8::MIN, i8::MAX),
        "i16" => format!("a whole number from {} to {}", i16::MIN, i16::MAX),
        "i32" => format!("a whole number from {} to {}", i32::MIN, i32::MAX),
        "i64" | "i128" | "isize" => format!("a whole number from {} to {}", i64::MIN, i64::MAX),
        "f32" | "f64" => "a number".into(),
        "a map" | "map" => "an object".into(),
        "a sequence" | "sequence" => "a list".into(),
        "unit" => "null".into(),
        "option" => "a value or null".into(),
        "a borrowed string" | "a string" | "string" | "char" | "a character" => "a string".into(),
        "a boolean" | "bool" => "true or false".into(),
        "variant identifier" | "field identifier" => "a known name".into(),
        _ if word("struct ") || word("struct variant ") => "an object".into(),
        _ if word("tuple") || word("a tuple") => "a list".into(),
        _ if word("enum ") || word("unit variant ") || word("newtype ") => {
            "one of the accepted values".into()
        }
        // An `expecting` written as a phrase ("a UUID", "an ISO 4217 code", "one of …") is for
        // people already; a bare name is a type name.
        _ if (word("a ") || word("an ") || word("one of "))
            && !expected.contains("::")
            && expected.len() <= 120 =>
        {
            expected.to_owned()
        }
        _ => "a valid value".into(),
    }
}

/// serde's `Unexpected` (what was found), with any text from the request bounded.
fn found_text(found: &str) -> String {
    if let Some(text) = found.strip_prefix("string ") {
        // serde writes the string with Rust's Debug escapes, in quotes.
        let inner = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        return format!("the string {}", quote(inner));
    }
    let value = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| bounded(v.trim_matches('`')))
    };
    if let Some(n) = value("integer ").or_else(|| value("floating point ")) {
        return format!("the number {n}");
    }
    if let Some(b) = value("boolean ") {
        return b;
    }
    if let Some(c) = value("character ") {
        return format!("the string {}", quote(&c));
    }
    match found {
        "map" => "an object".into(),
        "sequence" => "a list".into(),
        "unit value" | "null" | "unit" => "null".into(),
        "Option value" => "a value".into(),
        _ => "another kind of value".into(),
    }
}

/// `text` cut to a bounded length with control characters escaped, for text that is not
/// quoted whole (a field path, a message already written in words).
fn bounded(text: &str) -> String {
    let quoted = quote(text);
    quoted[1..quoted.len() - 1].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_bounded_and_escaped() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\"b\n\u{202e}"), "\"a\\\"b\\u{a}\\u{202e}\"");
        let long = quote(&"x".repeat(10_000));
        assert!(long.chars().count() <= QUOTED_CHARS + 3, "{long}");
        assert!(long.ends_with("…\""));
    }

    #[test]
    fn serde_messages_lose_their_type_names() {
        let cases = [
            (
                "invalid type: string \"ten\", expected u32 at line 1 column 17",
                "expected a whole number from 0 to 4294967295, found the string \"ten\" at line 1 column 17",
            ),
            (
                "invalid type: integer `5`, expected struct SetQuantity",
                "expected an object, found the number 5",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list, found an object",
            ),
            ("missing field `quantity`", "`quantity` is required"),
            (
                "unknown field `qty`, expected `quantity`",
                "`qty` is not a field here (expected `quantity`)",
            ),
            (
                "unknown variant `boss`, expected `customer` or `admin`",
                "`boss` is not one of `customer` or `admin`",
            ),
            (
                "invalid value: integer `-1`, expected u64",
                "the number -1 is not a whole number from 0 to 18446744073709551615",
            ),
            (
                "invalid value: integer `18446744073709551615`, expected u32",
                "the number 18446744073709551615 is not a whole number from 0 to 4294967295",
            ),
            (
                "invalid type: null, expected enum Role",
                "expected one of the accepted values, found null",
            ),
            (
                "invalid digit found in string",
                "invalid digit found in string",
            ),
        ];
        for (serde, human) in cases {
            assert_eq!(sentence(serde), human, "{serde}");
        }
    }

    #[test]
    fn long_echoes_are_cut() {
        let message = format!(
            "invalid type: string \"{}\", expected u32",
            "y".repeat(10_000)
        );
        let text = describe("lines[0].quantity", &message);
        assert!(text.len() < 200, "{text}");
        assert!(
            text.starts_with("lines[0].quantity: expected a whole number"),
            "{text}"
        );
    }

    #[test]
    fn fields_are_named_with_their_path() {
        assert_eq!(field_of(".", "missing field `quantity`"), "quantity");
        // serde's path to an unknown field already ends with it: named once, not twice.
        assert_eq!(
            field_of("for_ms", "unknown field `for_ms`, expected `for_secs`"),
            "for_ms"
        );
        assert_eq!(
            field_of("address.zip", "unknown field `zip`, expected `postal_code`"),
            "address.zip"
        );
        assert_eq!(
            field_of("lines[0]", "missing field `quantity`"),
            "lines[0].quantity"
        );
        assert_eq!(
            field_of("lines[0].quantity", "invalid type: …"),
            "lines[0].quantity"
        );
        assert_eq!(field_of(".", "invalid type: …"), "");
    }
}
