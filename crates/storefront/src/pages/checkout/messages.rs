//! What a refused checkout form says: the checks made before orders is asked, and orders' 422
//! turned into messages, each next to the field it is about where the refusal names one.
//!
//! Both speak shipping's and orders' field names (`city`, `address.city`, `card_number`) and the
//! form's inputs are named alike, so a message finds its input by name once orders' `address.`
//! prefix is dropped; it then reads with the input's label ("Postal code must be ...").

use flotilla_chassis::problem::Problem;
use flotilla_shipping::contract::{Address, PROBLEM_UNSUPPORTED_DESTINATION};

use crate::countries;
use crate::forms::{field_message, sentence};
use crate::views::FormMessages;

/// The mistakes in a form that orders would refuse anyway.
pub fn check(address: &Address, card_number: &str) -> FormMessages {
    let mut messages = FormMessages::default();
    if countries::by_code(&address.country).is_none() {
        messages.field(
            "country",
            "Please choose a country from the list.".to_owned(),
        );
    }
    if let Err(errors) = address.validate() {
        for error in errors {
            messages.field(&error.field, message_for(&error.field, &error.message));
        }
    }
    if card_number.trim().is_empty() {
        messages.field("card_number", "Please enter your card number.".to_owned());
    }
    messages
}

/// Orders' 422 as messages: next to the field it names (`address.city` is the form's `city`),
/// above the form when it names none.
pub fn refusal_messages(problem: &Problem, country: &str) -> FormMessages {
    let mut messages = FormMessages::default();
    if problem.kind == PROBLEM_UNSUPPORTED_DESTINATION {
        let message = format!(
            "We do not ship to {} yet. Please choose another country.",
            countries::name_of(country)
        );
        messages.field("country", message);
        return messages;
    }
    for error in &problem.errors {
        let field = error.field.strip_prefix("address.").unwrap_or(&error.field);
        if is_form_field(field) {
            messages.field(field, message_for(field, &error.message));
        } else {
            messages.general(field_message(&error.field, &error.message));
        }
    }
    if messages.is_empty() {
        messages.general(sentence(problem.detail.as_deref().unwrap_or_default()));
    }
    messages
}

/// The fields of the form a message can stand next to.
const FORM_FIELDS: [&str; 6] = [
    "name",
    "line1",
    "city",
    "postal_code",
    "country",
    "card_number",
];

fn is_form_field(field: &str) -> bool {
    FORM_FIELDS.contains(&field)
}

/// A service's message about `field` as a sentence naming the field by its label.
fn message_for(field: &str, message: &str) -> String {
    let label = match field {
        "name" => "Name",
        "line1" => "Address",
        "city" => "City",
        "postal_code" => "Postal code",
        "country" => "Country",
        "card_number" => "Card number",
        other => other,
    };
    field_message(label, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::problem::FieldError;

    fn address(country: &str, city: &str) -> Address {
        Address {
            name: "Ada".into(),
            line1: "Unter den Linden 1".into(),
            city: city.into(),
            postal_code: "10117".into(),
            country: country.into(),
        }
    }

    #[test]
    fn local_checks_name_their_fields() {
        let messages = check(&address("DE", "Berlin"), "4242 4242 4242 4242");
        assert!(messages.is_empty(), "{messages:?}");
        let messages = check(&address("ZZ", "   "), " ");
        assert_eq!(
            messages.for_field("country"),
            Some("Please choose a country from the list.")
        );
        assert!(
            messages
                .for_field("city")
                .is_some_and(|m| m.starts_with("City must be"))
        );
        assert_eq!(
            messages.for_field("card_number"),
            Some("Please enter your card number.")
        );
    }

    #[test]
    fn orders_field_errors_land_next_to_their_fields() {
        let mut problem = Problem::invalid("address.postal_code", "must be 1 to 20 characters");
        problem.errors.push(FieldError {
            field: "lines".into(),
            message: "must not be empty".into(),
        });
        let messages = refusal_messages(&problem, "DE");
        assert_eq!(
            messages.for_field("postal_code"),
            Some("Postal code must be 1 to 20 characters.")
        );
        assert_eq!(
            messages.general_messages(),
            ["Lines must not be empty.".to_owned()]
        );

        let mut unsupported = Problem::invalid("address.country", "not served");
        unsupported.kind = PROBLEM_UNSUPPORTED_DESTINATION.to_owned();
        let messages = refusal_messages(&unsupported, "JP");
        assert_eq!(
            messages.for_field("country"),
            Some("We do not ship to Japan yet. Please choose another country.")
        );
    }
}
