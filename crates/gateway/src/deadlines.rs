//! The deadline each request gets at the edge: the gateway is where a request's time budget
//! starts, so every call behind it — to the service, and from there onwards — is bounded by it
//! (see `flotilla_chassis::resilience::deadline`).
//!
//! A client that sends no `x-flotilla-deadline-ms` gets the route's default; a client that sends
//! one may shorten its budget, and may lengthen it up to `max_ms`, never beyond.

use serde::Deserialize;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// `[gateway.deadline]`: per-route default deadlines, in milliseconds.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteDeadlines {
    /// Default for `/api/<service>/...` (10 000).
    pub api_ms: u64,
    /// Default for the web shop's pages (everything outside `/api/`; 10 000).
    pub site_ms: u64,
    /// Default for `/api/<service>/{healthz,readyz,openapi.json}`: a probe that takes longer is
    /// as good as failed (2 000).
    pub probe_ms: u64,
    /// Per-service defaults replacing `api_ms`, e.g. `{ catalog = 3000 }` (none).
    pub services: HashMap<String, u64>,
    /// The longest deadline a client may ask for with the header (30 000). The edge's own
    /// `request_timeout` still applies on top.
    pub max_ms: u64,
}

impl Default for RouteDeadlines {
    fn default() -> Self {
        Self {
            api_ms: 10_000,
            site_ms: 10_000,
            probe_ms: 2_000,
            services: HashMap::new(),
            max_ms: 30_000,
        }
    }
}

/// A deadline setting that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("gateway deadline {name} must be between 1 and max_ms ({max}) ms, got {value}")]
pub struct InvalidRouteDeadline {
    /// Which setting.
    pub name: String,
    /// Its value.
    pub value: u64,
    /// The maximum in force.
    pub max: u64,
}

/// Which kind of route a request took.
#[derive(Debug, Clone, Copy)]
pub enum Route<'a> {
    /// `/api/<service>/<rest>`.
    Api {
        /// The service.
        service: &'a str,
        /// True for the probes and the contract.
        probe: bool,
    },
    /// A web page.
    Site,
}

impl RouteDeadlines {
    /// Checks every default is positive and within `max_ms`.
    pub fn validate(&self) -> Result<(), InvalidRouteDeadline> {
        let named = [
            ("api_ms".to_owned(), self.api_ms),
            ("site_ms".to_owned(), self.site_ms),
            ("probe_ms".to_owned(), self.probe_ms),
        ];
        let services = self
            .services
            .iter()
            .map(|(name, ms)| (format!("services.{name}"), *ms));
        for (name, value) in named.into_iter().chain(services) {
            if value == 0 || value > self.max_ms {
                return Err(InvalidRouteDeadline {
                    name,
                    value,
                    max: self.max_ms,
                });
            }
        }
        Ok(())
    }

    /// The default for `route`.
    pub fn default_for(&self, route: Route<'_>) -> Duration {
        let ms = match route {
            Route::Api { probe: true, .. } => self.probe_ms,
            Route::Api { service, .. } => *self.services.get(service).unwrap_or(&self.api_ms),
            Route::Site => self.site_ms,
        };
        Duration::from_millis(ms)
    }

    /// The deadline of a request on `route` that arrived at `now` asking for `asked` (the
    /// deadline its header gave, if any).
    pub fn effective(&self, route: Route<'_>, asked: Option<Instant>, now: Instant) -> Instant {
        let longest = now + Duration::from_millis(self.max_ms);
        match asked {
            Some(asked) => asked.min(longest),
            None => now + self.default_for(route),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_default_applies_unless_the_client_asks_and_asking_is_capped() {
        let mut deadlines = RouteDeadlines::default();
        deadlines.services.insert("catalog".into(), 3_000);
        assert_eq!(deadlines.validate(), Ok(()));
        let now = Instant::now();
        let api = |service| Route::Api {
            service,
            probe: false,
        };
        let secs = Duration::from_secs;
        assert_eq!(deadlines.effective(api("cart"), None, now), now + secs(10));
        assert_eq!(
            deadlines.effective(api("catalog"), None, now),
            now + secs(3)
        );
        let probe = Route::Api {
            service: "cart",
            probe: true,
        };
        assert_eq!(deadlines.effective(probe, None, now), now + secs(2));
        assert_eq!(deadlines.effective(Route::Site, None, now), now + secs(10));
        let shorter = now + Duration::from_millis(250);
        assert_eq!(
            deadlines.effective(api("cart"), Some(shorter), now),
            shorter
        );
        let longer = now + secs(20);
        assert_eq!(deadlines.effective(api("cart"), Some(longer), now), longer);
        let absurd = now + secs(300);
        assert_eq!(
            deadlines.effective(api("cart"), Some(absurd), now),
            now + secs(30)
        );
    }

    #[test]
    fn defaults_beyond_the_maximum_are_refused() {
        let deadlines = RouteDeadlines {
            api_ms: 60_000,
            ..RouteDeadlines::default()
        };
        assert!(deadlines.validate().is_err());
        let zero = RouteDeadlines {
            probe_ms: 0,
            ..RouteDeadlines::default()
        };
        assert!(zero.validate().is_err());
    }
}
