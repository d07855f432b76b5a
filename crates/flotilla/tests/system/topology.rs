//! `flotilla::topology` says who calls whom; the deployment files are checked against it
//! (`tests/manifests.rs`: NetworkPolicies let in exactly each service's callers). This holds the
//! table to the code: every service's `/admin/resilience` lists each upstream it built a client
//! for, and that list must be the table's.

use crate::checkout::admin_shop;
use flotilla::host::{GATEWAY, SERVICES};
use flotilla::topology;
use serde_json::Value;

#[tokio::test]
async fn each_service_calls_exactly_the_services_the_topology_declares() {
    let (app, admin) = admin_shop().await;
    let names = SERVICES.iter().map(|spec| spec.name).chain([GATEWAY]);
    for name in names {
        // The storefront serves the site's paths as they are: its report is at the root.
        let url = if name == "storefront" {
            format!("{}/admin/resilience", app.base)
        } else {
            format!("{}/api/{name}/admin/resilience", app.base)
        };
        let res = app
            .http
            .get(&url)
            .header("authorization", &admin)
            .send()
            .await
            .expect("report");
        assert_eq!(res.status(), 200, "{url}");
        let report: Value = res.json().await.expect("json");
        let mut upstreams: Vec<&str> = report["upstreams"]
            .as_array()
            .expect("upstreams")
            .iter()
            .filter_map(|u| u["upstream"].as_str())
            .collect();
        upstreams.sort_unstable();
        assert_eq!(
            upstreams,
            topology::calls(name),
            "{name} builds clients for {upstreams:?}; crates/flotilla/src/topology.rs says otherwise"
        );
    }
}
