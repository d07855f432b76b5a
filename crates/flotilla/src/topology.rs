//! Who calls whom over HTTP: the services each service builds typed clients for, in one place.
//!
//! The deployment files follow from it: a Kubernetes NetworkPolicy lets into each service
//! exactly its callers (`deploy/k8s/base`), and the test `tests/manifests.rs` fails when the
//! manifests and this table disagree. The table follows from the code: the system test
//! `topology` starts the shop and reads each service's `/admin/resilience`, which lists every
//! upstream it built a client for, and fails when that list and [`calls`] differ.
//!
//! Events are not calls: they travel through the bus (NATS in a fleet), never from service to
//! service.

use crate::host::{GATEWAY, SERVICES};

/// Each service and the services it calls, as the code builds its clients (sorted by name).
const CALLS: &[(&str, &[&str])] = &[
    ("identity", &[]),
    ("catalog", &[]),
    ("cart", &["catalog"]),
    ("inventory", &[]),
    ("payments", &[]),
    ("shipping", &[]),
    (
        "orders",
        &["cart", "catalog", "inventory", "payments", "shipping"],
    ),
    ("notifications", &[]),
    (
        "storefront",
        &[
            "cart",
            "catalog",
            "identity",
            "inventory",
            "orders",
            "shipping",
        ],
    ),
];

/// The services `name` calls: for the gateway every service (it routes `/api/<service>/` and
/// the web shop, and reads identity's keys), for a service what its clients reach, sorted by
/// name. Empty for a name that is neither.
pub fn calls(name: &str) -> Vec<&'static str> {
    let mut callees: Vec<&'static str> = if name == GATEWAY {
        SERVICES.iter().map(|spec| spec.name).collect()
    } else {
        CALLS
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(_, callees)| callees.to_vec())
            .unwrap_or_default()
    };
    callees.sort_unstable();
    callees
}

/// Who calls `name`, sorted: the gateway and every service whose clients reach it. Nobody
/// inside the fleet calls the gateway: its callers are outside (an empty list).
pub fn callers(name: &str) -> Vec<&'static str> {
    let mut callers: Vec<&'static str> = SERVICES
        .iter()
        .map(|spec| spec.name)
        .chain([GATEWAY])
        .filter(|caller| calls(caller).contains(&name))
        .collect();
    callers.sort_unstable();
    callers
}

/// Every name a deployment runs: each service and the gateway.
pub fn deployables() -> Vec<&'static str> {
    SERVICES
        .iter()
        .map(|spec| spec.name)
        .chain([GATEWAY])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_is_in_the_table_once_and_calls_only_services() {
        let names: Vec<&str> = SERVICES.iter().map(|spec| spec.name).collect();
        for name in &names {
            let rows = CALLS.iter().filter(|(service, _)| service == name).count();
            assert_eq!(rows, 1, "{name} must have one row in CALLS");
        }
        for (service, callees) in CALLS {
            assert!(names.contains(service), "{service} is not a service");
            for callee in *callees {
                assert!(names.contains(callee), "{service} calls unknown {callee}");
                assert_ne!(service, callee, "{service} calls itself");
            }
        }
    }

    #[test]
    fn callers_are_the_inverse_of_calls() {
        assert_eq!(
            callers("catalog"),
            ["cart", "gateway", "orders", "storefront"]
        );
        assert_eq!(callers("payments"), ["gateway", "orders"]);
        assert_eq!(callers("storefront"), ["gateway"]);
        assert!(callers(GATEWAY).is_empty());
    }
}
