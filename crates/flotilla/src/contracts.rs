//! `flotilla contracts`: the services' published contracts, versioned (issue 16 item 5).
//!
//! Services deploy independently, so the version of `orders` running next week must still
//! serve the storefront built today and the consumers of its events. A service's contract is
//! its OpenAPI documents (public and internal) and the JSON Schema of every event it publishes
//! ([`PublishedEvent`]s in its `contract.rs`), under a version, `CONTRACT_VERSION` in the same
//! file. The last released contracts are kept in the repository, under `contracts/<service>/`
//! (`openapi.json`, `openapi.internal.json`, `contract.json` with the version and the event
//! schemas); `check` diffs what the code publishes now against them and fails on any breaking
//! change ([`document_diff`], [`schema_diff`] hold the rules) unless the service's version was
//! raised; additive changes pass. `snapshot` rewrites the snapshots, and refuses to record a
//! breaking change under an unchanged version, so the snapshots only move forward the way the
//! check allows. CI also checks against the base branch's snapshots (scripts/contract-diff.sh),
//! so regenerating them in the same change cannot hide a break.
//!
//! The documents are produced the way `flotilla openapi` produces them: the services are
//! started (migrated into a throw-away data directory, nothing listens) and their routers
//! describe themselves; nothing is written by hand.

mod document_diff;
mod schema_diff;

use anyhow::Context;
use clap::{Args, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use flotilla_chassis::events::PublishedEvent;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::host::{Host, Mode};
use crate::settings::HostSettings;

/// A service with a contract: its version and the events it publishes.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    /// The service's name.
    pub name: &'static str,
    /// Its `CONTRACT_VERSION`.
    pub version: u32,
    /// Its `PUBLISHED_EVENTS`.
    pub events: &'static [PublishedEvent],
}

/// Every service with a published contract. The storefront has none: it serves HTML pages to
/// browsers, and no service or client is built against it.
pub const DECLARED: &[Declared] = &[
    declared(
        flotilla_identity::NAME,
        flotilla_identity::contract::CONTRACT_VERSION,
        flotilla_identity::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_catalog::NAME,
        flotilla_catalog::contract::CONTRACT_VERSION,
        flotilla_catalog::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_cart::NAME,
        flotilla_cart::contract::CONTRACT_VERSION,
        flotilla_cart::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_inventory::NAME,
        flotilla_inventory::contract::CONTRACT_VERSION,
        flotilla_inventory::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_orders::NAME,
        flotilla_orders::contract::CONTRACT_VERSION,
        flotilla_orders::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_payments::NAME,
        flotilla_payments::contract::CONTRACT_VERSION,
        flotilla_payments::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_shipping::NAME,
        flotilla_shipping::contract::CONTRACT_VERSION,
        flotilla_shipping::contract::PUBLISHED_EVENTS,
    ),
    declared(
        flotilla_notifications::NAME,
        flotilla_notifications::contract::CONTRACT_VERSION,
        flotilla_notifications::contract::PUBLISHED_EVENTS,
    ),
];

const fn declared(name: &'static str, version: u32, events: &'static [PublishedEvent]) -> Declared {
    Declared {
        name,
        version,
        events,
    }
}

/// The file names of a snapshot, per service directory.
const PUBLIC: &str = "openapi.json";
const INTERNAL: &str = "openapi.internal.json";
const MANIFEST: &str = "contract.json";

/// `flotilla contracts`'s arguments.
#[derive(Debug, Args)]
pub struct ContractsArgs {
    /// What to do.
    #[command(subcommand)]
    pub action: ContractsAction,
}

/// `check` or `snapshot`.
#[derive(Debug, Subcommand)]
pub enum ContractsAction {
    /// Diff every service's current contract against the snapshots; exit 1 listing every
    /// breaking change of a service whose CONTRACT_VERSION was not raised.
    Check {
        /// The snapshots to compare with.
        #[arg(long, value_name = "DIR", default_value = "contracts")]
        snapshots: PathBuf,
    },
    /// Rewrite the snapshots from the code (refused, listing why, for a breaking change under
    /// an unchanged CONTRACT_VERSION).
    Snapshot {
        /// Where the snapshots live.
        #[arg(long, value_name = "DIR", default_value = "contracts")]
        snapshots: PathBuf,
    },
}

/// One service's contract: what is snapshotted and compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Contract {
    /// `CONTRACT_VERSION`.
    pub version: u32,
    /// The public OpenAPI document.
    pub public: Value,
    /// The internal OpenAPI document.
    pub internal: Value,
    /// Event type → `{"version": n, "schema": {…}}`.
    pub events: Map<String, Value>,
}

/// What [`check`] found for one service.
#[derive(Debug, Default, PartialEq)]
pub struct Verdict {
    /// Breaking changes under an unchanged version: these fail the check.
    pub refused: Vec<String>,
    /// Breaking changes a raised version allows (reported, not failed).
    pub allowed: Vec<String>,
}

/// Runs `flotilla contracts`; `Ok(false)` when the check failed.
pub async fn run(args: ContractsArgs) -> anyhow::Result<bool> {
    let current = generate().await?;
    match args.action {
        ContractsAction::Check { snapshots } => {
            let released = read(&snapshots)?;
            let verdicts = check(&released, &current);
            Ok(report(&verdicts, &snapshots))
        }
        ContractsAction::Snapshot { snapshots } => {
            let released = read(&snapshots)?;
            let verdicts = check(&released, &current);
            if !report(&verdicts, &snapshots) {
                eprintln!("snapshots left unchanged: raise the CONTRACT_VERSION first");
                return Ok(false);
            }
            write(&snapshots, &current)?;
            println!("snapshots written to {}", snapshots.display());
            Ok(true)
        }
    }
}

