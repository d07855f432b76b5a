//! The deployment files cannot drift from the code (issue 16 item 4).
//!
//! Every service the code knows (`flotilla::host::SERVICES` and the gateway) must have, in the
//! Kubernetes base (`deploy/k8s/base`), a Deployment that serves it with the probes, the
//! shutdown timing and the security context the README promises, a headless Service, an HPA (or
//! a reason in [`NO_HPA`]), a PodDisruptionBudget, and a NetworkPolicy that lets in exactly its
//! callers and lets it call exactly its callees as `flotilla::topology` declares them (the
//! system test `topology` holds that table to the clients the services really build). The
//! compose file must run every service too. The same check runs on each rendered overlay when
//! `kubectl` is installed (scripts/deploy-check.sh installs it in CI).
//!
//! `planted_violations_fail_the_check` proves the check fails: it runs it on mutated copies.

use flotilla::host::{GATEWAY, SERVICES};
use flotilla::settings::{EtcdSettings, HostSettings};
use flotilla::topology;
use serde_norway::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Services that have no HorizontalPodAutoscaler, each with the reason. Every process is
/// stateless (state lives in PostgreSQL and NATS), so none is listed today.
const NO_HPA: &[(&str, &str)] = &[];

/// The whole shop at one replica each must fit in this much requested CPU and memory.
const MAX_CPU_MILLIS: u64 = 1000;
const MAX_MEMORY_BYTES: u64 = 1 << 30;

/// The port every Flotilla container listens on.
const PORT: u64 = 8080;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Kubernetes objects and the configuration their pods read.
struct Manifests {
    objects: Vec<Value>,
    /// `flotilla-config`'s data: FLOTILLA_* variables.
    config: BTreeMap<String, String>,
}

impl Manifests {
    /// The kustomize base as written: every `*.yaml` in `dir` but `kustomization.yaml`, and the
    /// ConfigMap's `flotilla.env`.
    fn base(dir: &Path) -> Manifests {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("base dir")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| {
                path.extension().is_some_and(|ext| ext == "yaml")
                    && path.file_name().is_some_and(|n| n != "kustomization.yaml")
            })
            .collect();
        files.sort();
        let mut objects = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).expect("manifest");
            objects.extend(documents(&text));
        }
        let env = std::fs::read_to_string(dir.join("flotilla.env")).expect("flotilla.env");
        let config = env
            .lines()
            .filter(|line| !line.trim_start().starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Manifests { objects, config }
    }

    /// A rendered overlay (`kubectl kustomize` output).
    fn rendered(text: &str) -> Manifests {
        let objects = documents(text);
        let config = objects
            .iter()
            .find(|o| {
                o["kind"] == "ConfigMap"
                    && name_of(o).starts_with("flotilla-config")
                    && o["data"].is_mapping()
            })
            .and_then(|o| o["data"].as_mapping())
            .map(|data| {
                data.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Manifests { objects, config }
    }

    fn find(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && name_of(o) == name)
    }

    fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn config_number(&self, key: &str) -> Option<u64> {
        self.config.get(key).and_then(|v| v.parse().ok())
    }
}

/// Every document of a multi-document YAML text, merge keys (`<<`) applied. One pass merges
/// one level: a mapping merged in that itself merges another (compose's `x-stateful`, which
/// merges `x-service`) needs a second.
fn documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|document| {
            let mut value = Value::deserialize(document).expect("valid YAML");
            for _ in 0..8 {
                let before = value.clone();
                value.apply_merge().expect("merge keys");
                if value == before {
                    break;
                }
            }
            value
        })
        .filter(|value| !value.is_null())
        .collect()
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// `app.kubernetes.io/name` of a pod selector.
fn selected(selector: &Value) -> Option<&str> {
    selector["matchLabels"]["app.kubernetes.io/name"].as_str()
}

