//! What runs once when the service starts: checking its configuration, loading (or creating)
//! the signing key, and creating the configured administrator.
//!
//! Both are idempotent, so every restart and every replica runs them. Two replicas that start
//! on an empty database at the same moment may each create a signing key; both keys are
//! published in the JWKS, so tokens from either verify, and the next restart converges on the
//! newest.

use flotilla_chassis::clock::Clock;
use flotilla_chassis::{Role, StartError};

use crate::IdentityConfig;
use crate::domain::{DisplayName, Email, Password, UserId, UserRecord};
use crate::password::Passwords;
use crate::store::{IdentityStore, InsertUserError};
use crate::token::SigningKey;

/// The display name given to the bootstrapped administrator.
const ADMIN_NAME: &str = "Administrator";

/// A start failure naming the service.
pub fn fail(message: impl std::fmt::Display) -> StartError {
    StartError::Other(format!("{}: {message}", crate::NAME))
}

/// Refuses configurations that could only produce unusable tokens or a silently missing admin.
pub fn check_config(config: &IdentityConfig) -> Result<(), StartError> {
    if config.issuer.trim().is_empty() || config.audience.trim().is_empty() {
        return Err(fail(
            "identity.issuer and identity.audience must not be empty",
        ));
    }
    if config.token_ttl_secs == 0 || i64::try_from(config.token_ttl_secs).is_err() {
        return Err(fail(
            "identity.token_ttl_secs must be a positive number of seconds",
        ));
    }
    if !(1..=1_000).contains(&config.login_failures_max)
        || !(1..=86_400).contains(&config.login_window_secs)
    {
        return Err(fail(
            "identity.login_failures_max must be 1 to 1000 and identity.login_window_secs 1 to 86400",
        ));
    }
    match admin_credentials(config) {
        (Some(_), None) | (None, Some(_)) => Err(fail(
            "set both FLOTILLA_ADMIN_EMAIL and FLOTILLA_ADMIN_PASSWORD (identity.admin_email and \
             identity.admin_password), or neither",
        )),
        _ => Ok(()),
    }
}

/// The admin email and password, treating empty values as unset (as `VAR=` in a compose file
/// means "not set").
fn admin_credentials(config: &IdentityConfig) -> (Option<&str>, Option<&str>) {
    fn set(value: &Option<String>) -> Option<&str> {
        value.as_deref().filter(|s| !s.trim().is_empty())
    }
    (set(&config.admin_email), set(&config.admin_password))
}

/// The key to sign with: the newest active stored key, or a new one stored now.
pub async fn signing_key(
    store: &IdentityStore,
    clock: &dyn Clock,
) -> Result<SigningKey, StartError> {
    if let Some((kid, pkcs8)) = store.active_signing_key().await? {
        let key = SigningKey::from_pkcs8_base64(&pkcs8).map_err(fail)?;
        if key.kid() != kid {
            return Err(fail(format!(
                "stored signing key {kid} does not match its own thumbprint {}",
                key.kid()
            )));
        }
        return Ok(key);
    }
    let key = SigningKey::generate().map_err(fail)?;
    store.insert_signing_key(&key, clock.now()).await?;
    tracing::info!(kid = key.kid(), "generated a new signing key");
    Ok(key)
}

/// Makes sure the configured administrator exists and has the admin role.
///
/// A new account gets the configured password. An existing account is promoted to admin if
/// needed but keeps its password: the configuration seeds the first password only, so an
/// operator who changed it does not have it reset by a restart.
pub async fn admin(
    store: &IdentityStore,
    passwords: &Passwords,
    config: &IdentityConfig,
    clock: &dyn Clock,
) -> Result<(), StartError> {
    let (Some(email), Some(password)) = admin_credentials(config) else {
        return Ok(());
    };
    let email = Email::parse(email).map_err(|m| fail(format!("identity.admin_email {m}")))?;
    if promote(store, &email).await? {
        return Ok(());
    }
    let password = Password::parse(password.to_owned())
        .map_err(|m| fail(format!("identity.admin_password {m}")))?;
    let record = UserRecord {
        id: UserId::generate(),
        email: email.clone(),
        name: DisplayName::from_stored(ADMIN_NAME.to_owned()),
        role: Role::Admin,
        password_hash: passwords.hash(&password).await.map_err(fail)?,
        created_at: clock.now(),
    };
    match store.insert_user(&record).await {
        Ok(()) => {
            tracing::info!(
                user_id = record.id.as_str(),
                "created the administrator account"
            );
            Ok(())
        }
        // Another replica created it in the meantime.
        Err(InsertUserError::EmailTaken) => promote(store, &email).await.map(|_| ()),
        Err(InsertUserError::Storage(e)) => Err(e.into()),
    }
}

