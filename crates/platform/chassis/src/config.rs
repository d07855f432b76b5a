//! Typed configuration, layered: built-in defaults ← `flotilla.toml` (or `--config FILE`) ←
//! `FLOTILLA_*` environment variables ← command-line flags (merged by the binary).
//!
//! Nested keys use a double underscore in the environment: `FLOTILLA_CATALOG__MAX_PAGE_SIZE=50`
//! sets `[catalog] max_page_size = 50`. A few variables are part of the public contract and keep
//! their flat names: `FLOTILLA_ADMIN_EMAIL` and `FLOTILLA_ADMIN_PASSWORD`.

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use std::path::Path;

/// Flat public environment names and the configuration keys they set.
const ALIASES: &[(&str, &str)] = &[
    ("admin_email", "identity.admin_email"),
    ("admin_password", "identity.admin_password"),
];

/// The layered configuration: `file` if given (it must exist), else `./flotilla.toml` if present,
/// then the environment.
pub fn load(file: Option<&Path>) -> Figment {
    let toml = match file {
        Some(path) => Toml::file_exact(path),
        None => Toml::file("flotilla.toml"),
    };
    Figment::new().merge(toml).merge(environment())
}

/// `FLOTILLA_*` variables as configuration keys.
pub fn environment() -> Env {
    Env::prefixed("FLOTILLA_")
        .map(|key| {
            let lower = key.as_str().to_ascii_lowercase();
            match ALIASES.iter().find(|(from, _)| *from == lower) {
                Some((_, to)) => (*to).into(),
                None => lower.replace("__", ".").into(),
            }
        })
        .split("__")
}

/// The section `name` of `config` as `T`, with `T`'s defaults when the section is absent.
pub fn section<T: DeserializeOwned + Default>(
    config: &Figment,
    name: &str,
) -> Result<T, Box<figment::Error>> {
    if config.find_value(name).is_err() {
        return Ok(T::default());
    }
    config.extract_inner(name).map_err(Box::new)
}

/// The section `name` (a dotted path) of `config` as `T`, each key given there over `T`'s
/// default: unlike [`section`], one nested value can be set alone
/// (`FLOTILLA_GATEWAY__RATE_LIMIT__READ__PER_IP__PER_SECOND=1000` keeps that bucket's burst
/// and every other bucket).
pub fn section_over_defaults<T: DeserializeOwned + serde::Serialize + Default>(
    config: &Figment,
    name: &str,
) -> Result<T, Box<figment::Error>> {
    let defaults = figment::providers::Serialized::defaults(T::default());
    let given = match config.find_value(name) {
        Ok(value) => figment::providers::Serialized::defaults(value),
        Err(_) => return Ok(T::default()),
    };
    Figment::from(defaults)
        .merge(given)
        .extract()
        .map_err(|e| Box::new(e.with_path(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Outer {
        inner: Inner,
        other: u32,
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
        b: u32,
    }

    impl Default for Inner {
        fn default() -> Self {
            Self { a: 1, b: 2 }
        }
    }

    #[test]
    fn one_nested_key_is_set_over_the_defaults() {
        let config = Figment::from(figment::providers::Serialized::default("x.y.inner.b", 7));
        let got: Outer = section_over_defaults(&config, "x.y").expect("extracts");
        assert_eq!(
            got,
            Outer {
                inner: Inner { a: 1, b: 7 },
                other: 0
            }
        );
        let absent: Outer = section_over_defaults(&config, "x.z").expect("defaults");
        assert_eq!(absent, Outer::default());
        let wrong = Figment::from(figment::providers::Serialized::default("x.y.inner.c", 7));
        assert!(section_over_defaults::<Outer>(&wrong, "x.y").is_err());
    }
}
