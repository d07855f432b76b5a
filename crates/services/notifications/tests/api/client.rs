//! The typed client against the real service: what the storefront and the ops console call.

use axum::http::StatusCode;
use flotilla_chassis::pagination::PageParams;
use flotilla_chassis::{Caller, Role};
use flotilla_notifications::client::NotificationsClient;

use crate::harness::{App, order_cancelled, order_confirmed};

fn caller(user_id: &str, role: Role) -> Caller {
    Caller {
        user_id: user_id.to_owned(),
        role,
    }
}

#[tokio::test]
async fn the_client_reads_own_messages_and_admins_read_everyones() {
    let app = App::start().await;
    app.publish(&order_confirmed("e1", "alice", "o-1")).await;
    app.publish(&order_cancelled("e2", "alice", "o-1", "late"))
        .await;
    app.publish(&order_confirmed("e3", "bob", "o-2")).await;
    let client = NotificationsClient::new(app.fleet.transport(flotilla_notifications::NAME));
    let alice = caller("alice", Role::Customer);
    let admin = caller("ops", Role::Admin);

    let mine = client
        .mine(&alice, PageParams::default())
        .await
        .expect("mine");
    assert_eq!(mine.total, 2);
    assert!(mine.items.iter().all(|m| m.user_id == "alice"));
    let paged = client
        .mine(
            &alice,
            PageParams {
                page: Some(2),
                page_size: Some(1),
            },
        )
        .await
        .expect("mine");
    assert_eq!(paged.items.len(), 1);
    assert_eq!(paged.pages(), 2);

    let all = client
        .all(&admin, None, None, PageParams::default())
        .await
        .expect("all");
    assert_eq!(all.total, 3);
    let order = client
        .all(&admin, None, Some("o-1"), PageParams::default())
        .await
        .expect("by order");
    assert_eq!(order.total, 2);
    let bob = client
        .all(&admin, Some("bob"), Some("o-2"), PageParams::default())
        .await
        .expect("by user and order");
    assert_eq!(bob.total, 1);
}

#[tokio::test]
async fn the_client_reports_the_services_refusals() {
    let app = App::start().await;
    let client = NotificationsClient::new(app.fleet.transport(flotilla_notifications::NAME));
    let alice = caller("alice", Role::Customer);

    let not_admin = client.all(&alice, None, None, PageParams::default()).await;
    assert_eq!(
        not_admin.err().and_then(|e| e.status()),
        Some(StatusCode::FORBIDDEN)
    );
    let too_big = client
        .mine(
            &alice,
            PageParams {
                page: None,
                page_size: Some(101),
            },
        )
        .await;
    assert_eq!(
        too_big.err().and_then(|e| e.status()),
        Some(StatusCode::BAD_REQUEST)
    );
}