/// The pods named in a NetworkPolicy rule's `from` or `to`; `None` for "from anywhere" (no
/// peers at all).
fn peers(rule: &Value, key: &str) -> Option<Vec<String>> {
    let list = rule[key].as_sequence()?;
    Some(
        list.iter()
            .map(|peer| {
                if peer["namespaceSelector"].is_mapping() || peer["ipBlock"].is_mapping() {
                    "<outside the namespace>".to_owned()
                } else {
                    selected(&peer["podSelector"])
                        .unwrap_or("<every pod>")
                        .to_owned()
                }
            })
            .collect(),
    )
}

fn port_is_http(rule: &Value) -> bool {
    port_is(rule, "http", PORT)
}

/// True when every port the rule opens is the container port `name` (by name or `number`).
fn port_is(rule: &Value, name: &str, number: u64) -> bool {
    rule["ports"].as_sequence().is_some_and(|ports| {
        !ports.is_empty()
            && ports
                .iter()
                .all(|p| p["port"] == name || p["port"].as_u64() == Some(number))
    })
}

/// The gateway's OTLP receiver's own port (`gateway.otlp_port`), the one port every Flotilla
/// pod may reach on the gateway.
const OTLP_PORT: u64 = 4318;

/// CPU in millicores: `50m`, `0.5`, `1`.
fn cpu_millis(quantity: &Value) -> Option<u64> {
    let text = match quantity {
        Value::Number(n) => return n.as_f64().map(|cores| (cores * 1000.0).round() as u64),
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    match text.strip_suffix('m') {
        Some(millis) => millis.parse().ok(),
        None => text
            .parse::<f64>()
            .ok()
            .map(|cores| (cores * 1000.0).round() as u64),
    }
}

/// Memory in bytes: `64Mi`, `1Gi`, `500M`, `1048576`.
fn memory_bytes(quantity: &Value) -> Option<u64> {
    let text = match quantity {
        Value::Number(n) => return n.as_u64(),
        Value::String(s) => s.as_str(),
        _ => return None,
    };
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, factor) in units {
        if let Some(number) = text.strip_suffix(suffix) {
            return number.parse::<u64>().ok().map(|n| n * factor);
        }
    }
    text.parse().ok()
}

/// Everything wrong with `m` for the services the code knows, one line each; empty when the
/// manifests match the code.
fn check(m: &Manifests) -> Vec<String> {
    let mut problems = Vec::new();
    let names = topology::deployables();
    let mut cpu = 0;
    let mut memory = 0;
    for name in &names {
        let name = *name;
        match m.find("Deployment", name) {
            None => problems.push(format!("{name}: no Deployment")),
            Some(deployment) => {
                let (c, mem) = check_deployment(m, name, deployment, &mut problems);
                cpu += c;
                memory += mem;
            }
        }
        check_service(m, name, &mut problems);
        check_hpa(m, name, &mut problems);
        if !m
            .of_kind("PodDisruptionBudget")
            .any(|pdb| selected(&pdb["spec"]["selector"]) == Some(name))
        {
            problems.push(format!("{name}: no PodDisruptionBudget"));
        }
        check_network_policy(m, name, &mut problems);
    }
    for deployment in m.of_kind("Deployment") {
        if !names.contains(&name_of(deployment)) {
            problems.push(format!(
                "Deployment {}: no such service in the code",
                name_of(deployment)
            ));
        }
    }
    if cpu > MAX_CPU_MILLIS || memory > MAX_MEMORY_BYTES {
        problems.push(format!(
            "requests of one replica each: {cpu}m CPU and {} MiB, more than {MAX_CPU_MILLIS}m and {} MiB",
            memory >> 20,
            MAX_MEMORY_BYTES >> 20
        ));
    }
    let default_deny = m.of_kind("NetworkPolicy").any(|policy| {
        let spec = &policy["spec"];
        spec["podSelector"]
            .as_mapping()
            .is_some_and(|selector| selector.is_empty())
            && strings(&spec["policyTypes"]) == ["Ingress", "Egress"]
            && spec["ingress"].is_null()
            && spec["egress"].is_null()
    });
    if !default_deny {
        problems.push("no default-deny NetworkPolicy (every pod, Ingress and Egress)".to_owned());
    }
    problems
}

