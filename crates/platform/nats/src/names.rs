//! The prefixed names of streams, subjects and consumers: `{PREFIX}_{SOURCE}` streams holding
//! `{prefix}.{source}.>`, events on `{prefix}.{source}.{event_type}`, durables named after the
//! consuming service. Everything is sanitised to what NATS accepts in a name or subject token.

use flotilla_chassis::events::BusError;

/// The prefixed names of streams and subjects.
#[derive(Debug, Clone)]
pub(super) struct Names {
    prefix: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Result<Self, BusError> {
        if prefix.is_empty() {
            return Err(BusError::Broker("the NATS prefix must not be empty".into()));
        }
        Ok(Self {
            prefix: token(prefix),
        })
    }

    /// `{PREFIX}_{SOURCE}`.
    pub(super) fn stream(&self, source: &str) -> String {
        format!("{}_{}", self.prefix, token(source)).to_uppercase()
    }

    /// `{prefix}.{source}.>`.
    pub(super) fn subjects(&self, source: &str) -> String {
        format!("{}.{}.>", self.prefix, token(source))
    }

    /// `{prefix}.{source}.{event_type}` (the type's dots kept: `order.confirmed` is two tokens).
    pub(super) fn subject(&self, source: &str, event_type: &str) -> String {
        let event_type: Vec<String> = event_type
            .split('.')
            .filter(|part| !part.is_empty())
            .map(token)
            .collect();
        format!("{}.{}.{}", self.prefix, token(source), event_type.join("."))
    }

    /// True for a stream of this prefix: by its name, and by its subjects (so that purging
    /// prefix `t1` leaves prefix `t1_x`'s streams alone).
    pub(super) fn owns_stream(&self, name: &str, subjects: &[String]) -> bool {
        let own = format!("{}.", self.prefix);
        name.starts_with(&format!("{}_", self.prefix.to_uppercase()))
            && !subjects.is_empty()
            && subjects.iter().all(|subject| subject.starts_with(&own))
    }
}

/// `text` as one lower-case subject token or name part: letters, digits, `-` and `_` only
/// (stream names are upper-cased, so case must not tell two names apart).
pub(super) fn token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_and_sanitised() {
        let names = Names::new("T-1.x").expect("prefix");
        assert_eq!(names.stream("orders"), "T-1_X_ORDERS");
        assert_eq!(names.subjects("orders"), "t-1_x.orders.>");
        assert_eq!(
            names.subject("orders", "order.confirmed"),
            "t-1_x.orders.order.confirmed"
        );
        assert_eq!(names.subject("or ders", "a.*.>"), "t-1_x.or_ders.a._._");
        let own = |name: &str, subject: &str| names.owns_stream(name, &[subject.to_owned()]);
        assert!(own("T-1_X_ORDERS", "t-1_x.orders.>"));
        assert!(!own("T-1_X_Y_ORDERS", "t-1_x_y.orders.>"));
        assert!(!own("OTHER", "t-1_x.orders.>"));
        assert!(Names::new("").is_err());
    }
}
