//! The countries the checkout form offers, by ISO 3166-1 alpha-2 code and English name.
//!
//! A select with a short list beats a free-text field: shoppers pick a name they recognise, and
//! the code that reaches orders and shipping is always well formed. The list is the shop's
//! markets (the EU, its neighbours and a few overseas ones), not every country in the standard;
//! shipping's own rules still decide which destinations it serves, and the form shows its answer
//! when it refuses one.

/// A country a shopper can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, as orders and shipping expect it.
    pub code: &'static str,
    /// The English short name, as shoppers read it.
    pub name: &'static str,
}

/// The country the checkout form starts with: where the shop ships from.
pub const DEFAULT: &str = "DE";

/// Every country the form offers, sorted by name.
/// Names: <https://www.iso.org/obp/ui/#search/code/> (short forms, as commonly written).
pub const COUNTRIES: &[Country] = &[
    c("AU", "Australia"),
    c("AT", "Austria"),
    c("BE", "Belgium"),
    c("BG", "Bulgaria"),
    c("CA", "Canada"),
    c("HR", "Croatia"),
    c("CY", "Cyprus"),
    c("CZ", "Czechia"),
    c("DK", "Denmark"),
    c("EE", "Estonia"),
    c("FI", "Finland"),
    c("FR", "France"),
    c("DE", "Germany"),
    c("GR", "Greece"),
    c("HU", "Hungary"),
    c("IS", "Iceland"),
    c("IE", "Ireland"),
    c("IT", "Italy"),
    c("JP", "Japan"),
    c("LV", "Latvia"),
    c("LI", "Liechtenstein"),
    c("LT", "Lithuania"),
    c("LU", "Luxembourg"),
    c("MT", "Malta"),
    c("NL", "Netherlands"),
    c("NZ", "New Zealand"),
    c("NO", "Norway"),
    c("PL", "Poland"),
    c("PT", "Portugal"),
    c("RO", "Romania"),
    c("SG", "Singapore"),
    c("SK", "Slovakia"),
    c("SI", "Slovenia"),
    c("ES", "Spain"),
    c("SE", "Sweden"),
    c("CH", "Switzerland"),
    c("GB", "United Kingdom"),
    c("US", "United States"),
];

const fn c(code: &'static str, name: &'static str) -> Country {
    Country { code, name }
}

/// The country with `code`, if the form offers it.
pub fn by_code(code: &str) -> Option<Country> {
    COUNTRIES.iter().copied().find(|c| c.code == code)
}

/// The name of `code` for display, or the code itself for a country the form does not offer
/// (an order placed before the list changed still shows where it went).
pub fn name_of(code: &str) -> String {
    by_code(code).map_or_else(|| code.to_owned(), |c| c.name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_well_formed_and_holds_the_default() {
        assert!(by_code(DEFAULT).is_some());
        for pair in COUNTRIES.windows(2) {
            assert!(pair[0].name < pair[1].name, "{pair:?} not sorted by name");
        }
        for country in COUNTRIES {
            assert!(
                country.code.len() == 2 && country.code.bytes().all(|b| b.is_ascii_uppercase()),
                "{country:?}"
            );
            assert_eq!(
                COUNTRIES.iter().filter(|c| c.code == country.code).count(),
                1,
                "{country:?} listed twice"
            );
        }
        assert_eq!(name_of("FR"), "France");
        assert_eq!(name_of("ZZ"), "ZZ");
    }
}