/// Checks one Deployment; returns its container's CPU (millicores) and memory requests.
fn check_deployment(
    m: &Manifests,
    name: &str,
    deployment: &Value,
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let mut problem = |what: String| problems.push(format!("{name}: Deployment {what}"));
    let pod = &deployment["spec"]["template"]["spec"];
    if selected(&deployment["spec"]["selector"]) != Some(name) {
        problem("does not select its pods by app.kubernetes.io/name".to_owned());
    }
    let Some([container]) = pod["containers"].as_sequence().map(Vec::as_slice) else {
        problem("must have exactly one container".to_owned());
        return (0, 0);
    };
    let args = strings(&container["args"]);
    if args != ["serve", name] {
        problem(format!("runs {args:?}, not [\"serve\", \"{name}\"]"));
    }
    let has_port = container["ports"].as_sequence().is_some_and(|ports| {
        ports
            .iter()
            .any(|p| p["name"] == "http" && p["containerPort"].as_u64() == Some(PORT))
    });
    if !has_port {
        problem(format!("has no port named http on {PORT}"));
    }
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &container[probe]["httpGet"];
        if get["path"] != path || get["port"] != "http" {
            problem(format!("{probe} is not GET {path} on the http port"));
        }
    }
    // Security context: the pod's or the container's.
    let security = |key: &str| {
        let own = &container["securityContext"][key];
        if own.is_null() {
            pod["securityContext"][key].clone()
        } else {
            own.clone()
        }
    };
    if security("runAsNonRoot") != Value::Bool(true) {
        problem("may run as root (runAsNonRoot)".to_owned());
    }
    let context = &container["securityContext"];
    if context["allowPrivilegeEscalation"] != Value::Bool(false) {
        problem("allows privilege escalation".to_owned());
    }
    if context["readOnlyRootFilesystem"] != Value::Bool(true) {
        problem("has a writable root filesystem".to_owned());
    }
    if !strings(&context["capabilities"]["drop"]).contains(&"ALL") {
        problem("keeps Linux capabilities (drop ALL)".to_owned());
    }
    if security("seccompProfile")["type"] != "RuntimeDefault" {
        problem("has no RuntimeDefault seccomp profile".to_owned());
    }
    // The data dir must be writable with a read-only root: on a volume, or below one.
    let data_dir = m
        .config
        .get("FLOTILLA_DATA_DIR")
        .map_or("./data", String::as_str);
    let mounted = container["volumeMounts"]
        .as_sequence()
        .is_some_and(|mounts| {
            mounts
                .iter()
                .filter_map(|v| v["mountPath"].as_str())
                .any(|mount| Path::new(data_dir).starts_with(mount))
        });
    if !mounted {
        problem(format!("mounts no volume at the data dir {data_dir}"));
    }
    // Shutdown: the preStop pause, then the binary's own grace and drain (requests, background
    // tasks, the event consumer: up to the drain time each) must fit the termination grace.
    let pause = strings(&container["lifecycle"]["preStop"]["exec"]["command"])
        .last()
        .and_then(|s| s.parse::<u64>().ok());
    let grace_ms = m.config_number("FLOTILLA_DEREGISTER_GRACE_MS");
    let drain = m.config_number("FLOTILLA_DRAIN_SECS");
    let termination = pod["terminationGracePeriodSeconds"].as_u64();
    match (pause, grace_ms, drain, termination) {
        (Some(pause), Some(grace_ms), Some(drain), Some(termination)) => {
            let needed = pause + grace_ms.div_ceil(1000) + 3 * drain;
            if termination < needed {
                problem(format!(
                    "terminationGracePeriodSeconds {termination} < preStop {pause} s + grace {grace_ms} ms + 3 × drain {drain} s"
                ));
            }
        }
        _ => problem(
            "needs a preStop sleep, terminationGracePeriodSeconds, and FLOTILLA_DEREGISTER_GRACE_MS and FLOTILLA_DRAIN_SECS in flotilla-config".to_owned(),
        ),
    }
    let env_names: Vec<&str> = container["env"]
        .as_sequence()
        .map(|env| env.iter().filter_map(|e| e["name"].as_str()).collect())
        .unwrap_or_default();
    if !env_names.contains(&"FLOTILLA_SERVICE_SECRET") {
        problem("has no FLOTILLA_SERVICE_SECRET".to_owned());
    }
    // Its own NATS and etcd users, the passwords from its own Secret (flotilla-<service>),
    // which holds nothing of another service's.
    let own_secret = format!("flotilla-{name}");
    for (system, key) in [("NATS", "nats-password"), ("ETCD", "etcd-password")] {
        let var = |suffix: &str| {
            container["env"].as_sequence().and_then(|env| {
                env.iter()
                    .find(|e| e["name"] == format!("FLOTILLA_{system}__{suffix}").as_str())
            })
        };
        if var("USER").map(|e| &e["value"]) != Some(&Value::from(name)) {
            problem(format!(
                "does not log in to {system} as its own user {name}"
            ));
        }
        let reference = var("PASSWORD").map(|e| &e["valueFrom"]["secretKeyRef"]);
        if reference.is_none_or(|r| !name_of_secret(r, &own_secret, key)) {
            problem(format!(
                "does not take its {system} password from Secret {own_secret} key {key}"
            ));
        }
    }
    // An optional Secret key may be absent (prod creates no etcd-password, its discovery being
    // DNS): the pod must start without it, by the binary's own rule for the etcd login.
    let etcd_var = |suffix: &str| {
        container["env"].as_sequence().and_then(|env| {
            env.iter()
                .find(|e| e["name"] == format!("FLOTILLA_ETCD__{suffix}").as_str())
        })
    };
    let password = etcd_var("PASSWORD");
    let optional =
        password.is_some_and(|e| e["valueFrom"]["secretKeyRef"]["optional"] == Value::Bool(true));
    let settings = HostSettings {
        discovery: m
            .config
            .get("FLOTILLA_DISCOVERY")
            .cloned()
            .unwrap_or_else(|| "static".to_owned()),
        etcd: EtcdSettings {
            user: etcd_var("USER").and_then(|e| e["value"].as_str().map(str::to_owned)),
            password: (password.is_some() && !optional).then(|| "from its Secret".to_owned()),
        },
        ..HostSettings::default()
    };
    if let Err(err) = settings.etcd_login() {
        problem(format!(
            "does not start without its optional etcd-password: {err}"
        ));
    }
    let needs_database = SERVICES
        .iter()
        .any(|spec| spec.name == name && spec.needs_database);
    if needs_database != env_names.contains(&"FLOTILLA_DATABASE_URL") {
        problem(format!(
            "FLOTILLA_DATABASE_URL {} but the service {} a database",
            if needs_database { "missing" } else { "set" },
            if needs_database { "needs" } else { "has no" }
        ));
    }
    let requests = &container["resources"]["requests"];
    match (
        cpu_millis(&requests["cpu"]),
        memory_bytes(&requests["memory"]),
    ) {
        (Some(cpu), Some(memory)) => (cpu, memory),
        _ => {
            problem("requests no CPU and memory".to_owned());
            (0, 0)
        }
    }
}