/// Gives the account of `email` the admin role; false when there is no such account.
async fn promote(store: &IdentityStore, email: &Email) -> Result<bool, StartError> {
    let Some(user) = store.user_by_email(email).await? else {
        return Ok(false);
    };
    if user.role != Role::Admin {
        store.make_admin(&user.id).await?;
        tracing::info!(
            user_id = user.id.as_str(),
            "promoted the configured administrator"
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_chassis::clock::SystemClock;
    use flotilla_testkit::{TestDatabases, test_db};

    /// A migrated store on a fresh database (SQLite, or PostgreSQL when
    /// `FLOTILLA_TEST_DATABASE_URL` is set); the database goes when the guard drops.
    struct TempStore {
        store: IdentityStore,
        _db: TestDatabases,
    }

    async fn temp_store() -> TempStore {
        let (db, guard) = test_db("identity").await;
        db.migrate(crate::MIGRATIONS).await.expect("migrate");
        TempStore {
            store: IdentityStore::new(db),
            _db: guard,
        }
    }

    fn admin_config(email: &str, password: &str) -> IdentityConfig {
        IdentityConfig {
            admin_email: Some(email.to_owned()),
            admin_password: Some(password.to_owned()),
            ..IdentityConfig::default()
        }
    }

    #[tokio::test]
    async fn an_existing_account_is_promoted_and_keeps_its_password() {
        let temp = temp_store().await;
        let passwords = Passwords::new().await.expect("passwords");
        let original = Password::parse("the user's own password".into()).expect("valid");
        let user = UserRecord {
            id: UserId::generate(),
            email: Email::parse("root@example.com").expect("valid"),
            name: DisplayName::parse("Root").expect("valid"),
            role: Role::Customer,
            password_hash: passwords.hash(&original).await.expect("hash"),
            created_at: flotilla_chassis::clock::at_millis(0),
        };
        temp.store.insert_user(&user).await.expect("insert");

        let config = admin_config("ROOT@example.com", "configured-password");
        for _restart in 0..2 {
            admin(&temp.store, &passwords, &config, &SystemClock)
                .await
                .expect("bootstrap");
        }
        let stored = temp
            .store
            .user_by_email(&user.email)
            .await
            .expect("query")
            .expect("user");
        assert_eq!(stored.id, user.id);
        assert_eq!(stored.role, Role::Admin);
        let hash = Some(&stored.password_hash);
        assert!(passwords.verify(&original, hash).await.expect("verify"));
    }

    #[tokio::test]
    async fn an_invalid_admin_password_stops_the_start() {
        let temp = temp_store().await;
        let passwords = Passwords::new().await.expect("passwords");
        let config = admin_config("root@example.com", "short");
        let result = admin(&temp.store, &passwords, &config, &SystemClock).await;
        assert!(matches!(result, Err(StartError::Other(m)) if m.contains("admin_password")));
    }

    #[tokio::test]
    async fn the_signing_key_survives_a_restart() {
        let temp = temp_store().await;
        let first = signing_key(&temp.store, &SystemClock).await.expect("key");
        let again = signing_key(&temp.store, &SystemClock).await.expect("key");
        assert_eq!(first.kid(), again.kid());
        let published = temp.store.public_keys().await.expect("keys");
        assert_eq!(published, vec![first.jwk()]);
    }

    #[test]
    fn half_an_admin_configuration_is_refused() {
        let mut config = admin_config("root@example.com", "configured-password");
        assert!(check_config(&config).is_ok());
        config.admin_password = Some(" ".into());
        assert!(check_config(&config).is_err());
        config.admin_email = None;
        assert!(check_config(&config).is_ok(), "blank counts as unset");
        let zero_ttl = IdentityConfig {
            token_ttl_secs: 0,
            ..IdentityConfig::default()
        };
        assert!(check_config(&zero_ttl).is_err());
    }
}
