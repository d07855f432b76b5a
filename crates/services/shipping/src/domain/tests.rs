//! The rules checked directly: field validation, the rate card per zone, item and weight, and
//! properties of pricing that must hold for every input.

use flotilla_chassis::{Currency, Money};
use proptest::prelude::*;

use super::pricing::{RateCard, UnsupportedDestination, Zone, started_kgs_above_free};
use super::*;

fn code(s: &str) -> CountryCode {
    CountryCode::parse(s).expect("valid code")
}

fn card() -> RateCard {
    RateCard::new(code("DE"), vec![code("AQ"), code("KP")], Currency::EUR).expect("valid card")
}

fn items(n: u32) -> ItemCount {
    ItemCount::new(n).expect("in range")
}

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

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
fn zones_follow_the_origin_the_eu_and_the_unsupported_list() {
    let card = card();
    assert_eq!(card.zone(code("DE")), Ok(Zone::Domestic));
    for eu in ["FR", "AT", "GR", "SE", "HR"] {
        assert_eq!(card.zone(code(eu)), Ok(Zone::Eu), "{eu}");
    }
    for world in ["US", "CH", "GB", "NO", "JP", "SG"] {
        assert_eq!(card.zone(code(world)), Ok(Zone::World), "{world}");
    }
    assert_eq!(
        card.zone(code("KP")),
        Err(UnsupportedDestination(code("KP")))
    );
    // Another origin makes Germany an EU destination and France domestic.
    let paris = RateCard::new(code("FR"), vec![], Currency::EUR).expect("valid card");
    assert_eq!(paris.zone(code("DE")), Ok(Zone::Eu));
    assert_eq!(paris.zone(code("FR")), Ok(Zone::Domestic));
    assert!(RateCard::new(code("AQ"), vec![code("AQ")], Currency::EUR).is_err());
}

#[test]
fn the_base_price_is_per_zone() {
    let card = card();
    assert_eq!(card.price(code("DE"), items(1), None), Ok(eur(490)));
    assert_eq!(card.price(code("FR"), items(1), None), Ok(eur(990)));
    assert_eq!(card.price(code("US"), items(1), None), Ok(eur(1990)));
}

#[test]
fn each_item_beyond_the_first_costs_fifty_cents() {
    let card = card();
    assert_eq!(card.price(code("DE"), items(2), None), Ok(eur(540)));
    assert_eq!(card.price(code("FR"), items(5), None), Ok(eur(1190)));
    assert_eq!(
        card.price(code("US"), items(1000), None),
        Ok(eur(1990 + 999 * 50))
    );
}

#[test]
fn each_started_kilogram_above_two_costs_one_euro() {
    let card = card();
    let at = |grams| card.price(code("DE"), items(1), Some(Grams(grams)));
    assert_eq!(at(0), Ok(eur(490)));
    assert_eq!(at(2000), Ok(eur(490)));
    assert_eq!(at(2001), Ok(eur(590)));
    assert_eq!(at(3000), Ok(eur(590)));
    assert_eq!(at(3001), Ok(eur(690)));
    assert_eq!(started_kgs_above_free(Grams(u32::MAX)), 4_294_966);
}

#[test]
fn item_counts_are_one_to_a_thousand() {
    assert!(ItemCount::new(0).is_none());
    assert!(ItemCount::new(1001).is_none());
    assert_eq!(ItemCount::new(1000).map(ItemCount::get), Some(1000));
}