/// True when the secretKeyRef `reference` names Secret `secret` (kustomize may suffix a hash)
/// and key `key`.
fn name_of_secret(reference: &Value, secret: &str, key: &str) -> bool {
    reference["name"]
        .as_str()
        .is_some_and(|n| n == secret || n.starts_with(&format!("{secret}-")))
        && reference["key"] == key
}

fn check_service(m: &Manifests, name: &str, problems: &mut Vec<String>) {
    let Some(service) = m.find("Service", name) else {
        problems.push(format!("{name}: no Service"));
        return;
    };
    let spec = &service["spec"];
    if spec["clusterIP"] != "None" {
        problems.push(format!(
            "{name}: Service is not headless (DNS discovery needs one address per pod)"
        ));
    }
    if spec["selector"]["app.kubernetes.io/name"] != name {
        problems.push(format!("{name}: Service does not select its pods"));
    }
    let port = spec["ports"]
        .as_sequence()
        .is_some_and(|ports| ports.iter().any(|p| p["port"].as_u64() == Some(PORT)));
    if !port {
        problems.push(format!(
            "{name}: Service has no port {PORT} (the discovery template's)"
        ));
    }
}

fn check_hpa(m: &Manifests, name: &str, problems: &mut Vec<String>) {
    let hpa = m
        .of_kind("HorizontalPodAutoscaler")
        .find(|hpa| hpa["spec"]["scaleTargetRef"]["name"] == name);
    let exempt = NO_HPA.iter().any(|(service, _)| *service == name);
    match (hpa, exempt) {
        (None, false) => problems.push(format!(
            "{name}: no HorizontalPodAutoscaler (add one, or a reason to NO_HPA)"
        )),
        (Some(_), true) => problems.push(format!("{name}: has an HPA but is listed in NO_HPA")),
        (Some(hpa), false) if hpa["spec"]["scaleTargetRef"]["kind"] != "Deployment" => {
            problems.push(format!("{name}: HPA does not scale its Deployment"))
        }
        _ => {}
    }
}

