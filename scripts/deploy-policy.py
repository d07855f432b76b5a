#!/usr/bin/env python3
"""Security and operations properties of the deployment files that a schema cannot see.

scripts/deploy-check.sh runs it (the `policy` check) on the rendered overlays (`kubectl
kustomize`), the compose files, nats.conf and the CI workflow under ROOT:

    python3 scripts/deploy-policy.py ROOT

Each property below is one of the deploy review's findings; the self-test of deploy-check.sh
plants each old mistake back and expects this script to refuse it. NetworkPolicies are
evaluated, not pattern-matched: a small evaluator decides whether a pod may open a connection
to another pod (or an address outside the cluster) on a port, by the Kubernetes semantics
(a pod selected by a policy of a type is isolated for it; then some rule must allow the
peer and the port). What it cannot tell is whether the cluster's network plugin enforces
policies at all: that only a real cluster shows.
"""

import math
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
K8S = ROOT / "deploy" / "k8s"
PROBLEMS = []

# The fleet (crates/flotilla/src/host.rs SERVICES, the gateway); tests/manifests.rs holds the
# manifests to the code, this script to the properties below.
WITH_DATABASE = ["identity", "catalog", "cart", "inventory", "payments", "shipping", "orders",
                 "notifications"]
FLEET = WITH_DATABASE + ["storefront", "gateway"]
SHELLS = {"sh", "bash", "ash", "dash"}
# Images without /bin/sh (distroless): a shell command there never runs.
NO_SHELL = [r"^gcr\.io/etcd-development/etcd:", r"^quay\.io/coreos/etcd:", r"^gcr\.io/distroless/",
            r"^registry\.k8s\.io/etcd:"]
# Images known to have /bin/sh, for the shell an init container may copy into a volume.
WITH_SHELL = [r"^busybox:", r"^debian:", r"^alpine:", r"^postgres:", r"^nats:[^:]*-alpine$"]
# How long a terminating pod may still be chosen by callers after its endpoint goes: the
# EndpointSlice update reaching CoreDNS (1 s), CoreDNS's cached answer (its TTL, 5 s), the
# callers' re-resolution interval (5 s).
STALE_ENDPOINT_SECS = 1 + 5 + 5
# Margin of terminationGracePeriodSeconds over the worst shutdown.
GRACE_MARGIN_SECS = 5
# The gateway's listeners: the public one (the Ingress controller's) and the OTLP receiver's
# (gateway.otlp_port), the only one the rest of the fleet may reach.
GATEWAY_PUBLIC_PORT = 8080
GATEWAY_OTLP_PORT = 4318


def problem(where, what):
    PROBLEMS.append(f"{where}: {what}")


