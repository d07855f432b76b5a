//! Checkout: the form that turns the cart into an order, and its post.
//!
//! The form carries a hidden idempotency key, a fresh UUID v4 each time the form is rendered,
//! which the post hands to orders: a double click or a browser retrying the post reaches orders
//! with the same key and gets the same order back, so the order is placed once. A refused form
//! comes back with a new key (the refused attempt placed nothing) and with what was typed,
//! except the card number: it is passed to orders and forgotten, never logged, stored or echoed.
//!
//! The address is checked with shipping's own rules ([`Address::validate`]) before orders is
//! called, so most typing mistakes are answered without a round trip; orders' 422 is turned into
//! the same messages next to the same fields.

mod messages;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use flotilla_chassis::transport::ClientError;
use flotilla_chassis::{Caller, PageParams};
use flotilla_orders::contract::{
    CheckoutRequest, PROBLEM_CART_CHANGED, PROBLEM_CHECKOUT_IN_PROGRESS, PROBLEM_EMPTY_CART,
    PROBLEM_IDEMPOTENCY_CONFLICT, PROBLEM_PRODUCT_UNAVAILABLE, PROBLEM_TOO_MANY_LINES,
};
use flotilla_shipping::contract::Address;
use serde::Deserialize;
use std::sync::Arc;

use crate::countries::{self, COUNTRIES};
use crate::error::PageError;
use crate::forms::{HtmlForm, OrderId};
use crate::pages::{cart, orders};
use crate::session;
use crate::shop::{ESTIMATE_POSTAL_CODE, Shop};
use crate::views::{AddressFields, CheckoutPage, FormMessages, ShippingEstimate, render};
use messages::{check, refusal_messages};

/// The checkout form's fields. No `Debug`: it holds a card number.
#[derive(Deserialize)]
pub struct CheckoutForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    line1: String,
    #[serde(default)]
    city: String,
    #[serde(default)]
    postal_code: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    card_number: String,
    #[serde(default)]
    idempotency_key: String,
}

/// Shown on the cart page when orders finds nothing to order.
const EMPTY_CART: &str = "Your cart is empty, so there is nothing to check out.";

/// Shown on the cart page when a product of the cart left the catalog.
const UNAVAILABLE: &str = "A product in your cart is no longer available. Please remove it \
     from your cart and check out again.";

/// Shown on the cart page when the cart holds more lines than one order may.
const TOO_MANY_LINES: &str = "Your cart holds more different products than one order can. \
     Please order some of them now and the rest in a second order.";

/// Shown on the cart page when another checkout of this cart (another tab, another form) is
/// placing its order: a cart is checked out once.
const IN_PROGRESS: &str = "This cart is already being checked out in another window. Please \
     look at your orders before checking out again.";

/// Shown on the cart page when the cart changed while it was being checked out.
const CHANGED: &str = "Your cart changed while it was being checked out. Please look at it \
     and at your orders before checking out again.";

/// Shown above the form when its key was already used for an order with other details (the
/// browser's Back button, then a change, then Place order).
const KEY_REUSED: &str = "This form was already used to place an order with other details. \
     Please check your orders before placing this one.";

/// `GET /checkout`.
#[tracing::instrument(skip_all)]
pub async fn show(State(shop): State<Arc<Shop>>, caller: Option<Caller>) -> Response {
    let Some(caller) = caller else {
        return session::to_login("/checkout");
    };
    let address = AddressFields {
        country: countries::DEFAULT.to_owned(),
        ..AddressFields::default()
    };
    page(
        &shop,
        &caller,
        address,
        FormMessages::default(),
        StatusCode::OK,
    )
    .await
}