/// The policy that selects `name`'s pods must let in exactly its callers on the http port
/// (anyone, for the gateway) and let it reach exactly its callees.
fn check_network_policy(m: &Manifests, name: &str, problems: &mut Vec<String>) {
    let policies: Vec<&Value> = m
        .of_kind("NetworkPolicy")
        .filter(|p| selected(&p["spec"]["podSelector"]) == Some(name))
        .collect();
    if policies.is_empty() {
        problems.push(format!("{name}: no NetworkPolicy selects its pods"));
        return;
    }
    let mut from: Vec<String> = Vec::new();
    let mut to: Vec<String> = Vec::new();
    for policy in &policies {
        for rule in policy["spec"]["ingress"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            // The gateway lets every Flotilla pod in to its OTLP port, and to nothing else: its
            // public port would let them call any service's public routes through it.
            let from_every_pod =
                peers(rule, "from").is_some_and(|list| list.iter().any(|p| p == "<every pod>"));
            if name == GATEWAY && from_every_pod {
                if !port_is(rule, "otlp", OTLP_PORT) {
                    problems.push(format!(
                        "{name}: every Flotilla pod is let in to another port than otlp"
                    ));
                }
            } else if !port_is_http(rule) {
                problems.push(format!(
                    "{name}: an ingress rule opens another port than http"
                ));
            }
            match peers(rule, "from") {
                Some(list) => from.extend(list),
                None => from.push("<anywhere>".to_owned()),
            }
        }
        for rule in policy["spec"]["egress"].as_sequence().into_iter().flatten() {
            if !port_is_http(rule) {
                problems.push(format!(
                    "{name}: an egress rule to services opens another port than http"
                ));
            }
            match peers(rule, "to") {
                Some(list) => to.extend(list),
                None => to.push("<anywhere>".to_owned()),
            }
        }
    }
    from.sort();
    from.dedup();
    to.sort();
    to.dedup();
    let callers: Vec<String> = if name == GATEWAY {
        // The Ingress controller: from anywhere (base, dev), or from its namespace only (prod,
        // a peer outside this namespace); and every Flotilla pod of the namespace, whose spans
        // the gateway's OTLP receiver takes (on its own port).
        let controller = if from.iter().any(|f| f == "<outside the namespace>") {
            "<outside the namespace>"
        } else {
            "<anywhere>"
        };
        let mut expected = vec![controller.to_owned(), "<every pod>".to_owned()];
        expected.sort();
        expected
    } else {
        topology::callers(name)
            .into_iter()
            .map(str::to_owned)
            .collect()
    };
    if from != callers {
        problems.push(format!(
            "{name}: NetworkPolicy lets in {from:?}, but its callers are {callers:?}"
        ));
    }
    let callees: Vec<String> = topology::calls(name)
        .into_iter()
        .map(str::to_owned)
        .collect();
    if to != callees {
        problems.push(format!(
            "{name}: NetworkPolicy lets it call {to:?}, but it calls {callees:?}"
        ));
    }
}