def render(kustomization):
    out = subprocess.run(["kubectl", "kustomize", str(K8S / kustomization)], check=True,
                         capture_output=True, text=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


# --- pods and NetworkPolicies -----------------------------------------------------------------

class Pod:
    def __init__(self, name, namespace, labels, ports, spec=None, kind=None):
        self.name, self.namespace, self.labels = name, namespace, labels
        self.ports = ports  # name -> number
        self.spec, self.kind = spec, kind

    def __repr__(self):
        return f"{self.namespace}/{self.name}"


def pods_of(objects):
    pods = []
    for o in objects:
        if o["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        template = o["spec"]["template"]
        ports = {}
        for c in template["spec"]["containers"]:
            for p in c.get("ports", []):
                if "name" in p:
                    ports[p["name"]] = p["containerPort"]
        pods.append(Pod(o["metadata"]["name"], o["metadata"].get("namespace", "default"),
                        template["metadata"].get("labels", {}), ports, template["spec"],
                        o["kind"]))
    return pods


def selects(selector, labels):
    """A LabelSelector (matchLabels, matchExpressions) against labels; {} selects all."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        key, op, values = e["key"], e["operator"], e.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def namespace_labels(namespace):
    return {"kubernetes.io/metadata.name": namespace}


def peer_matches(peer, policy_ns, other):
    if "ipBlock" in peer:
        return other.namespace is None  # an address outside the cluster
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], namespace_labels(other.namespace)):
            return False
    elif other.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.labels)


def port_matches(rule, target, port):
    ports = rule.get("ports")
    if not ports:
        return True
    for p in ports:
        wanted = p.get("port")
        if wanted is None or wanted == port:
            return True
        if isinstance(wanted, str) and target.ports.get(wanted) == port:
            return True
    return False


def allowed(policies, pod, direction, other, port, target):
    """Whether `pod`'s policies let traffic to (Egress) or from (Ingress) `other` on `port`
    of `target` (the receiving pod)."""
    kind = "Egress" if direction == "egress" else "Ingress"
    mine = [p for p in policies
            if p["metadata"].get("namespace") == pod.namespace
            and kind in p["spec"].get("policyTypes", ["Ingress"])
            and selects(p["spec"]["podSelector"], pod.labels)]
    if not mine:
        return True  # not isolated
    key = "to" if direction == "egress" else "from"
    for policy in mine:
        for rule in policy["spec"].get(direction) or []:
            peers = rule.get(key)
            if peers and not any(peer_matches(peer, pod.namespace, other) for peer in peers):
                continue
            if port_matches(rule, target, port):
                return True
    return False


def can_connect(policies, src, dst, port):
    return (allowed(policies, src, "egress", dst, port, dst)
            and allowed(policies, dst, "ingress", src, port, dst))


def fleet_pods(pods):
    return {p.name: p for p in pods if p.labels.get("app.kubernetes.io/part-of") == "flotilla"}


# --- the checks -------------------------------------------------------------------------------

def check_network(overlay, objects, deps_objects):
    """M3, M7, L2 (and M4 from the shop's side) on one rendered overlay."""
    where = f"overlays/{overlay}"
    policies = [o for o in objects + deps_objects if o["kind"] == "NetworkPolicy"]
    fleet = fleet_pods(pods_of(objects))
    deps = {p.name: p for p in pods_of(deps_objects)}
    if sorted(fleet) != sorted(FLEET):
        problem(where, f"the fleet's Deployments are {sorted(fleet)}, expected {sorted(FLEET)}")
        return
    # Anything that is not what a service uses, in and outside the cluster.
    stranger = Pod("stranger", "elsewhere", {"app": "anything"}, {})
    outside = Pod("outside", None, {}, {})
    for name, pod in fleet.items():
        for port in (5432, 4222, 2379, 8222, 6379, 4317, 4318, 443, 8080):
            for other in (stranger, outside):
                if allowed(policies, pod, "egress", other, port, other):
                    problem(where, f"{name} may connect to {other.name} pods/addresses on port "
                                   f"{port} (an egress rule without a `to` it really uses)")
    if overlay == "dev":
        postgres, nats, etcd, redis = deps["postgres"], deps["nats"], deps["etcd"], deps["redis"]
        for name, pod in fleet.items():
            if can_connect(policies, pod, redis, 6379) != (name == "gateway"):
                problem(where, f"{name} {'cannot' if name == 'gateway' else 'can'} reach Redis "
                               "(the gateway's rate limits, the gateway's alone)")
            if name in WITH_DATABASE and not can_connect(policies, pod, postgres, 5432):
                problem(where, f"{name} cannot reach PostgreSQL (it has a database)")
            if not can_connect(policies, pod, nats, 4222):
                problem(where, f"{name} cannot reach NATS on 4222")
            if can_connect(policies, pod, nats, 8222):
                problem(where, f"{name} can reach NATS' monitoring port 8222")
            if not can_connect(policies, pod, etcd, 2379):
                problem(where, f"{name} cannot reach etcd (etcd discovery)")
    # No way out to PostgreSQL's port for a process without a database, whatever the peer.
    for name in set(FLEET) - set(WITH_DATABASE):
        pod = fleet[name]
        for policy in policies:
            spec = policy["spec"]
            if policy["metadata"].get("namespace") != pod.namespace \
                    or "Egress" not in spec.get("policyTypes", []) \
                    or not selects(spec["podSelector"], pod.labels):
                continue
            for rule in spec.get("egress") or []:
                if not rule.get("ports") or any(p.get("port") in (5432, None)
                                                for p in rule["ports"]):
                    problem(where, f"{name} can reach PostgreSQL (it has no database): "
                                   f"NetworkPolicy {policy['metadata']['name']}")
    # L2: every process reaches the gateway's OTLP receiver, the gateway lets them in.
    # M-B: on its own port only: a pod that reached the public listener could call any
    # service's public routes through it, past that service's own NetworkPolicy.
    gateway = fleet["gateway"]
    for name, pod in fleet.items():
        if name == "gateway":
            continue
        if not can_connect(policies, pod, gateway, GATEWAY_OTLP_PORT):
            problem(where, f"{name} cannot reach the gateway's OTLP receiver "
                           f"({GATEWAY_OTLP_PORT})")
        if can_connect(policies, pod, gateway, GATEWAY_PUBLIC_PORT):
            problem(where, f"{name} can reach the gateway's public listener "
                           f"({GATEWAY_PUBLIC_PORT}), not only its OTLP receiver")
    config = next((o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"].startswith("flotilla-config")), {})
    endpoint = config.get("OTEL_EXPORTER_OTLP_ENDPOINT") or config.get(
        "FLOTILLA_TELEMETRY__OTLP_ENDPOINT", "")
    # (The path too: a process sends its credential to .../api/gateway/otlp/v1/traces only.)
    if endpoint != (f"http://gateway-otlp.flotilla.svc.cluster.local:{GATEWAY_OTLP_PORT}"
                    "/api/gateway/otlp"):
        problem(where, f"the fleet does not export spans to the gateway's receiver "
                       f"(OTEL_EXPORTER_OTLP_ENDPOINT={endpoint!r})")
    gateway_env = container_env(gateway.spec)
    if gateway.ports.get("otlp") != GATEWAY_OTLP_PORT \
            or gateway_env.get("FLOTILLA_GATEWAY__OTLP_PORT") != str(GATEWAY_OTLP_PORT):
        problem(where, f"the gateway does not serve its OTLP receiver on port {GATEWAY_OTLP_PORT} "
                       "(container port `otlp`, FLOTILLA_GATEWAY__OTLP_PORT)")
    if gateway_env.get("FLOTILLA_GATEWAY__FLEET_PASSTHROUGH") != "false":
        problem(where, "the gateway passes fleet credentials straight through "
                       "(FLOTILLA_GATEWAY__FLEET_PASSTHROUGH is not false)")
    # M7: in prod nothing but the Ingress controller (and the fleet's spans) reaches the gateway.
    controller = Pod("controller", "ingress-nginx",
                     {"app.kubernetes.io/name": "ingress-nginx",
                      "app.kubernetes.io/component": "controller"}, {})
    if not allowed(policies, gateway, "ingress", controller, 8080, gateway):
        problem(where, "the Ingress controller cannot reach the gateway")
    if overlay == "prod":
        for other in (stranger, outside,
                      Pod("neighbour", "ingress-nginx", {"app": "not-the-controller"}, {})):
            if allowed(policies, gateway, "ingress", other, 8080, gateway):
                problem(where, f"the gateway takes traffic from {other.name} pods, not only the "
                               "Ingress controller's, while it trusts one X-Forwarded-For hop")


def check_deps_network(deps_objects, fleet_objects):
    """M4: flotilla-deps lets in the shop's pods on the ports they use, nothing else."""
    where = "dev-deps"
    policies = [o for o in deps_objects + fleet_objects if o["kind"] == "NetworkPolicy"]
    deps = {p.name: p for p in pods_of(deps_objects)}
    fleet = fleet_pods(pods_of(fleet_objects))
    stranger = Pod("stranger", "elsewhere", {"app.kubernetes.io/part-of": "flotilla"}, {})
    neighbour = Pod("neighbour", "flotilla-deps", {"app": "anything"}, {})
    deny = [p for p in policies if p["metadata"].get("namespace") == "flotilla-deps"
            and p["spec"]["podSelector"] == {}
            and sorted(p["spec"].get("policyTypes", [])) == ["Egress", "Ingress"]
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not deny:
        problem(where, "no default-deny NetworkPolicy in flotilla-deps")
    for name, pod in deps.items():
        for port in set(pod.ports.values()):
            for other in (stranger, neighbour):
                if allowed(policies, pod, "ingress", other, port, pod):
                    problem(where, f"{name} takes connections on {port} from {other.name} pods")
    # The receiving side on its own (the shop's egress is checked with the overlays).
    nats, postgres, redis = deps["nats"], deps["postgres"], deps["redis"]
    for name, fleet_pod in fleet.items():
        if allowed(policies, redis, "ingress", fleet_pod, 6379, redis) != (name == "gateway"):
            problem(where, f"Redis {'refuses' if name == 'gateway' else 'lets in'} {name}")
        if allowed(policies, nats, "ingress", fleet_pod, 8222, nats):
            problem(where, f"NATS' monitoring port 8222 takes connections from {name}")
        if allowed(policies, postgres, "ingress", fleet_pod, 5432, postgres) \
                != (name in WITH_DATABASE):
            problem(where, f"PostgreSQL {'lets in' if name not in WITH_DATABASE else 'refuses'} "
                           f"{name}")
        if not can_connect(policies, fleet_pod, deps["nats"], 4222):
            problem(where, f"NATS does not let {name} in")
    if not can_connect(policies, deps["etcd-auth"], deps["etcd"], 2379):
        problem(where, "the etcd-auth Job cannot reach etcd")


def check_shells(where, containers):
    """H1: a shell command runs only where there is a shell.

    containers: (name, image, command, mounts) with mounts {path: image of the init
    container that filled that volume, or None}."""
    for name, image, command, mounts in containers:
        if not command:
            continue
        program = command[0]
        if Path(program).name not in SHELLS:
            continue
        filler = next((img for path, img in mounts.items()
                       if img and program.startswith(path.rstrip("/") + "/")), None)
        if filler is not None:
            if not any(re.match(p, filler) for p in WITH_SHELL):
                problem(where, f"{name} runs {program}, copied from {filler}, not an image known "
                               "to have a shell")
        elif any(re.match(p, image) for p in NO_SHELL):
            problem(where, f"{name} runs {program} in {image}, which has no shell (distroless)")


def k8s_containers(objects):
    out = []
    for pod in pods_of(objects):
        spec = pod.spec
        # Volumes an init container writes: their content comes from its image.
        filled = {}
        for init in spec.get("initContainers", []):
            for m in init.get("volumeMounts", []):
                if not m.get("readOnly"):
                    filled[m["name"]] = init["image"]
        for c in spec["containers"] + spec.get("initContainers", []):
            mounts = {m["mountPath"]: filled.get(m["name"]) for m in c.get("volumeMounts", [])}
            out.append((f"{pod.name}/{c['name']}", c["image"], c.get("command"), mounts))
    return out


def compose_services():
    services = {}
    for name in ("compose.yaml", "compose.etcd.yaml"):
        doc = yaml.safe_load((ROOT / "deploy" / name).read_text())
        for service, spec in (doc.get("services") or {}).items():
            services.setdefault(service, {}).update({k: v for k, v in spec.items()})
            services[service].setdefault("_files", []).append(name)
    return services


def compose_containers(services):
    out = []
    for name, spec in services.items():
        command = spec.get("command")
        if isinstance(command, str):
            command = command.split()
        mounts = {}
        for volume in spec.get("volumes", []):
            source, _, rest = volume.partition(":")
            target = rest.split(":")[0]
            # A named volume filled by a one-shot service of the same compose project.
            for other, other_spec in services.items():
                if other != name and any(v.startswith(source + ":") for v in
                                         other_spec.get("volumes", [])) \
                        and other in (spec.get("depends_on") or {}):
                    mounts[target] = other_spec.get("image")
        out.append((f"compose {name}", spec.get("image", ""), command, mounts))
    return out


def check_shutdown(overlay, objects):
    """L1: callers stop choosing a pod before it stops serving; the kubelet waits the drain."""
    config = next((o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"].startswith("flotilla-config")), {})
    grace = math.ceil(int(config.get("FLOTILLA_DEREGISTER_GRACE_MS", "0")) / 1000)
    drain = int(config.get("FLOTILLA_DRAIN_SECS", "0"))
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        spec = o["spec"]["template"]["spec"]
        command = (spec["containers"][0].get("lifecycle", {}).get("preStop", {})
                   .get("exec", {}).get("command", []))
        pause = int(command[-1]) if command and command[-1].isdigit() else 0
        total = spec.get("terminationGracePeriodSeconds", 30)
        name = f"overlays/{overlay} {o['metadata']['name']}"
        if pause < STALE_ENDPOINT_SECS:
            problem(name, f"preStop pause {pause} s < the {STALE_ENDPOINT_SECS} s callers may "
                          "still choose a terminating pod")
        # Requests, then background tasks, then the event consumer: up to the drain each.
        needed = pause + grace + 3 * drain + GRACE_MARGIN_SECS
        if total < needed:
            problem(name, f"terminationGracePeriodSeconds {total} < preStop {pause} + grace "
                          f"{grace} + 3 × drain {drain} + margin {GRACE_MARGIN_SECS}")


def check_secrets(overlay, objects):
    """L6: each service names its own Secret and the shared service secret, nothing else."""
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        name = o["metadata"]["name"]
        spec = o["spec"]["template"]["spec"]
        allowed_secrets = {f"flotilla-{name}", "flotilla-service-secret", "flotilla-nats-ca"}
        used = []
        for c in spec["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    used.append((ref["name"], ref["key"]))
            for e in c.get("envFrom", []):
                if "secretRef" in e:
                    used.append((e["secretRef"]["name"], "*"))
        for v in spec.get("volumes", []):
            if "secret" in v:
                used.append((v["secret"]["secretName"], "*"))
        for secret, key in used:
            # Without, or with kustomize's hash suffix.
            base = secret if secret in allowed_secrets else re.sub(r"-[a-z0-9]{10}$", "", secret)
            if base not in allowed_secrets:
                problem(f"overlays/{overlay} {name}", f"reads Secret {secret} (key {key}): a "
                        f"service reads flotilla-service-secret and flotilla-{name} only")
            if base == "flotilla-service-secret" and key != "service-secret":
                problem(f"overlays/{overlay} {name}", f"reads {key} from the shared Secret")
    for o in objects:
        if o["kind"] != "Secret":
            continue
        secret = o["metadata"]["name"]
        if secret.removeprefix("flotilla-") not in FLEET + ["service-secret"]:
            secret = re.sub(r"-[a-z0-9]{10}$", "", secret)
        keys = set((o.get("data") or {}).keys()) | set((o.get("stringData") or {}).keys())
        if secret == "flotilla-service-secret":
            if keys != {"service-secret"}:
                problem(f"overlays/{overlay}", f"the shared Secret holds {sorted(keys)}")
        elif secret.removeprefix("flotilla-") in FLEET:
            own = {"database-url", "nats-password", "etcd-password"}
            if secret == "flotilla-identity":
                own |= {"admin-email", "admin-password"}
            if secret == "flotilla-gateway":
                own |= {"redis-url"}
            if not keys <= own:
                problem(f"overlays/{overlay}", f"Secret {secret} holds {sorted(keys - own)}")
        else:
            problem(f"overlays/{overlay}", f"Secret {secret} is not one service's own")


def container_env(spec):
    """The first container's env: name -> value, or `secret:NAME/KEY[?]` (`?`: optional),
    or `field:PATH`."""
    env = {}
    for e in spec["containers"][0].get("env", []):
        source = e.get("valueFrom", {})
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[e["name"]] = f"secret:{ref['name']}/{ref['key']}" + ("?" if ref.get("optional")
                                                                     else "")
        elif "fieldRef" in source:
            env[e["name"]] = f"field:{source['fieldRef']['fieldPath']}"
        else:
            env[e["name"]] = e.get("value", "")
    return env


def check_advertise(overlay, objects):
    """H-C: each pod registers in discovery under its own IP, not the 0.0.0.0 it binds."""
    for pod in fleet_pods(pods_of(objects)).values():
        advertised = container_env(pod.spec).get("FLOTILLA_ADVERTISE_HOST")
        if advertised != "field:status.podIP":
            problem(f"overlays/{overlay} {pod.name}", f"advertises {advertised!r} in discovery, "
                    "not its pod's IP (FLOTILLA_ADVERTISE_HOST from status.podIP)")


def check_shared_rate_limits(overlay, objects):
    """M-C: an autoscaled gateway counts its rate limits in Redis, shared by its replicas;
    counted per replica, N replicas admit N times the rate."""
    config = next((o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"].startswith("flotilla-config")), {})
    hpa = next((o for o in objects if o["kind"] == "HorizontalPodAutoscaler"
                and o["spec"]["scaleTargetRef"]["name"] == "gateway"), None)
    if hpa is None or hpa["spec"].get("maxReplicas", 1) <= 1:
        return
    gateway = fleet_pods(pods_of(objects))["gateway"]
    url = container_env(gateway.spec).get("FLOTILLA_REDIS_URL") or config.get(
        "FLOTILLA_REDIS_URL", "")
    if not (url.startswith("redis://") or url.startswith("rediss://")
            or (url.startswith("secret:") and not url.endswith("?"))):
        problem(f"overlays/{overlay} gateway", f"autoscaled to {hpa['spec']['maxReplicas']} "
                "replicas without a Redis URL: each counts the rate limits alone "
                "(FLOTILLA_REDIS_URL, from a Secret)")


def etcd_health_problem(probe):
    """Why `probe` (a k8s probe or compose's healthcheck test) fails once etcd's auth is on."""
    command = probe if isinstance(probe, list) else probe.get("exec", {}).get("command", [])
    if command and any(Path(str(word)).name == "etcdctl" for word in command) \
            and not any(str(word).startswith("--user") for word in command):
        return ("runs `etcdctl endpoint health` without credentials, which fails once "
                "authentication is on (user name is empty)")
    return None


def check_etcd_probes(deps_objects, services):
    """H-B: etcd's probes work with authentication on: HTTP /health (no login) in the cluster;
    in compose, whose etcd image has no HTTP client, etcdctl logged in as root."""
    for pod in pods_of(deps_objects):
        for c in pod.spec["containers"]:
            if (c.get("command") or [""])[0] != "etcd":
                continue
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = c.get(kind)
                why = probe and etcd_health_problem(probe)
                if why:
                    problem(f"dev-deps {pod.name}", f"{kind} {why}")
            probe = c.get("readinessProbe") or {}
            if not probe.get("httpGet", {}).get("path", "").startswith("/health"):
                problem(f"dev-deps {pod.name}", "readinessProbe is not etcd's HTTP /health")
    for name, spec in services.items():
        command = spec.get("command") or []
        if isinstance(command, str):
            command = command.split()
        if (command or [""])[0] != "etcd":
            continue
        test = (spec.get("healthcheck") or {}).get("test") or []
        why = etcd_health_problem(test)
        if why or not test:
            problem(f"compose {name}", f"healthcheck {why or 'missing'}")


def check_spread(objects):
    """L6: prod spreads each service's replicas over nodes."""
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        constraints = o["spec"]["template"]["spec"].get("topologySpreadConstraints") or []
        if not any(c.get("topologyKey") == "kubernetes.io/hostname"
                   and c.get("whenUnsatisfiable") == "DoNotSchedule"
                   and "app.kubernetes.io/name" in (c.get("matchLabelKeys") or [])
                   for c in constraints):
            problem(f"overlays/prod {o['metadata']['name']}",
                    "no topology spread of its replicas over nodes")


def check_nats_tls(objects):
    """L4: prod reaches NATS over TLS, with the CA it verifies the server against mounted."""
    config = next((o.get("data", {}) for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"].startswith("flotilla-config")), {})
    if not config.get("FLOTILLA_NATS_URL", "").startswith("tls://") \
            or config.get("FLOTILLA_NATS__TLS_REQUIRED") != "true":
        problem("overlays/prod", "NATS without TLS (a tls:// URL and "
                                 "FLOTILLA_NATS__TLS_REQUIRED=true)")
        return
    ca = config.get("FLOTILLA_NATS__TLS_CA")
    for o in objects:
        if o["kind"] != "Deployment":
            continue
        mounts = [m["mountPath"] for m in o["spec"]["template"]["spec"]["containers"][0]
                  .get("volumeMounts", [])]
        if ca and not any(ca.startswith(m.rstrip("/") + "/") for m in mounts):
            problem(f"overlays/prod {o['metadata']['name']}", f"does not mount {ca}")


def check_nats_conf():
    """M6: each user may create its own stream only, update and delete none."""
    conf = (K8S / "dev-deps" / "nats.conf").read_text()
    blocks = re.split(r"\n\s*user: ", conf)[1:]
    seen = set()
    for block in blocks:
        user = block.split("\n", 1)[0].strip()
        seen.add(user)
        allows = re.findall(r'"([^"]+)"', block)
        for subject in allows:
            if subject in (">", "$JS.>", "$JS.API.>", "$JS.API.STREAM.>") \
                    or re.match(r"\$JS\.API\.STREAM\.(UPDATE|DELETE|PURGE|MSG\.DELETE)\.", subject):
                problem(f"nats.conf {user}", f"may publish on {subject}")
            match = re.match(r"\$JS\.API\.STREAM\.CREATE\.(.+)$", subject)
            if match and match.group(1) != f"FLOTILLA_{user.upper()}":
                problem(f"nats.conf {user}", f"may create stream {match.group(1)}, not only its "
                                             f"own FLOTILLA_{user.upper()}")
    if seen != set(FLEET):
        problem("nats.conf", f"users {sorted(seen)}, expected {sorted(FLEET)}")


# An exact version: three numbers (nats:2.11.9-alpine), or two for PostgreSQL, whose releases
# are major.minor (postgres:17.6-bookworm); or a digest.
IMAGE_PIN = re.compile(r"^[^:@]+:[^:@]*\d+\.\d+\.\d+[^:@]*(@sha256:[0-9a-f]{64})?$"
                       r"|^postgres:\d+\.\d+(-[a-z]+)?(@sha256:[0-9a-f]{64})?$"
                       r"|@sha256:[0-9a-f]{64}$")


def check_images(objects_by_name, services):
    """L5: third-party images at an exact version (or digest); the two flotilla builds apart."""
    def pinned(where, image):
        if image and not image.startswith("${") and not IMAGE_PIN.match(image):
            problem(where, f"image {image} is not pinned to an exact version")
    for name, objects in objects_by_name.items():
        for pod in pods_of(objects):
            for c in pod.spec["containers"] + pod.spec.get("initContainers", []):
                if c["image"] in ("flotilla",) or c["image"].startswith("flotilla:") \
                        or "/flotilla:" in c["image"]:
                    continue
                pinned(f"{name} {pod.name}", c["image"])
    for name, spec in services.items():
        image = spec.get("image", "")
        if "flotilla" in image.split("/")[-1].split(":")[0]:
            continue
        pinned(f"compose {name}", image)
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    for job, spec in workflow["jobs"].items():
        for service, s in (spec.get("services") or {}).items():
            pinned(f"ci.yml {job} {service}", s["image"])
        for step in spec.get("steps", []):
            for line in step.get("run", "").splitlines():
                if "docker run" in line:
                    for image in re.findall(r"\s([a-z][\w./-]*:[\w.-]+)", line):
                        pinned(f"ci.yml {job}", image)
    # compose.yaml's build and compose.etcd.yaml's must not share a tag.
    base = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    etcd = yaml.safe_load((ROOT / "deploy" / "compose.etcd.yaml").read_text())
    default = base["x-service"]["image"]
    for service, spec in etcd["services"].items():
        if "build" in spec and spec.get("image", default) == default:
            problem(f"compose.etcd.yaml {service}", f"the etcd build is tagged {default}, "
                                                    "like compose.yaml's")
        if "latest" in str(spec.get("image", "")):
            problem(f"compose.etcd.yaml {service}", "a `latest` tag")
    if "latest" in default:
        problem("compose.yaml", f"the flotilla build is tagged {default}")


def check_ci():
    """L6: the contract diff against the change's starting point, on pull requests and pushes."""
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())
    job = workflow["jobs"].get("contracts", {})
    on = workflow.get(True, workflow.get("on", {}))  # PyYAML reads `on:` as True
    text = yaml.safe_dump(job)
    if "if" in job and "pull_request" in str(job["if"]) and "push" not in str(job["if"]):
        problem("ci.yml contracts", "runs on pull requests only")
    if "push" not in on or "github.event.before" not in text \
            or "contract-diff.sh" not in text:
        problem("ci.yml contracts", "does not compare pushes to main with the commit before")


def main():
    dev, prod, deps = render("overlays/dev"), render("overlays/prod"), render("dev-deps")
    check_network("dev", dev, deps)
    check_network("prod", prod, [])
    check_deps_network(deps, dev)
    for name, objects in (("overlays/dev", dev), ("overlays/prod", prod), ("dev-deps", deps)):
        check_shells(name, k8s_containers(objects))
    services = compose_services()
    check_shells("compose", compose_containers(services))
    check_shutdown("dev", dev)
    check_shutdown("prod", prod)
    check_secrets("dev", dev)
    check_secrets("prod", prod)
    check_advertise("dev", dev)
    check_advertise("prod", prod)
    check_shared_rate_limits("dev", dev)
    check_shared_rate_limits("prod", prod)
    check_etcd_probes(deps, services)
    check_spread(prod)
    check_nats_tls(prod)
    check_nats_conf()
    check_images({"overlays/dev": dev, "overlays/prod": prod, "dev-deps": deps}, services)
    check_ci()
    for p in PROBLEMS:
        print(f"policy: {p}")
    if PROBLEMS:
        sys.exit(1)
    print("policy: network reachability (the gateway's OTLP port apart), shells, shutdown "
          "timing, secrets, advertised addresses, shared rate limits, etcd probes, spread, NATS "
          "TLS and permissions, image pins, CI contract diff: as required")


if __name__ == "__main__":
    main()
