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