/// The compose file runs every service from the image, on PostgreSQL when it has a database,
/// and publishes only the gateway.
fn check_compose(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let compose = documents(text).into_iter().next().unwrap_or(Value::Null);
    let services = &compose["services"];
    for name in topology::deployables() {
        let service = &services[name];
        if service.is_null() {
            problems.push(format!("compose: no service {name}"));
            continue;
        }
        if strings(&service["command"]) != ["serve", name] {
            problems.push(format!("compose: {name} does not run `serve {name}`"));
        }
        if service["healthcheck"]["test"].is_null() {
            problems.push(format!("compose: {name} has no health check"));
        }
        let needs_database = SERVICES
            .iter()
            .any(|spec| spec.name == name && spec.needs_database);
        let has_database = !service["environment"]["FLOTILLA_DATABASE_URL"].is_null();
        if needs_database != has_database {
            problems.push(format!(
                "compose: {name} {} FLOTILLA_DATABASE_URL",
                if needs_database {
                    "lacks"
                } else {
                    "should not set"
                }
            ));
        }
        if service["environment"]["FLOTILLA_NATS__USER"].as_str() != Some(name)
            || service["environment"]["FLOTILLA_NATS__PASSWORD"].is_null()
        {
            problems.push(format!(
                "compose: {name} does not log in to NATS as its own user"
            ));
        }
        let published = !service["ports"].is_null();
        if published != (name == GATEWAY) {
            problems.push(format!(
                "compose: {name} {} a port",
                if published {
                    "publishes"
                } else {
                    "does not publish"
                }
            ));
        }
    }
    problems
}

/// The NATS users (deploy/k8s/dev-deps/nats.conf, used by compose and the dev cluster): one
/// per deployable, which may publish on its own event subjects and no other service's.
fn check_nats_users(conf: &str) -> Vec<String> {
    let mut problems = Vec::new();
    // Each user's block runs from `user: NAME` to the next user (the format is ours: flat).
    let blocks: Vec<(&str, &str)> = conf
        .split("user: ")
        .skip(1)
        .filter_map(|block| {
            let (name, rest) = block.split_once('\n')?;
            Some((name.trim(), rest))
        })
        .collect();
    for name in topology::deployables() {
        let Some((_, block)) = blocks.iter().find(|(user, _)| *user == name) else {
            problems.push(format!("nats.conf: no user {name}"));
            continue;
        };
        if !block.contains(&format!("$NATS_PASSWORD_{}", name.to_uppercase())) {
            problems.push(format!(
                "nats.conf: {name}'s password is not $NATS_PASSWORD_{}",
                name.to_uppercase()
            ));
        }
        // The services with data of their own publish events; the storefront and the gateway
        // publish none.
        let publishes_events = SERVICES
            .iter()
            .any(|spec| spec.name == name && spec.needs_database);
        let own = format!("\"flotilla.{name}.>\"");
        if publishes_events != block.contains(&own) {
            problems.push(format!(
                "nats.conf: {name} {} publish on {own}",
                if publishes_events {
                    "may not"
                } else {
                    "should not"
                }
            ));
        }
        for line in block.lines().map(str::trim) {
            if line.starts_with("\"flotilla.") && line != own {
                problems.push(format!("nats.conf: {name} may publish on {line}"));
            }
            if line.contains("\">\"")
                || line.contains("\"$JS.API.>\"")
                || line.contains("STREAM.DELETE")
            {
                problems.push(format!("nats.conf: {name} may publish on {line}"));
            }
        }
    }
    if conf.contains("no_auth_user") {
        problems.push("nats.conf: no_auth_user lets anonymous connections in".to_owned());
    }
    problems
}

