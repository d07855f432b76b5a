//! Prefixed, time-ordered ids such as `ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b`: a short prefix
//! naming the kind of thing, `_`, and a UUIDv7 as 32 lower-case hex digits.
//!
//! The prefix makes an id in a log or a support ticket say what it is (Stripe's `pi_`, `ch_`);
//! the UUIDv7 makes ids sort by creation time, which keeps B-tree inserts at the end of the
//! index. Services keep a newtype per id (`OrderId`, `PaymentId`) and build it from these two
//! functions, so every id is generated and checked the same way.

/// A fresh id: `{prefix}_` and a UUIDv7 in 32 lower-case hex digits.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Whether `s` has the form [`new_id`] gives for `prefix`, so an id that cannot exist can be
/// answered as unknown without a query.
pub fn is_id(prefix: &str, s: &str) -> bool {
    let Some(hex) = s
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
    else {
        return false;
    };
    hex.len() == 32
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_have_their_prefix_sort_by_creation_and_are_recognised() {
        let first = new_id("ord");
        let second = new_id("ord");
        assert!(first.starts_with("ord_"));
        assert!(is_id("ord", &first));
        assert!(second > first, "ids sort by creation");
        assert!(!is_id("pay", &first), "another prefix");
    }

    #[test]
    fn odd_text_is_not_an_id() {
        for odd in [
            "",
            "ord",
            "ord_",
            "ord0190a1b2c3d47e8f9a0b1c2d3e4f5a6b",
            "ord_0190A1B2C3D47E8F9A0B1C2D3E4F5A6B",
            "ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6",
            "ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6bc",
            "ord_0190a1b2-c3d4-7e8f-9a0b-1c2d3e4f",
        ] {
            assert!(!is_id("ord", odd), "{odd:?}");
        }
        assert!(is_id("ord", "ord_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b"));
    }
}
