//! Unit tests of the ordering rules: ids, cards, fingerprints and pricing.

use super::*;
use crate::contract::Address;
use flotilla_catalog::contract::{Product, ProductId};
use flotilla_chassis::Currency;
use flotilla_chassis::Money;

fn eur(minor: i64) -> Money {
    Money::new(minor, Currency::EUR)
}

fn product(id: &str, price: Money) -> Product {
    Product {
        id: self::id(id),
        sku: format!("SKU-{id}"),
        name: format!("Product {id}"),
        description: String::new(),
        category: "kitchen".to_owned(),
        price,
        image_url: String::new(),
        created_at: flotilla_chassis::clock::at_millis(0),
    }
}

fn id(text: &str) -> ProductId {
    ProductId::parse(text).expect("a product id")
}

fn wanted(text: &str, quantity: u32) -> WantedLine {
    WantedLine {
        product_id: id(text),
        quantity,
    }
}

fn request(card: &str, postal_code: &str) -> CheckoutRequest {
    CheckoutRequest {
        address: Address {
            name: "Ada Lovelace".to_owned(),
            line1: "Unter den Linden 1".to_owned(),
            city: "Berlin".to_owned(),
            postal_code: postal_code.to_owned(),
            country: "DE".to_owned(),
        },
        card_number: card.to_owned(),
    }
}

#[test]
fn order_ids_round_trip_and_odd_text_is_refused() {
    let id = OrderId::for_checkout("alice", "key-1");
    assert_eq!(OrderId::parse(id.as_str()), Some(id.clone()));
    assert!(id.as_str().starts_with("ord_"));
    for odd in [
        "",
        "ord_",
        "ord_XYZ",
        "pay_0190a1b2c3d47e8f9a0b1c2d3e4f5a6b",
        "admin",
    ] {
        assert_eq!(OrderId::parse(odd), None, "{odd}");
    }
}

#[test]
fn one_user_and_key_name_one_order() {
    let id = OrderId::for_checkout("alice", "key-1");
    assert_eq!(id, OrderId::for_checkout("alice", "key-1"), "repeats agree");
    assert_ne!(id, OrderId::for_checkout("alice", "key-2"), "another key");
    assert_ne!(id, OrderId::for_checkout("bob", "key-1"), "another user");
    assert_ne!(
        OrderId::for_checkout("ab", "c"),
        OrderId::for_checkout("a", "bc"),
        "the parts do not run together"
    );
}

#[test]
fn cards_are_12_to_19_digits_and_debug_hides_them() {
    let card = CardNumber::parse("4242 4242 4242 4242").expect("valid");
    assert_eq!(card.digits(), "4242424242424242");
    assert_eq!(card.last4(), "4242");
    assert_eq!(format!("{card:?}"), "CardNumber(…4242)");
    for bad in [
        "",
        "42424242424",
        "42424242424242424242",
        "4242-4242-4242-4242",
        "abcdabcdabcd",
        // One digit wrong, and two neighbours swapped: the check digit catches both.
        "4242424242424241",
        "4242424242422442",
    ] {
        assert!(CardNumber::parse(bad).is_none(), "{bad}");
    }
    // Every test card of the simulated provider passes the check.
    for good in [
        "4242424242424242",
        "4000000000000002",
        "4000000000009995",
        "4000000000000119",
        "4000000000000341",
        "4111111111111111",
        "378282246310005",
    ] {
        assert!(CardNumber::parse(good).is_some(), "{good}");
    }
    assert!(CardNumber::parse(&"4".repeat(100)).is_none());
}

#[test]
fn validation_reports_every_bad_field() {
    assert!(validate_request(&request("4242424242424242", "10117")).is_ok());
    let mut bad = request("12", "10117");
    bad.address.city = "  ".to_owned();
    let errors = validate_request(&bad).expect_err("invalid");
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["address.city", "card_number"]);
}

#[test]
fn fingerprints_tell_repeats_from_other_bodies_without_holding_the_card() {
    let a = request("4242 4242 4242 4242", "10117");
    let same = request("4242424242424242", "10117");
    assert_eq!(
        fingerprint(&a),
        fingerprint(&same),
        "spacing is not a difference"
    );
    assert_ne!(
        fingerprint(&a),
        fingerprint(&request("4000000000000002", "10117"))
    );
    assert_ne!(
        fingerprint(&a),
        fingerprint(&request("4242424242424242", "10115"))
    );
    assert!(!fingerprint(&a).contains("4242"), "a hex digest");
    assert_eq!(fingerprint(&a).len(), 64);
}

#[test]
fn lines_are_priced_from_the_catalog_in_cart_order() {
    let products = [
        product("p0000002", eur(250)),
        product("p0000001", eur(1000)),
    ];
    let lines =
        price_lines(&[wanted("p0000001", 2), wanted("p0000002", 3)], &products).expect("priced");
    assert_eq!(lines[0].product_id, id("p0000001"));
    assert_eq!(lines[0].line_total, eur(2000));
    assert_eq!(lines[1].line_total, eur(750));
    assert_eq!(lines[1].name, "Product p0000002");
    let totals = totals(&lines, eur(499)).expect("adds up");
    assert_eq!(totals.subtotal, eur(2750));
    assert_eq!(totals.total, eur(3249));
    assert_eq!(item_count(&lines), Some(5));
}

#[test]
fn missing_products_and_broken_money_are_refused() {
    let products = [product("p0000001", eur(100))];
    assert_eq!(
        price_lines(&[wanted("p0000001", 1), wanted("p0000009", 1)], &products),
        Err(PricingError::Unavailable(vec![id("p0000009")]))
    );
    let huge = [product("p0000001", eur(i64::MAX))];
    assert!(matches!(
        price_lines(&[wanted("p0000001", 2)], &huge),
        Err(PricingError::Money(_))
    ));
    let lines = price_lines(&[wanted("p0000001", 1)], &products).expect("priced");
    let usd = Money::new(100, Currency::parse("USD").expect("code"));
    assert!(totals(&lines, usd).is_err(), "mixed currencies");
}
