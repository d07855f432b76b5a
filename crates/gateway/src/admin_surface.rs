//! The admin surface, guarded at the edge (RELIABILITY.md S2): a request whose path names an
//! `admin` segment — however it is spelled — needs an admin's token at the gateway, before the
//! exposure check and before the service sees it. A customer gets 403 and an anonymous caller
//! 401 for every variant alike: `/admin/faults`, `/ADMIN/faults`, `/admin/faults/`,
//! `/%61dmin/faults`, `/x/../admin/faults`, `//admin//faults`, any method. The services check the
//! role again (defence in depth); this layer makes the answer independent of how a service's
//! router treats odd spellings, and keeps a customer from even learning which admin routes exist.
//!
//! The ops console (`/ops`, `flotilla-console`) is admin surface too, guarded by the same rule:
//! `/OPS`, `/%6fps`, `/x/../ops` and `//ops/` are the console as far as the guard is concerned,
//! so no spelling reaches the storefront or the console without an administrator's session.

/// True when `path` (as sent: percent-encoded, any case) names an `admin` segment once decoded,
/// lower-cased and resolved (`.` and `..` segments, empty segments).
pub fn is_admin_path(path: &str) -> bool {
    // Every request asks: without a `%` or the letters of `admin` (any case) there is nothing
    // to decode or resolve, and no allocation is made.
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') && !bytes.windows(5).any(|w| w.eq_ignore_ascii_case(b"admin")) {
        return false;
    }
    resolved_segments(path).iter().any(|s| s.trim() == "admin")
}

/// True when `path` (as sent) is the ops console's, `/ops` or below, however spelled: its first
/// segment, decoded, lower-cased and resolved, is `ops`.
pub fn is_ops_path(path: &str) -> bool {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') && !bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"ops")) {
        return false;
    }
    resolved_segments(path)
        .first()
        .is_some_and(|s| s.trim() == "ops")
}

/// `path`'s segments, percent-decoded, lower-cased, with empty, `.` and `..` segments resolved.
fn resolved_segments(path: &str) -> Vec<String> {
    let decoded = percent_decode(path).to_ascii_lowercase();
    let mut segments: Vec<String> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s.to_owned()),
        }
    }
    segments
}

/// `%XX` decoded byte by byte, repeatedly (a `%2561` is `%61` is `a`), up to three rounds; bytes
/// that are not UTF-8 become U+FFFD, which never spells `admin`.
fn percent_decode(path: &str) -> String {
    let mut current = path.to_owned();
    for _ in 0..3 {
        if !current.contains('%') {
            break;
        }
        let bytes = current.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
                (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                    let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        current = String::from_utf8_lossy(&out).into_owned();
    }
    current
}

#[cfg(test)]
mod tests {
    use super::{is_admin_path, is_ops_path};

    #[test]
    fn every_spelling_of_the_console_is_the_console() {
        for path in [
            "/ops",
            "/ops/",
            "/ops/traces",
            "/OPS/sagas",
            "/Ops",
            "/%6fps",
            "/%6Fps/traces",
            "/%256fps",
            "//ops//traces",
            "/./ops",
            "/x/../ops/sagas",
            "/x/%2e%2e/ops",
            "/ops%2fsagas",
        ] {
            assert!(is_ops_path(path), "{path}");
        }
        for path in [
            "/",
            "/opsx",
            "/shops",
            "/products/ops",
            "/search?q=ops",
            "/ops/../products",
            "/topsoil",
        ] {
            assert!(!is_ops_path(path), "{path}");
        }
    }

    #[test]
    fn every_spelling_of_an_admin_path_is_one() {
        for path in [
            "/admin/faults",
            "/admin",
            "/ADMIN/faults",
            "/Admin/Faults/",
            "/admin/faults/",
            "//admin//faults",
            "/%61dmin/faults",
            "/%2561dmin/faults",
            "/%41DMIN/faults",
            "/x/../admin/faults",
            "/x/%2e%2e/admin/faults",
            "/./admin",
            "/products/%2fadmin",
            "/admin%2ffaults",
            "/products/p1/admin",
        ] {
            assert!(is_admin_path(path), "{path}");
        }
        for path in [
            "/",
            "/products",
            "/administrator",
            "/products/admins",
            "/search",
            "/admin/../products",
            "/%zz/admin-tools",
        ] {
            assert!(!is_admin_path(path), "{path}");
        }
    }
}