#[test]
fn country_codes_are_two_upper_case_letters() {
    assert!(CountryCode::parse("DE").is_some());
    for bad in ["de", "D", "DEU", "", "D1", "ÄÖ"] {
        assert!(CountryCode::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn quote_requests_report_each_bad_field() {
    let req = QuoteRequest {
        country: "Germany".into(),
        postal_code: "".into(),
        items: 0,
        weight_grams: None,
    };
    let errors = QuoteInput::parse(&req).expect_err("invalid");
    assert_eq!(fields(&errors), ["country", "postal_code", "items"]);
    let ok = QuoteInput::parse(&QuoteRequest {
        country: "FR".into(),
        postal_code: "75001".into(),
        items: 3,
        weight_grams: Some(2500),
    })
    .expect("valid");
    assert_eq!(ok.weight, Some(Grams(2500)));
}

fn shipment_request(lines: Vec<ShipmentLine>) -> CreateShipment {
    CreateShipment {
        order_id: "o-1".into(),
        quote_id: None,
        address: address(),
        lines,
    }
}

fn line(product_id: &str, quantity: u32) -> ShipmentLine {
    ShipmentLine {
        product_id: product_id.into(),
        quantity,
    }
}

#[test]
fn shipments_count_items_across_lines() {
    let new =
        NewShipment::parse(&shipment_request(vec![line("p1", 2), line("p2", 3)])).expect("valid");
    assert_eq!(new.items.get(), 5);
    assert_eq!(new.country, code("DE"));
    assert!(!new.carrier_rejects());

    let errors = NewShipment::parse(&shipment_request(vec![])).expect_err("empty");
    assert_eq!(fields(&errors), ["lines"]);
    let errors = NewShipment::parse(&shipment_request(vec![line("", 0), line("p2", 1)]))
        .expect_err("bad line");
    assert_eq!(
        fields(&errors),
        ["lines[0].product_id", "lines[0].quantity"]
    );
    let errors = NewShipment::parse(&shipment_request(vec![line("p1", 600), line("p2", 401)]))
        .expect_err("too many");
    assert_eq!(fields(&errors), ["lines"]);
    let mut bad = shipment_request(vec![line("p1", 1)]);
    bad.order_id = String::new();
    bad.address.city = String::new();
    let errors = NewShipment::parse(&bad).expect_err("bad");
    assert_eq!(fields(&errors), ["order_id", "address.city"]);
}

#[test]
fn the_test_postal_code_is_rejected_by_the_carrier() {
    let mut req = shipment_request(vec![line("p1", 1)]);
    req.address.postal_code = " 00000 ".into();
    assert!(NewShipment::parse(&req).expect("valid").carrier_rejects());
}

#[test]
fn tracking_numbers_are_prefixed_upper_case_alphanumerics() {
    let mut rng = rand::rng();
    let a = tracking_number(&mut rng);
    let b = tracking_number(&mut rng);
    assert_ne!(a, b);
    for n in [a, b] {
        assert_eq!(n.len(), 15);
        assert!(n.starts_with("FLT"));
        assert!(
            n[3..]
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
    }
}

/// Any well-formed country code.
fn any_country() -> impl Strategy<Value = CountryCode> {
    proptest::sample::select(&crate::contract::address::ASSIGNED_COUNTRY_CODES[..]).prop_map(code)
}

proptest! {
    #[test]
    fn prices_are_positive_deterministic_and_monotone(
        country in any_country(),
        n in 1..=1000_u32,
        more_items in 0..=1000_u32,
        grams in proptest::option::of(any::<u32>()),
        more_grams in any::<u32>(),
    ) {
        let card = card();
        let base = card.price(country, items(n), grams.map(Grams));
        match base {
            Err(UnsupportedDestination(c)) => prop_assert!(["AQ", "KP"].contains(&c.as_str())),
            Ok(price) => {
                prop_assert!(price.amount_minor > 0);
                prop_assert_eq!(price.currency, Currency::EUR);
                // Identical requests, identical prices.
                prop_assert_eq!(card.price(country, items(n), grams.map(Grams)), Ok(price));
                // More items never cost less.
                let n2 = items((n + more_items).min(1000));
                let more = card.price(country, n2, grams.map(Grams)).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(more.amount_minor >= price.amount_minor);
                // More weight never costs less, and a known weight never less than none.
                let heavier = grams.unwrap_or(0).saturating_add(more_grams);
                let weighed = card.price(country, items(n), Some(Grams(heavier))).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(weighed.amount_minor >= price.amount_minor);
            }
        }
    }
}

#[test]
fn ids_read_back_only_in_the_form_shipping_makes() {
    let id = ShipmentId::generate();
    assert_eq!(ShipmentId::parse(id.as_str()), Some(id.clone()));
    let upper = id.as_str().to_uppercase();
    let simple = id.as_str().replace('-', "");
    for odd in ["", "nope", upper.as_str(), simple.as_str()] {
        assert_eq!(ShipmentId::parse(odd), None, "{odd:?}");
    }
    let quote = QuoteId::generate();
    assert_eq!(QuoteId::parse(quote.as_str()), Some(quote));

    assert!(OrderId::parse("o-1").is_some());
    assert!(OrderId::parse(&"x".repeat(MAX_ORDER_ID_LEN)).is_some());
    for bad in [
        String::new(),
        "x".repeat(MAX_ORDER_ID_LEN + 1),
        "o\t1".to_owned(),
    ] {
        assert_eq!(OrderId::parse(&bad), None, "{bad:?}");
    }
}