/// Prints the verdicts; true when nothing was refused.
fn report(verdicts: &BTreeMap<String, Verdict>, snapshots: &Path) -> bool {
    let mut passed = true;
    for (service, verdict) in verdicts {
        for line in &verdict.allowed {
            println!("{service}: allowed by the raised CONTRACT_VERSION: {line}");
        }
        if !verdict.refused.is_empty() {
            passed = false;
            eprintln!(
                "{service}: {} breaking change(s) against {} with CONTRACT_VERSION unchanged:",
                verdict.refused.len(),
                snapshots.join(service).display()
            );
            for line in &verdict.refused {
                eprintln!("  - {line}");
            }
        }
    }
    if passed {
        println!(
            "contracts: no breaking change against {}",
            snapshots.display()
        );
    }
    passed
}

/// Compares the released contracts with the current ones, per service.
pub fn check(
    released: &BTreeMap<String, Contract>,
    current: &BTreeMap<String, Contract>,
) -> BTreeMap<String, Verdict> {
    let mut verdicts = BTreeMap::new();
    for (service, old) in released {
        let mut verdict = Verdict::default();
        let Some(new) = current.get(service) else {
            verdict
                .refused
                .push("the service no longer publishes a contract".to_owned());
            verdicts.insert(service.clone(), verdict);
            continue;
        };
        let mut breaking = document_diff::documents("public", &old.public, &new.public);
        breaking.extend(document_diff::documents(
            "internal",
            &old.internal,
            &new.internal,
        ));
        let events = document_diff::events(&old.events, &new.events);
        breaking.extend(events.breaking);
        verdict.refused.extend(events.same_version);
        if new.version < old.version {
            verdict.refused.push(format!(
                "CONTRACT_VERSION went back from {} to {}",
                old.version, new.version
            ));
        }
        if new.version > old.version {
            verdict.allowed.extend(breaking);
        } else {
            verdict.refused.extend(breaking);
        }
        verdicts.insert(service.clone(), verdict);
    }
    verdicts
}

/// Every declared service's contract as the code publishes it now.
pub async fn generate() -> anyhow::Result<BTreeMap<String, Contract>> {
    let dir = std::env::temp_dir().join(format!(
        "flotilla-contracts-{}-{}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let documents = documents_in(&dir).await;
    // Best effort: the directory only held the throw-away databases.
    let _ = std::fs::remove_dir_all(&dir);
    let mut documents = documents?;
    let mut contracts = BTreeMap::new();
    for declared in DECLARED {
        let (public, internal) = documents
            .remove(declared.name)
            .with_context(|| format!("{} published no OpenAPI document", declared.name))?;
        let events = declared
            .events
            .iter()
            .map(|event| {
                (
                    event.event_type.to_owned(),
                    json!({ "version": event.version, "schema": (event.schema)() }),
                )
            })
            .collect();
        contracts.insert(
            declared.name.to_owned(),
            Contract {
                version: declared.version,
                public,
                internal,
                events,
            },
        );
    }
    Ok(contracts)
}

/// Starts every service against fresh SQLite files under `dir` (nothing listens) and collects
/// their documents: name → (public, internal).
async fn documents_in(dir: &Path) -> anyhow::Result<BTreeMap<String, (Value, Value)>> {
    // An empty configuration, not the caller's flotilla.toml or FLOTILLA_* variables: the
    // documents must not depend on where the command runs.
    let config = Figment::from(Serialized::defaults(json!({ "data_dir": dir })));
    let settings: HostSettings = config
        .extract()
        .context("the settings of the throw-away host")?;
    let host = Host::build(config, settings, Mode::Migrate(Vec::new())).await?;
    let documents = host
        .openapi
        .iter()
        .map(|(name, docs)| {
            (
                (*name).to_owned(),
                (docs.public.clone(), docs.internal.clone()),
            )
        })
        .collect();
    host.shutdown_token().cancel();
    host.run().await?;
    Ok(documents)
}

/// Reads the snapshots under `dir` (a missing directory is no snapshot at all).
pub fn read(dir: &Path) -> anyhow::Result<BTreeMap<String, Contract>> {
    let mut contracts = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(contracts),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if !path.join(MANIFEST).is_file() {
            continue;
        }
        let service = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let manifest = read_json(&path.join(MANIFEST))?;
        let version = manifest["contract_version"]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .with_context(|| format!("{}: no contract_version", path.join(MANIFEST).display()))?;
        contracts.insert(
            service,
            Contract {
                version,
                public: read_json(&path.join(PUBLIC))?,
                internal: read_json(&path.join(INTERNAL))?,
                events: manifest["events"].as_object().cloned().unwrap_or_default(),
            },
        );
    }
    Ok(contracts)
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The files of a service's snapshot: name → content, as [`write`] writes them.
pub fn files(contract: &Contract) -> anyhow::Result<Vec<(&'static str, String)>> {
    let manifest = json!({
        "contract_version": contract.version,
        "events": contract.events,
    });
    let pretty = |value: &Value| serde_json::to_string_pretty(value).map(|text| text + "\n");
    Ok(vec![
        (PUBLIC, pretty(&contract.public)?),
        (INTERNAL, pretty(&contract.internal)?),
        (MANIFEST, pretty(&manifest)?),
    ])
}

/// Writes every contract under `dir/<service>/`.
pub fn write(dir: &Path, contracts: &BTreeMap<String, Contract>) -> anyhow::Result<()> {
    for (service, contract) in contracts {
        let service_dir = dir.join(service);
        std::fs::create_dir_all(&service_dir)
            .with_context(|| format!("creating {}", service_dir.display()))?;
        for (name, text) in files(contract)? {
            let path = service_dir.join(name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