/// `POST /checkout`: place the order and go to its page, or show the form again.
#[tracing::instrument(skip_all)]
pub async fn place(
    State(shop): State<Arc<Shop>>,
    caller: Option<Caller>,
    HtmlForm(form): HtmlForm<CheckoutForm>,
) -> Response {
    let Some(caller) = caller else {
        return session::to_login("/checkout");
    };
    let key = form.idempotency_key.trim();
    if uuid::Uuid::parse_str(key).is_err() {
        // The form always carries one, so this post was not made with it.
        tracing::debug!("checkout posted without a valid idempotency key");
        return PageError::BadRequest.page(shop.chrome(Some(&caller)).await);
    }
    let typed = AddressFields {
        name: form.name,
        line1: form.line1,
        city: form.city,
        postal_code: form.postal_code,
        country: form.country.trim().to_owned(),
    };
    let address = address_of(&typed);
    let messages = check(&address, &form.card_number);
    if !messages.is_empty() {
        return page(
            &shop,
            &caller,
            typed,
            messages,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let request = CheckoutRequest {
        address,
        card_number: form.card_number,
    };
    match shop.orders.checkout(&caller, key, &request).await {
        // 201 (done) and 202 (pending) alike: the order's page shows where it stands.
        Ok(order) => match OrderId::parse(&order.id) {
            Some(id) => Redirect::to(&orders::path(&id)).into_response(),
            None => {
                tracing::error!(order_id = %order.id, "orders named an order with an odd id");
                Redirect::to("/orders").into_response()
            }
        },
        Err(error) => refused(&shop, &caller, typed, error).await,
    }
}

/// The address orders is sent: what was typed, trimmed.
fn address_of(typed: &AddressFields) -> Address {
    Address {
        name: typed.name.clone(),
        line1: typed.line1.clone(),
        city: typed.city.clone(),
        postal_code: typed.postal_code.clone(),
        country: typed.country.clone(),
    }
    .trimmed()
}

/// What the form does with orders' refusal of a checkout: a problem with the cart is shown on
/// the cart page, a problem with what was typed next to the form, anything else as an error page.
async fn refused(
    shop: &Shop,
    caller: &Caller,
    typed: AddressFields,
    error: ClientError,
) -> Response {
    let problem = match &error {
        ClientError::Status { problem, .. } => problem.as_ref(),
        _ => return PageError::from(error).page(shop.chrome(Some(caller)).await),
    };
    let status = problem.status_code();
    let cart_notice = match problem.kind.as_str() {
        PROBLEM_EMPTY_CART => Some(EMPTY_CART),
        PROBLEM_PRODUCT_UNAVAILABLE => Some(UNAVAILABLE),
        PROBLEM_TOO_MANY_LINES => Some(TOO_MANY_LINES),
        PROBLEM_CHECKOUT_IN_PROGRESS => Some(IN_PROGRESS),
        PROBLEM_CART_CHANGED => Some(CHANGED),
        _ => None,
    };
    if let Some(notice) = cart_notice {
        return cart::page(shop, caller, Some(notice), status).await;
    }
    match status {
        StatusCode::CONFLICT if problem.kind == PROBLEM_IDEMPOTENCY_CONFLICT => {
            let mut messages = FormMessages::default();
            messages.general(KEY_REUSED.to_owned());
            page(shop, caller, typed, messages, status).await
        }
        StatusCode::UNPROCESSABLE_ENTITY => {
            let messages = refusal_messages(problem, &typed.country);
            page(shop, caller, typed, messages, status).await
        }
        _ => PageError::from(error).page(shop.chrome(Some(caller)).await),
    }
}

/// The checkout page: the cart summary and, when there is something to order, the form with a
/// new idempotency key and the shipping cost to the chosen country.
async fn page(
    shop: &Shop,
    caller: &Caller,
    address: AddressFields,
    messages: FormMessages,
    status: StatusCode,
) -> Response {
    // Orders is asked too, though the form needs nothing from it: a form that cannot be sent is
    // no use, so an orders outage makes this page a 503 like every other page about orders.
    let probe = PageParams {
        page: Some(1),
        page_size: Some(1),
    };
    let (categories, cart, orders) = tokio::join!(
        shop.categories(),
        shop.cart.get(caller),
        shop.orders.list(caller, probe)
    );
    let chrome = shop.bare_chrome(Some(caller)).with_categories(categories);
    let cart = match cart {
        Ok(cart) => cart,
        Err(error) => return PageError::from(error).page(chrome),
    };
    let mut chrome = chrome.with_cart_count(Some(cart.item_count));
    if let Err(error) = orders {
        return PageError::from(error).page(chrome);
    }
    let shipping = if cart.item_count == 0 {
        None
    } else {
        let (country, postal_code) = estimate_destination(&address);
        let cost = shop
            .shipping_cost(country, &postal_code, cart.item_count)
            .await;
        if cost.is_none() {
            chrome.degraded = true;
        }
        cost.map(|amount| ShippingEstimate {
            country: countries::name_of(country),
            amount,
            total: cart.total.checked_add(amount).ok(),
        })
    };
    let page = CheckoutPage {
        chrome,
        cart,
        address,
        messages,
        idempotency_key: uuid::Uuid::new_v4().to_string(),
        countries: COUNTRIES,
        shipping,
    };
    render(status, &page)
}

/// Where the shipping estimate is for: the chosen country (or the default when the choice is not
/// on the list) and the typed postal code when it is a valid one.
fn estimate_destination(address: &AddressFields) -> (&'static str, String) {
    let country = countries::by_code(address.country.trim()).map_or(countries::DEFAULT, |c| c.code);
    let typed = address_of(address);
    let postal_valid = match typed.validate() {
        Ok(()) => true,
        Err(errors) => errors.iter().all(|e| e.field != "postal_code"),
    };
    let postal_code = if postal_valid {
        typed.postal_code
    } else {
        ESTIMATE_POSTAL_CODE.to_owned()
    };
    (country, postal_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(country: &str, postal_code: &str) -> AddressFields {
        AddressFields {
            name: " Ada ".into(),
            line1: "Unter den Linden 1".into(),
            city: "Berlin".into(),
            postal_code: postal_code.into(),
            country: country.into(),
        }
    }

    #[test]
    fn the_estimate_uses_a_valid_postal_code_only() {
        assert_eq!(
            estimate_destination(&typed("FR", " 75001 ")),
            ("FR", "75001".to_owned())
        );
        assert_eq!(
            estimate_destination(&typed("ZZ", "")),
            ("DE", ESTIMATE_POSTAL_CODE.to_owned())
        );
    }
}
