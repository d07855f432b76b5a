//! Unit and property tests of the provider's rules.

use super::*;
use flotilla_chassis::Currency;
use proptest::prelude::*;

#[test]
fn test_cards_are_recognised_with_spaces_and_reduced_to_brand_and_last_four() {
    let card = Card::parse("4242 4242 4242 4242").expect("valid");
    assert_eq!(card.last4, "4242");
    assert_eq!(card.brand, "visa");
    assert_eq!(card.behaviour, CardBehaviour::Approves);
    let expectations = [
        (
            "4000000000000002",
            CardBehaviour::Declines(DeclineCode::CardDeclined),
        ),
        (
            "4000000000009995",
            CardBehaviour::Declines(DeclineCode::InsufficientFunds),
        ),
        ("4000000000000119", CardBehaviour::ProcessingError),
        ("4000000000000341", CardBehaviour::DeclinesCapture),
    ];
    for (number, behaviour) in expectations {
        assert_eq!(Card::parse(number).map(|c| c.behaviour), Ok(behaviour));
    }
}

#[test]
fn other_numbers_are_refused_with_the_reason() {
    assert_eq!(
        Card::parse("4111111111111111"),
        Err(InvalidRequest::UnknownCard)
    );
    assert_eq!(
        Card::parse("424242424242"),
        Err(InvalidRequest::UnknownCard)
    );
    assert_eq!(Card::parse("42424242424"), Err(InvalidRequest::CardLength));
    assert_eq!(
        Card::parse("42424242424242424242"),
        Err(InvalidRequest::CardLength)
    );
    assert_eq!(Card::parse(""), Err(InvalidRequest::CardLength));
    assert_eq!(
        Card::parse("4242-4242-4242-4242"),
        Err(InvalidRequest::CardNotDigits)
    );
    assert_eq!(
        Card::parse("４２４２424242424242"),
        Err(InvalidRequest::CardNotDigits)
    );
    assert_eq!(
        Card::parse(&" ".repeat(10_000)),
        Err(InvalidRequest::CardLength)
    );
    assert!(InvalidRequest::UnknownCard.is_card());
    assert!(!InvalidRequest::OrderId.is_card());
}

#[test]
fn brands_follow_the_common_prefixes() {
    assert_eq!(brand_of("4000"), "visa");
    assert_eq!(brand_of("5500"), "mastercard");
    assert_eq!(brand_of("2221"), "mastercard");
    assert_eq!(brand_of("3700"), "amex");
    assert_eq!(brand_of("6011"), "unknown");
}

#[test]
fn amounts_and_order_ids_are_bounded() {
    let eur = |minor| Money::new(minor, Currency::EUR);
    assert!(parse_amount(eur(1), 100).is_ok());
    assert!(parse_amount(eur(100), 100).is_ok());
    assert_eq!(
        parse_amount(eur(101), 100),
        Err(InvalidRequest::Amount { max: 100 })
    );
    assert!(parse_amount(eur(0), 100).is_err());
    assert!(parse_amount(eur(-5), 100).is_err());
    assert!(OrderId::parse("ord_1").is_ok());
    assert!(OrderId::parse(&"é".repeat(128)).is_ok());
    assert!(OrderId::parse(&"o".repeat(129)).is_err());
    assert!(OrderId::parse("").is_err());
    assert!(OrderId::parse("a\nb").is_err());
}

#[test]
fn payment_ids_round_trip_and_nothing_else_parses() {
    let id = PaymentId::generate();
    assert_eq!(PaymentId::parse(id.as_str()), Some(id.clone()));
    assert_ne!(PaymentId::generate(), id);
    assert_eq!(PaymentId::parse("pay_"), None);
    assert_eq!(PaymentId::parse(&id.as_str().to_uppercase()), None);
    assert_eq!(PaymentId::parse(&id.as_str()[4..]), None);
}

#[test]
fn transitions_follow_the_lifecycle() {
    use Decision::*;
    use PaymentStatus::*;
    let ok = "4242";
    assert_eq!(Transition::Capture.decide(Authorized, ok), Apply);
    assert_eq!(
        Transition::Capture.decide(Authorized, "0341"),
        Refuse(Refusal::CaptureDeclined)
    );
    assert_eq!(
        Transition::Capture.decide(Captured, ok),
        Refuse(Refusal::AlreadyCaptured)
    );
    for status in [Voided, Declined, Refunded] {
        assert_eq!(
            Transition::Capture.decide(status, ok),
            Refuse(Refusal::InvalidState(status))
        );
    }
    assert_eq!(Transition::Void.decide(Authorized, "0341"), Apply);
    assert_eq!(Transition::Void.decide(Voided, ok), AlreadyDone);
    for status in [Captured, Declined, Refunded] {
        assert_eq!(
            Transition::Void.decide(status, ok),
            Refuse(Refusal::InvalidState(status))
        );
    }
    assert_eq!(Transition::Refund.decide(Captured, ok), Apply);
    assert_eq!(Transition::Refund.decide(Refunded, ok), AlreadyDone);
    for status in [Authorized, Declined, Voided] {
        assert_eq!(
            Transition::Refund.decide(status, ok),
            Refuse(Refusal::InvalidState(status))
        );
    }
}

/// The store applies a transition with `UPDATE ... WHERE status = from AND card_last4 <>
/// refused_last4`; that predicate must say "apply" exactly when the rules do.
#[test]
fn the_conditional_update_applies_exactly_when_the_rules_say_apply() {
    let last4s = ["4242", "0002", "9995", "0119", "0341"];
    for transition in [Transition::Capture, Transition::Void, Transition::Refund] {
        for status in PaymentStatus::ALL {
            for last4 in last4s {
                let update_applies =
                    status == transition.from() && transition.refused_last4() != Some(last4);
                assert_eq!(
                    update_applies,
                    transition.decide(status, last4) == Decision::Apply,
                    "{transition:?} of a {status} payment on a card ending {last4}"
                );
            }
        }
    }
}

fn any_transition() -> impl Strategy<Value = Transition> {
    prop_oneof![
        Just(Transition::Capture),
        Just(Transition::Void),
        Just(Transition::Refund)
    ]
}

proptest! {
    /// Whatever is asked in whatever order, each transition applies at most once, and the money
    /// taken minus the money given back is the amount exactly when the payment ends captured.
    #[test]
    fn every_movement_happens_at_most_once(
        start_declined in any::<bool>(),
        declines_capture in any::<bool>(),
        asks in prop::collection::vec(any_transition(), 0..24),
    ) {
        let last4 = if declines_capture { "0341" } else { "4242" };
        let mut status = if start_declined { PaymentStatus::Declined } else { PaymentStatus::Authorized };
        let (mut captures, mut refunds, mut voids) = (0, 0, 0);
        for ask in asks {
            if ask.decide(status, last4) == Decision::Apply {
                prop_assert_eq!(status, ask.from());
                status = ask.to();
                match ask {
                    Transition::Capture => captures += 1,
                    Transition::Refund => refunds += 1,
                    Transition::Void => voids += 1,
                }
            }
        }
        prop_assert!(captures <= 1 && refunds <= 1 && voids <= 1);
        prop_assert!(refunds <= captures, "a refund needs a capture");
        prop_assert!(captures + voids <= 1, "captured or voided, never both");
        prop_assert_eq!(captures - refunds == 1, status == PaymentStatus::Captured);
        if declines_capture || start_declined {
            prop_assert_eq!(captures, 0);
        }
    }
}