#[test]
fn the_nats_users_publish_only_their_own_events() {
    let conf =
        std::fs::read_to_string(deploy_dir().join("k8s/dev-deps/nats.conf")).expect("nats.conf");
    let problems = check_nats_users(&conf);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Planted: cart may publish orders' events; orders loses its user.
    let forged = conf.replacen(
        "\"flotilla.cart.>\"",
        "\"flotilla.cart.>\"\n            \"flotilla.orders.>\"",
        1,
    );
    assert!(
        check_nats_users(&forged)
            .contains(&"nats.conf: cart may publish on \"flotilla.orders.>\"".to_owned()),
        "{:?}",
        check_nats_users(&forged)
    );
    let no_orders = conf.replace("user: orders\n", "user: orderz\n");
    assert!(check_nats_users(&no_orders).contains(&"nats.conf: no user orders".to_owned()));
}

#[test]
fn the_kubernetes_base_matches_the_code() {
    let problems = check(&Manifests::base(&deploy_dir().join("k8s/base")));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_compose_file_matches_the_code() {
    let text = std::fs::read_to_string(deploy_dir().join("compose.yaml")).expect("compose.yaml");
    let problems = check_compose(&text);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The overlays as `kubectl kustomize` renders them: what a cluster would be given.
#[test]
fn the_rendered_overlays_match_the_code() {
    for overlay in ["dev", "prod"] {
        let dir = deploy_dir().join("k8s/overlays").join(overlay);
        let output = match std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&dir)
            .output()
        {
            Ok(output) => output,
            Err(error) => {
                // scripts/deploy-check.sh installs kubectl and renders them in CI.
                eprintln!("skipped: kubectl is not installed ({error})");
                return;
            }
        };
        assert!(
            output.status.success(),
            "kubectl kustomize {overlay}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let rendered = Manifests::rendered(&String::from_utf8_lossy(&output.stdout));
        let problems = check(&rendered);
        assert!(problems.is_empty(), "{overlay}:\n{}", problems.join("\n"));
    }
}

/// The check is worth something only if it fails: each planted violation, on a mutated copy
/// of the real manifests, must be reported.
#[test]
fn planted_violations_fail_the_check() {
    let base_dir = deploy_dir().join("k8s/base");
    let real = Manifests::base(&base_dir);
    assert!(check(&real).is_empty(), "the real base must pass first");

    // A copy on disk with payments let into the catalog: an extra caller.
    let copy = tempfile::tempdir().expect("tempdir");
    for entry in std::fs::read_dir(&base_dir).expect("base dir") {
        let path = entry.expect("entry").path();
        let mut text = std::fs::read_to_string(&path).expect("file");
        if path.file_name().is_some_and(|n| n == "catalog.yaml") {
            let rule = "    - from:\n";
            assert!(text.contains(rule), "catalog.yaml has an ingress rule");
            text = text.replacen(
                rule,
                "    - from:\n        - podSelector:\n            matchLabels:\n              app.kubernetes.io/name: payments\n",
                1,
            );
        }
        std::fs::write(copy.path().join(path.file_name().expect("name")), text).expect("write");
    }
    let problems = check(&Manifests::base(copy.path()));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("catalog: NetworkPolicy lets in") && p.contains("payments")),
        "an extra caller of catalog must be reported: {problems:?}"
    );

    // Mutations in memory, each with the report it must produce.
    type Mutation = fn(&mut Manifests);
    let mutations: &[(&str, Mutation, &str)] = &[
        (
            "orders' HPA removed",
            |m| {
                m.objects
                    .retain(|o| !(o["kind"] == "HorizontalPodAutoscaler" && name_of(o) == "orders"))
            },
            "orders: no HorizontalPodAutoscaler",
        ),
        (
            "storefront's Deployment removed",
            |m| {
                m.objects
                    .retain(|o| !(o["kind"] == "Deployment" && name_of(o) == "storefront"))
            },
            "storefront: no Deployment",
        ),
        (
            "cart's readiness probe on /healthz",
            |m| {
                mutate(m, "Deployment", "cart", |d| {
                    d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] =
                        Value::from("/healthz");
                })
            },
            "cart: Deployment readinessProbe is not GET /readyz",
        ),
        (
            "orders no longer let into payments",
            |m| {
                mutate(m, "NetworkPolicy", "payments", |p| {
                    p["spec"]["ingress"][0]["from"]
                        .as_sequence_mut()
                        .expect("from")
                        .retain(|peer| selected(&peer["podSelector"]) != Some("orders"));
                })
            },
            "payments: NetworkPolicy lets in [\"gateway\"], but its callers are [\"gateway\", \"orders\"]",
        ),
        (
            "the drain outgrows the termination grace",
            |m| {
                m.config
                    .insert("FLOTILLA_DRAIN_SECS".to_owned(), "30".to_owned());
            },
            "identity: Deployment terminationGracePeriodSeconds",
        ),
        (
            "a writable root filesystem",
            |m| {
                mutate(m, "Deployment", "gateway", |d| {
                    d["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] =
                        Value::Bool(false);
                })
            },
            "gateway: Deployment has a writable root filesystem",
        ),
        (
            "a Deployment for a service the code does not have",
            |m| {
                let mut extra = m.find("Deployment", "shipping").expect("shipping").clone();
                extra["metadata"]["name"] = Value::from("billing");
                m.objects.push(extra);
            },
            "Deployment billing: no such service in the code",
        ),
        (
            "orders logs in to NATS as cart",
            |m| {
                mutate(m, "Deployment", "orders", |d| {
                    let env = d["spec"]["template"]["spec"]["containers"][0]["env"]
                        .as_sequence_mut()
                        .expect("env");
                    for var in env.iter_mut() {
                        if var["name"] == "FLOTILLA_NATS__USER" {
                            var["value"] = Value::from("cart");
                        }
                    }
                })
            },
            "orders: Deployment does not log in to NATS as its own user orders",
        ),
        (
            "etcd discovery while the etcd password's Secret key is optional",
            |m| {
                m.config.insert(
                    "FLOTILLA_DISCOVERY".to_owned(),
                    "etcd://etcd.flotilla-deps.svc.cluster.local:2379".to_owned(),
                );
            },
            "identity: Deployment does not start without its optional etcd-password",
        ),
        (
            "the default deny removed",
            |m| {
                m.objects
                    .retain(|o| !(o["kind"] == "NetworkPolicy" && name_of(o) == "default-deny"))
            },
            "no default-deny NetworkPolicy",
        ),
    ];
    for (what, mutation, expected) in mutations {
        let mut mutated = Manifests {
            objects: real.objects.clone(),
            config: real.config.clone(),
        };
        mutation(&mut mutated);
        let problems = check(&mutated);
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "{what}: expected a problem starting with {expected:?}, got {problems:?}"
        );
    }

    // The compose file without the notifications service.
    let compose = std::fs::read_to_string(deploy_dir().join("compose.yaml")).expect("compose");
    let without = compose.replace("  notifications:\n", "  notifications-renamed:\n");
    assert_ne!(compose, without, "compose.yaml has a notifications service");
    assert!(
        check_compose(&without).contains(&"compose: no service notifications".to_owned()),
        "a missing compose service must be reported"
    );
}

/// Applies `change` to the object of `kind` named `name`.
fn mutate(m: &mut Manifests, kind: &str, name: &str, change: impl FnOnce(&mut Value)) {
    let object = m
        .objects
        .iter_mut()
        .find(|o| o["kind"] == kind && name_of(o) == name)
        .expect("object to mutate");
    change(object);
}
