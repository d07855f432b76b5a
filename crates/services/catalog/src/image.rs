//! Product pictures, drawn rather than stored: a small SVG computed from the product's id,
//! category and name. The same product always gets the same picture, so responses can be cached
//! for a day and the catalog ships no binary assets.
//!
//! The background colour comes from a hash of the id, the shape from the category, the text from
//! the name's initials. Every piece of text is XML-escaped; the document is well-formed whatever
//! the name holds.

use std::fmt::Write as _;

/// Width and height of the picture, in SVG user units.
const SIZE: u32 = 240;

/// The picture of a product.
pub fn render(id: &str, category: &str, name: &str) -> String {
    let hash = fnv1a(id.as_bytes());
    // Hue from the hash; saturation and lightness stay in a band where white text reads well.
    let hue = (hash % 360) as f64;
    let saturation = 0.45 + ((hash >> 16) % 20) as f64 / 100.0;
    let lightness = 0.38 + ((hash >> 24) % 12) as f64 / 100.0;
    let background = hsl_to_hex(hue, saturation, lightness);
    let accent = hsl_to_hex((hue + 180.0) % 360.0, saturation, 0.85);
    let mut svg = String::with_capacity(1024);
    // Writing to a String cannot fail; the Results are discarded deliberately.
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE}" viewBox="0 0 {SIZE} {SIZE}" role="img" aria-label="{label}"><title>{label}</title><rect width="{SIZE}" height="{SIZE}" fill="{background}"/><g fill="{accent}" fill-opacity="0.55">{shape}</g><text x="120" y="138" text-anchor="middle" font-family="Helvetica, Arial, sans-serif" font-size="56" font-weight="bold" fill="#ffffff">{initials}</text></svg>"##,
        label = escape(name),
        shape = shape(category),
        initials = escape(&initials(name)),
    );
    svg
}

/// The shape drawn behind the initials, one per category (a plain disc for any other).
fn shape(category: &str) -> &'static str {
    match category {
        "kitchen" => {
            r#"<circle cx="120" cy="120" r="90"/><circle cx="120" cy="120" r="62" fill-opacity="0.5"/>"#
        }
        "garden" => {
            r#"<ellipse cx="120" cy="120" rx="95" ry="55" transform="rotate(-35 120 120)"/>"#
        }
        "books" => r#"<rect x="55" y="35" width="130" height="170" rx="6"/>"#,
        "outdoor" => r#"<polygon points="20,210 95,60 140,140 165,100 225,210"/>"#,
        "toys" => {
            r#"<polygon points="120,20 145,90 220,90 160,135 182,210 120,165 58,210 80,135 20,90 95,90"/>"#
        }
        "office" => r#"<rect x="40" y="60" width="160" height="120" rx="18"/>"#,
        "audio" => {
            r#"<circle cx="120" cy="120" r="100"/><circle cx="120" cy="120" r="70" fill-opacity="0.6"/><circle cx="120" cy="120" r="40" fill-opacity="0.6"/>"#
        }
        "apparel" => {
            r#"<polygon points="80,40 160,40 220,85 190,115 170,100 170,205 70,205 70,100 50,115 20,85"/>"#
        }
        "home" => r#"<polygon points="120,30 215,110 190,110 190,210 50,210 50,110 25,110"/>"#,
        "sports" => {
            r#"<circle cx="120" cy="120" r="95"/><rect x="25" y="115" width="190" height="10" fill-opacity="0.7"/><rect x="115" y="25" width="10" height="190" fill-opacity="0.7"/>"#
        }
        _ => r#"<circle cx="120" cy="120" r="80"/>"#,
    }
}

/// Up to three initials: the first letter of each of the name's first three words, upper-cased.
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(3)
        .flat_map(char::to_uppercase)
        .collect()
}

/// Escapes text for XML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// 32-bit FNV-1a: tiny and, unlike `std`'s hasher, guaranteed stable across Rust releases,
/// which cached pictures rely on. <http://www.isthe.com/chongo/tech/comp/fnv/>
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// `#rrggbb` for a hue in degrees and saturation/lightness in 0..=1 (the CSS HSL model).
fn hsl_to_hex(hue: f64, saturation: f64, lightness: f64) -> String {
    let c = (1.0 - (2.0 * lightness - 1.0).abs()) * saturation;
    let h = hue / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = lightness - c / 2.0;
    let channel = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    format!("#{:02x}{:02x}{:02x}", channel(r), channel(g), channel(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_product_same_picture_and_different_products_differ() {
        let a = render("p0000001", "kitchen", "Rustic Copper Kettle");
        assert_eq!(a, render("p0000001", "kitchen", "Rustic Copper Kettle"));
        assert_ne!(a, render("p0000002", "kitchen", "Rustic Copper Kettle"));
        assert!(a.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(a.ends_with("</svg>"));
        assert!(a.contains(">RCK</text>"));
    }

    #[test]
    fn text_is_escaped() {
        let svg = render(
            "p1",
            "toys",
            "<script>alert('x')</script> & \"Co\" \u{7}bell",
        );
        assert!(!svg.contains("<script>"));
        assert!(svg.contains(
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;Co&quot; bell"
        ));
        assert!(!svg.contains('\u{7}'));
        // Exactly the tags we wrote, no more: nothing in the name opened an element.
        assert_eq!(svg.matches('<').count(), svg.matches('>').count());
        assert_eq!(svg.matches("<text").count(), 1);
    }

    #[test]
    fn initials_and_colours() {
        assert_eq!(initials("  vintage oak  writing desk"), "VOW");
        assert_eq!(initials("\"Quoted\" name"), "QN");
        assert_eq!(initials(""), "");
        assert_eq!(hsl_to_hex(0.0, 1.0, 0.5), "#ff0000");
        assert_eq!(hsl_to_hex(120.0, 1.0, 0.5), "#00ff00");
        assert_eq!(hsl_to_hex(240.0, 1.0, 0.5), "#0000ff");
        assert_eq!(hsl_to_hex(0.0, 0.0, 1.0), "#ffffff");
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
    }
}
