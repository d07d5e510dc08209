"""Offline checks of the files in deploy/; run through deploy/check.sh, which sets up the
virtualenv. Prints one line per check and exits 1 when any failed (every check runs).
What each check covers is listed in deploy/README.md."""

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema
from kubernetes_validate.utils import SchemaNotFoundError
from referencing import Registry, Resource

# The Kubernetes version whose (strict) schemas the manifests must satisfy: the API that
# KEDA v2.20 is built against.
K8S_VERSION = "1.35.0"

# The metric names of the worker (a public contract) and RabbitMQ's prefix.
WASMQ_METRICS = {
    "wasmq_jobs_total",
    "wasmq_job_duration_seconds",
    "wasmq_jobs_in_flight",
    "wasmq_compiles_total",
    "wasmq_compile_duration_seconds",
    "wasmq_module_cache_total",
    "wasmq_broker_connected",
    "wasmq_broker_reconnects_total",
    "wasmq_redeliveries_total",
    "wasmq_broker_blocked",
    "wasmq_http_requests_total",
    "wasmq_http_response_bytes_total",
    "wasmq_build_info",
}
HISTOGRAMS = {"wasmq_job_duration_seconds", "wasmq_compile_duration_seconds"}

# The worker refuses to start unless limits.maximum.timeout_ms plus this margin is below
# the broker's consumer timeout (crates/cli/commands/worker.rs).
CONSUMER_TIMEOUT_MARGIN_MS = 60_000
RABBITMQ_CONSUMER_TIMEOUT_MS = 1_800_000

KEDA_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}


class Report:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, check, detail):
        self.passed += 1
        print(f"ok    {check}: {detail}", flush=True)

    def fail(self, check, problem):
        self.failed += 1
        print(f"FAIL  {check}: {problem}", flush=True)

    def expect(self, check, problems, detail):
        """One line for a check: ok with `detail`, or its problems."""
        if problems:
            self.fail(check, "; ".join(problems))
        else:
            self.ok(check, detail)


class Deploy:
    """The files under deploy/, parsed once."""

    def __init__(self, root: Path):
        self.root = root
        self.dir = root / "deploy"
        self.k8s_dir = self.dir / "k8s"

    def rel(self, p: Path) -> str:
        return str(p.relative_to(self.root))


def load_yaml_docs(path: Path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---------------------------------------------------------------------------------------
# Every YAML, JSON and TOML file parses.


def check_parse(r: Report, d: Deploy):
    problems, counts = [], {"yaml": 0, "json": 0, "toml": 0}
    for p in sorted(d.dir.rglob("*")):
        if not p.is_file():
            continue
        kind = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}.get(p.suffix)
        if kind is None:
            continue
        try:
            if kind == "yaml":
                load_yaml_docs(p)
            elif kind == "json":
                json.loads(p.read_text())
            else:
                tomllib.loads(p.read_text())
            counts[kind] += 1
        except Exception as e:  # noqa: BLE001 - any parse error is the finding
            problems.append(f"{d.rel(p)} does not parse: {e}")
    r.expect(
        "parse",
        problems,
        f"{sum(counts.values())} files under deploy/ ({counts['yaml']} YAML, "
        f"{counts['json']} JSON, {counts['toml']} TOML)",
    )


# ---------------------------------------------------------------------------------------
# The worker's config file.


def load_config(r: Report, d: Deploy):
    """The parsed deploy/wasmq.toml, or None."""
    try:
        return tomllib.loads((d.dir / "wasmq.toml").read_text())
    except Exception as e:  # noqa: BLE001
        r.fail("config", f"deploy/wasmq.toml: {e}")
        return None


def check_config(r: Report, d: Deploy, cfg, binary: Path):
    if cfg is None:
        return
    maximum = cfg.get("limits", {}).get("maximum", {})
    timeout = maximum.get("timeout_ms", 300_000)
    consumer = cfg.get("consumer_timeout_ms", RABBITMQ_CONSUMER_TIMEOUT_MS)
    problems = []
    if consumer and timeout + CONSUMER_TIMEOUT_MARGIN_MS >= consumer:
        problems.append(
            f"limits.maximum.timeout_ms {timeout} + {CONSUMER_TIMEOUT_MARGIN_MS} is not below "
            f"consumer_timeout_ms {consumer}: the worker would refuse to start"
        )
    prefetch, concurrency = cfg.get("prefetch"), cfg.get("concurrency")
    if prefetch is not None and concurrency is not None and prefetch < concurrency:
        problems.append(f"prefetch {prefetch} is below concurrency {concurrency}")
    if "metrics_addr" not in cfg:
        problems.append("no metrics_addr: the probes and scrapes need /metrics, /healthz, /readyz")
    r.expect(
        "config: deploy/wasmq.toml limits",
        problems,
        f"limits.maximum.timeout_ms {timeout} + {CONSUMER_TIMEOUT_MARGIN_MS} ms margin < "
        f"consumer timeout {consumer} ms",
    )

    # The binary is the judge of the keys (its FileConfig denies unknown fields): run one
    # job under the file, with the cache and key moved to a temporary directory.
    hello = d.root / "tests/fixtures/hello.wat"
    with tempfile.TemporaryDirectory(prefix="wasmq-deploy-check-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"id": "deploy-check", "module": {"path": str(hello)}}))
        cmd = [
            str(binary), "run",
            "--config", str(d.dir / "wasmq.toml"),
            "--cache-dir", f"{tmp}/cache",
            "--artifact-key-file", f"{tmp}/cache.key",
            str(job),
        ]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=clean_env())
        except (OSError, subprocess.TimeoutExpired) as e:
            r.fail("config: the binary accepts deploy/wasmq.toml", f"could not run {binary}: {e}")
            return
    statuses = []
    for line in p.stdout.splitlines():
        try:
            statuses.append(json.loads(line).get("status"))
        except (json.JSONDecodeError, AttributeError):
            pass
    if p.returncode != 0 or statuses != ["succeeded"]:
        r.fail(
            "config: the binary accepts deploy/wasmq.toml",
            f"`wasmq run --config deploy/wasmq.toml` on tests/fixtures/hello.wat exited "
            f"{p.returncode} with results {statuses}: {last_lines(p.stderr or p.stdout)}",
        )
    else:
        r.ok(
            "config: the binary accepts deploy/wasmq.toml",
            "`wasmq run --config deploy/wasmq.toml` ran tests/fixtures/hello.wat: succeeded",
        )


def clean_env():
    """This environment without WASMQ_* variables, which would override the checked files."""
    return {k: v for k, v in os.environ.items() if not k.startswith("WASMQ_")}


def last_lines(text, n=5):
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"


# ---------------------------------------------------------------------------------------
# Kubernetes manifests.


def k8s_registry():
    """The strict Kubernetes definitions, for the KEDA schemas' references."""
    import importlib.resources

    base = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    version = kubernetes_validate.utils.major_minor(K8S_VERSION)
    defs = json.loads((base / f"v{version}.0-local-strict" / "_definitions.json").read_text())
    return Registry().with_resource(defs["$id"], Resource.from_contents(defs))


def load_manifests(r: Report, d: Deploy):
    """[(file, object)] of every manifest under deploy/k8s (not kustomization.yaml)."""
    objs = []
    for p in sorted(d.k8s_dir.glob("*.yaml")):
        if p.name == "kustomization.yaml":
            continue
        try:
            for doc in load_yaml_docs(p):
                objs.append((p, doc))
        except yaml.YAMLError:
            pass  # reported by check_parse
    return objs


def check_k8s_schemas(r: Report, d: Deploy, objs):
    registry = k8s_registry()
    version = kubernetes_validate.utils.major_minor(K8S_VERSION)
    for path, obj in objs:
        name = f"{d.rel(path)} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in KEDA_SCHEMAS:
            schema_file = d.k8s_dir / "schema" / KEDA_SCHEMAS[key]
            schema = json.loads(schema_file.read_text())
            v = jsonschema.Draft202012Validator(schema, registry=registry)
            errors = sorted(v.iter_errors(obj), key=lambda e: list(e.path))
            r.expect(
                f"k8s schema: {name}",
                [f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors],
                f"valid against {schema_file.relative_to(d.dir)} (KEDA "
                f"{schema.get('x-keda-version')}, strict)",
            )
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            r.ok(f"k8s schema: {name}", f"valid against Kubernetes {version} (strict)")
        except kubernetes_validate.ValidationError as e:
            r.fail(f"k8s schema: {name}", f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}")
        except SchemaNotFoundError as e:
            r.fail(f"k8s schema: {name}", e.message)
        except Exception as e:  # noqa: BLE001
            r.fail(f"k8s schema: {name}", f"could not be validated: {e}")


def check_kustomization(r: Report, d: Deploy):
    path = d.k8s_dir / "kustomization.yaml"
    try:
        k = yaml.safe_load(path.read_text())
    except Exception as e:  # noqa: BLE001
        r.fail("k8s kustomization", str(e))
        return
    listed = k.get("resources", [])
    files = sorted(p.name for p in d.k8s_dir.glob("*.yaml") if p.name != "kustomization.yaml")
    problems = [f"{x} is listed but does not exist" for x in listed if not (d.k8s_dir / x).is_file()]
    problems += [f"{x} is not listed in resources" for x in files if x not in listed]
    if k.get("kind") != "Kustomization":
        problems.append("kind is not Kustomization")
    r.expect("k8s kustomization", problems, f"resources are exactly the {len(files)} manifests")


def by_kind(objs, kind):
    return [o for _, o in objs if o.get("kind") == kind]


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def worker_containers(deployment):
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    return [c for c in spec.get("containers", []) if "wasmq" in str(c.get("image", ""))]


def port_of(addr):
    m = re.search(r":(\d+)$", str(addr or ""))
    return int(m.group(1)) if m else None


def grace_needed(cfg):
    """Seconds a stop may take: the longest job plus the drain timeout."""
    timeout_ms = cfg.get("limits", {}).get("maximum", {}).get("timeout_ms", 300_000)
    return timeout_ms / 1000 + cfg.get("drain_timeout_secs", 30)


def check_k8s_consistency(r: Report, d: Deploy, objs, cfg, docker_user):
    deployments = by_kind(objs, "Deployment")
    secrets = {o["metadata"]["name"]: o for o in by_kind(objs, "Secret")}
    configmaps = {o["metadata"]["name"]: o for o in by_kind(objs, "ConfigMap")}
    if not deployments:
        r.fail("k8s deployment", "no Deployment under deploy/k8s")
        return

    def secret_has(name, key):
        s = secrets.get(name)
        return s is not None and key in {**s.get("data", {}), **s.get("stringData", {})}

    for dep in deployments:
        name = dep["metadata"]["name"]
        check = f"k8s deployment {name}"
        problems = []
        pod = dep.get("spec", {}).get("template", {})
        pod_labels = pod.get("metadata", {}).get("labels", {})
        pod_spec = pod.get("spec", {})
        if not labels_match(dep["spec"].get("selector"), pod_labels):
            problems.append("spec.selector does not match the pod template's labels")
        if pod_labels.get("app.kubernetes.io/name") != "wasmq-worker":
            problems.append("pods lack the label app.kubernetes.io/name: wasmq-worker")
        if "namespace" in dep["metadata"]:
            problems.append("metadata.namespace is set (the manifests are namespace-agnostic)")
        containers = worker_containers(dep)
        if len(containers) != 1:
            problems.append(f"{len(containers)} wasmq containers, expected 1")
            r.expect(check, problems, "")
            continue
        c = containers[0]
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        env = {e["name"]: e for e in c.get("env", [])}

        def mount_for(path):
            """(mount, path inside the volume) of the volume holding `path`."""
            best = None
            for mp, m in mounts.items():
                if path == mp or path.startswith(mp.rstrip("/") + "/"):
                    if best is None or len(mp) > len(best[0]):
                        best = (mp, m)
            if best is None:
                return None, None
            return best[1], path[len(best[0]):].lstrip("/")

        # The config file: WASMQ_CONFIG names a ConfigMap key whose text is deploy/wasmq.toml.
        config_path = env.get("WASMQ_CONFIG", {}).get("value")
        k8s_cfg = None
        if not config_path:
            problems.append("no WASMQ_CONFIG value")
        else:
            m, key = mount_for(config_path)
            vol = volumes.get(m["name"]) if m else None
            cm_name = (vol or {}).get("configMap", {}).get("name")
            if cm_name is None:
                problems.append(f"WASMQ_CONFIG {config_path} is not in a mounted ConfigMap")
            elif cm_name not in configmaps or key not in configmaps[cm_name].get("data", {}):
                problems.append(f"ConfigMap {cm_name} has no key {key} (WASMQ_CONFIG {config_path})")
            else:
                text = configmaps[cm_name]["data"][key]
                if text != (d.dir / "wasmq.toml").read_text():
                    problems.append(f"ConfigMap {cm_name} key {key} differs from deploy/wasmq.toml")
                k8s_cfg = tomllib.loads(text)
        k8s_cfg = k8s_cfg or cfg or {}

        # Secrets the container reads.
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not secret_has(ref["name"], ref["key"]):
                problems.append(f"env {e['name']}: Secret {ref['name']} has no key {ref['key']}")
        if "WASMQ_AMQP_URL" in env and "valueFrom" not in env["WASMQ_AMQP_URL"]:
            problems.append("WASMQ_AMQP_URL is a literal value; it holds a password: use a Secret")

        # The artifact key comes from a mounted Secret, the cache from a writable volume.
        key_file = k8s_cfg.get("artifact_key_file")
        if key_file:
            m, key = mount_for(key_file)
            secret = (volumes.get(m["name"]) if m else {}).get("secret", {}).get("secretName")
            if secret is None:
                problems.append(f"artifact_key_file {key_file} is not in a mounted Secret")
            elif not secret_has(secret, key):
                problems.append(f"Secret {secret} has no key {key} (artifact_key_file {key_file})")
        cache_dir = k8s_cfg.get("cache_dir")
        m, _ = mount_for(cache_dir) if cache_dir else (None, None)
        if m is None or m.get("readOnly"):
            problems.append(f"cache_dir {cache_dir} is not on a writable volume")

        # Probes and scrapes on the metrics port.
        port = port_of(k8s_cfg.get("metrics_addr"))
        named = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet")
            if not get:
                problems.append(f"no {probe} httpGet")
                continue
            p = named.get(get.get("port"), get.get("port"))
            if get.get("path") != path or p != port:
                problems.append(f"{probe} is {get.get('path')} on {p}, expected {path} on {port}")
        ann = pod.get("metadata", {}).get("annotations", {})
        if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != str(port):
            problems.append(f"prometheus.io annotations do not scrape port {port}")
        if port not in named.values():
            problems.append(f"no containerPort {port} (metrics_addr)")

        # A stop has time to drain.
        grace = pod_spec.get("terminationGracePeriodSeconds", 30)
        need = grace_needed(k8s_cfg)
        if grace <= need:
            problems.append(
                f"terminationGracePeriodSeconds {grace} is not above limits.maximum.timeout_ms "
                f"+ drain_timeout_secs = {need:g} s"
            )

        # Unprivileged, read-only, with a writable /tmp.
        psc, csc = pod_spec.get("securityContext", {}), c.get("securityContext", {})
        merged = {**psc, **csc}
        if merged.get("runAsNonRoot") is not True:
            problems.append("runAsNonRoot is not true")
        if docker_user is not None and merged.get("runAsUser") != docker_user:
            problems.append(f"runAsUser {merged.get('runAsUser')} is not the image's USER {docker_user}")
        if csc.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if "ALL" not in csc.get("capabilities", {}).get("drop", []):
            problems.append("capabilities do not drop ALL")
        if "/tmp" not in mounts:
            problems.append("no volume at /tmp (the jobs' directories; the root is read-only)")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            problems.append("resources lack requests or limits")
        r.expect(
            check,
            problems,
            f"config from ConfigMap = deploy/wasmq.toml, secrets and mounts resolve, probes on "
            f":{port}, grace {grace} s > {need:g} s, non-root {merged.get('runAsUser')}, read-only root",
        )

    # The PodDisruptionBudget selects the workers.
    pod_labels = deployments[0]["spec"]["template"]["metadata"].get("labels", {})
    pdbs = by_kind(objs, "PodDisruptionBudget")
    r.expect(
        "k8s poddisruptionbudget",
        ([] if pdbs else ["none"])
        + [f"{p['metadata']['name']} does not select the worker pods" for p in pdbs
           if not labels_match(p["spec"].get("selector"), pod_labels)],
        "selects the worker pods",
    )

    # KEDA: the ScaledObject scales the Deployment on the jobs queue, with credentials
    # that exist.
    auths = {o["metadata"]["name"]: o for o in by_kind(objs, "TriggerAuthentication")}
    dep_names = {o["metadata"]["name"] for o in deployments}
    prefix = (cfg or {}).get("queue_prefix", "wasmq")
    sos = by_kind(objs, "ScaledObject")
    if not sos:
        r.fail("k8s keda", "no ScaledObject")
    for so in sos:
        spec, problems = so.get("spec", {}), []
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        if lo > hi:  # the CRD's CEL rule
            problems.append("minReplicaCount must be less than or equal to maxReplicaCount")
        target = spec.get("scaleTargetRef", {})
        if target.get("kind", "Deployment") != "Deployment" or target.get("name") not in dep_names:
            problems.append(f"scaleTargetRef {target} is not a Deployment here")
        triggers = [t for t in spec.get("triggers", []) if t.get("type") == "rabbitmq"]
        if not triggers:
            problems.append("no rabbitmq trigger")
        for t in triggers:
            md = t.get("metadata", {})
            if md.get("queueName") != f"{prefix}.jobs":
                problems.append(f"queueName {md.get('queueName')} is not {prefix}.jobs")
            if md.get("mode") not in ("QueueLength", "MessageRate"):
                problems.append(f"mode {md.get('mode')} is not QueueLength or MessageRate")
            auth = auths.get(t.get("authenticationRef", {}).get("name"))
            if "host" not in md and "hostFromEnv" not in md and auth is None:
                problems.append("no host, hostFromEnv or TriggerAuthentication")
            if t.get("authenticationRef") and auth is None:
                problems.append(f"TriggerAuthentication {t['authenticationRef'].get('name')} is not here")
            for ref in (auth or {}).get("spec", {}).get("secretTargetRef", []):
                if not secret_has(ref["name"], ref["key"]):
                    problems.append(f"TriggerAuthentication: Secret {ref['name']} has no key {ref['key']}")
        r.expect(
            f"k8s keda {so['metadata']['name']}",
            problems,
            f"scales Deployment {target.get('name')} {lo}..{hi} on queue {prefix}.jobs, "
            "credentials from a Secret here",
        )


# ---------------------------------------------------------------------------------------
# Compose.


def compose_worker_services(compose):
    return {
        n: s for n, s in (compose.get("services") or {}).items()
        if "wasmq" in str(s.get("image", "")) or "build" in s
    }


def compose_env(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
    return env


def duration_secs(text):
    total, units = 0.0, {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(text))
    if not parts or "".join(a + b for a, b in parts) != str(text):
        return None
    for n, u in parts:
        total += float(n) * units[u]
    return total


def check_compose(r: Report, d: Deploy, cfg):
    path = d.dir / "compose.yaml"
    try:
        compose = yaml.safe_load(path.read_text())
    except Exception as e:  # noqa: BLE001
        r.fail("compose schema", str(e))
        return None
    schema = get_builtin_schema("vendor.compose-spec")
    v = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(v.iter_errors(compose), key=lambda e: list(e.path))
    r.expect(
        "compose schema",
        [f"{'.'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors[:10]],
        "deploy/compose.yaml is valid against the compose-spec schema (as bundled by check-jsonschema)",
    )

    cfg = cfg or {}
    services = compose.get("services") or {}
    workers = compose_worker_services(compose)
    port = port_of(cfg.get("metrics_addr"))
    problems = []
    if len(workers) < 2:
        problems.append(f"{len(workers)} worker services, expected 2")
    broker = services.get("rabbitmq", {})
    if "rabbitmq-diagnostics" not in " ".join(map(str, (broker.get("healthcheck") or {}).get("test", []))):
        problems.append("rabbitmq has no rabbitmq-diagnostics healthcheck")
    host_ports = []
    for name, s in workers.items():
        where = f"{name}:"
        build = s.get("build") or {}
        if build:
            context = (d.dir / build.get("context", ".")).resolve()
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            if dockerfile.resolve() != (d.dir / "Dockerfile").resolve():
                problems.append(f"{where} builds {dockerfile}, not deploy/Dockerfile")
        dep = (s.get("depends_on") or {})
        if not isinstance(dep, dict) or dep.get("rabbitmq", {}).get("condition") != "service_healthy":
            problems.append(f"{where} does not wait for rabbitmq to be healthy")
        env = compose_env(s)
        mounts = {}
        for vol in s.get("volumes") or []:
            if isinstance(vol, str):
                src, _, rest = vol.partition(":")
                mounts[rest.split(":")[0]] = src
            else:
                mounts[vol.get("target")] = vol.get("source")
        config_path = env.get("WASMQ_CONFIG")
        src = mounts.get(config_path)
        if src is None or (d.dir / src).resolve() != (d.dir / "wasmq.toml").resolve():
            problems.append(f"{where} WASMQ_CONFIG {config_path} is not deploy/wasmq.toml mounted")
        if cfg.get("cache_dir") not in mounts:
            problems.append(f"{where} no volume at cache_dir {cfg.get('cache_dir')}")
        key_file = cfg.get("artifact_key_file")
        targets = [x.get("target") for x in s.get("secrets") or [] if isinstance(x, dict)]
        if key_file and key_file not in targets:
            problems.append(f"{where} no secret at artifact_key_file {key_file}")
        if port_of(env.get("WASMQ_METRICS_ADDR", cfg.get("metrics_addr"))) != port:
            problems.append(f"{where} WASMQ_METRICS_ADDR is not on port {port}")
        published = []
        for p in s.get("ports") or []:
            host, _, container = str(p).rpartition(":")
            if container == str(port):
                published.append(host)
        if not published:
            problems.append(f"{where} does not publish the metrics port {port}")
        host_ports += published
        grace = duration_secs(s.get("stop_grace_period", "10s"))
        need = grace_needed(cfg)
        if grace is None or grace <= need:
            problems.append(
                f"{where} stop_grace_period {s.get('stop_grace_period')} is not above "
                f"limits.maximum.timeout_ms + drain_timeout_secs = {need:g} s"
            )
        if s.get("read_only") is not True:
            problems.append(f"{where} read_only is not true")
        if not any(str(t).split(":")[0] == "/tmp" for t in s.get("tmpfs") or []):
            problems.append(f"{where} no tmpfs at /tmp")
        if "WASMQ_AMQP_URL" not in env:
            problems.append(f"{where} no WASMQ_AMQP_URL")
        for vol_src in mounts.values():
            if vol_src and vol_src.startswith((".", "/")) and not (d.dir / vol_src).exists():
                problems.append(f"{where} bind source {vol_src} does not exist")
    if len(set(host_ports)) != len(host_ports):
        problems.append(f"workers publish the same host port: {host_ports}")
    r.expect(
        "compose workers",
        problems,
        f"{', '.join(workers)} from deploy/Dockerfile wait for a healthy rabbitmq, mount "
        f"deploy/wasmq.toml, cache and key; metrics :{port} on host ports "
        f"{', '.join(host_ports)}; read-only with /tmp tmpfs; stop grace above "
        f"{grace_needed(cfg):g} s",
    )

    # Prometheus scrapes services that exist, on their ports.
    prom = d.dir / "prometheus.yml"
    if prom.exists():
        problems, targets = [], []
        try:
            p = yaml.safe_load(prom.read_text())
            for job in p.get("scrape_configs", []):
                for sc in job.get("static_configs", []):
                    targets += sc.get("targets", [])
        except Exception as e:  # noqa: BLE001
            problems.append(str(e))
        for t in targets:
            host, _, tport = t.rpartition(":")
            if host not in services:
                problems.append(f"target {t}: no service {host}")
            elif host in workers and tport != str(port):
                problems.append(f"target {t}: the worker's metrics port is {port}")
        r.expect("compose prometheus", problems, f"deploy/prometheus.yml scrapes {', '.join(targets)}")
    return compose


# ---------------------------------------------------------------------------------------
# Grafana.


PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
    "unless", "offset", "inf", "nan", "atan2",
}


def metric_names(expr):
    """The metric names a PromQL expression (or a label_values() query) selects."""
    e = re.sub(r"label_values\(\s*([^,()]+?)\s*,\s*\w+\s*\)", r"\1", expr)
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', e)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    e = re.sub(r"\$\{?\w+\}?", "", e)
    names = []
    for m in re.finditer(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("(") or m.group(0).lower() in PROMQL_WORDS:
            continue
        names.append(m.group(0))
    return names


def known_metric(name):
    if name in WASMQ_METRICS or name.startswith("rabbitmq_"):
        return name
    for h in HISTOGRAMS:
        if name in (f"{h}_bucket", f"{h}_sum", f"{h}_count"):
            return h
    return None


def check_grafana(r: Report, d: Deploy):
    path = d.dir / "grafana" / "wasmq-dashboard.json"
    try:
        dash = json.loads(path.read_text())
    except Exception as e:  # noqa: BLE001
        r.fail("grafana", f"{d.rel(path)}: {e}")
        return
    problems, used, exprs = [], set(), []
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    if variables.get("DS_PROMETHEUS", {}).get("type") != "datasource" and not any(
        i.get("name") == "DS_PROMETHEUS" for i in dash.get("__inputs", [])
    ):
        problems.append("no DS_PROMETHEUS datasource variable or input")
    for v in variables.values():
        q = v.get("query")
        if v.get("type") == "query":
            exprs.append((f"variable {v['name']}", q.get("query") if isinstance(q, dict) else q))

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    ids = []
    for p in walk(dash.get("panels", [])):
        ids.append(p.get("id"))
        if "gridPos" not in p:
            problems.append(f"panel {p.get('title')!r} has no gridPos")
        if p.get("type") == "row":
            continue
        for t in p.get("targets", []):
            ds = (t.get("datasource") or p.get("datasource") or {}).get("uid")
            if ds != "${DS_PROMETHEUS}":
                problems.append(f"panel {p.get('title')!r} uses datasource {ds!r}, not ${{DS_PROMETHEUS}}")
            exprs.append((f"panel {p.get('title')!r}", t.get("expr", "")))
    if len(ids) != len(set(ids)):
        problems.append("panel ids are not unique")
    for where, expr in exprs:
        names = metric_names(expr or "")
        if not names:
            problems.append(f"{where}: no metric in {expr!r}")
        for n in names:
            k = known_metric(n)
            if k is None:
                problems.append(f"{where}: unknown metric {n}")
            else:
                used.add(k)
    for m in sorted(WASMQ_METRICS - used):
        problems.append(f"no panel shows {m}")
    if not any(n.startswith("rabbitmq_queue_messages_ready") for n in used):
        problems.append("no panel shows rabbitmq_queue_messages_ready")
    r.expect(
        "grafana",
        problems,
        f"{len(exprs)} queries use only the {len(WASMQ_METRICS)} wasmq metrics (all shown) "
        f"and rabbitmq_*; datasource ${{DS_PROMETHEUS}}",
    )


# ---------------------------------------------------------------------------------------
# Dockerfile.


def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments)] with continuations joined and comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def json_or_shell(args):
    try:
        v = json.loads(args)
        return v if isinstance(v, list) else [args]
    except json.JSONDecodeError:
        return shlex.split(args)


def check_hadolint(r: Report, d: Deploy):
    """hadolint parses the Dockerfile and finds nothing at warning level or above."""
    hadolint = Path(sys.executable).parent / "hadolint"
    cmd = [str(hadolint), "--no-color", "--failure-threshold", "warning", str(d.dir / "Dockerfile")]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        r.fail("dockerfile hadolint", f"could not run {hadolint}: {e}")
        return
    version = subprocess.run([str(hadolint), "--version"], capture_output=True, text=True).stdout.strip()
    r.expect(
        "dockerfile hadolint",
        [last_lines(p.stdout + p.stderr, 10)] if p.returncode != 0 else [],
        f"deploy/Dockerfile parses and lints clean ({version})",
    )


def check_dockerfile(r: Report, d: Deploy):
    """Returns the runtime stage's numeric USER, or None."""
    path = d.dir / "Dockerfile"
    try:
        ins = dockerfile_instructions(path.read_text())
    except OSError as e:
        r.fail("dockerfile", str(e))
        return None
    stages, problems = [], []
    for word, args in ins:
        if word == "FROM":
            parts = args.split()
            stages.append({"image": parts[0], "name": parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None, "ins": []})
        elif stages:
            stages[-1]["ins"].append((word, args))
    if len(stages) < 2:
        r.fail("dockerfile", f"{len(stages)} stages, expected a builder and a runtime stage")
        return None
    builder, final = stages[0], stages[-1]
    if builder["image"] != "rust:1.95-bookworm":
        problems.append(f"the builder is {builder['image']}, not rust:1.95-bookworm")
    if final["image"] != "debian:bookworm-slim":
        problems.append(f"the runtime stage is {final['image']}, not debian:bookworm-slim")
    build = " ".join(a for w, a in builder["ins"] if w == "RUN")
    if "cargo build --release --locked --bin wasmq" not in build:
        problems.append("the builder does not run cargo build --release --locked --bin wasmq")
    m = re.search(r"target/release/wasmq\s+(\S+)", build)
    built = m.group(1) if m else "target/release/wasmq"

    copies = [a for w, a in final["ins"] if w in ("COPY", "ADD")]
    if [w for w, _ in final["ins"] if w == "ADD"]:
        problems.append("the runtime stage uses ADD")
    expected = f"--from={builder['name']} {built} /usr/local/bin/wasmq"
    if len(copies) != 1 or " ".join(copies[0].split()) != expected:
        problems.append(f"the runtime stage copies {copies}, expected only `COPY {expected}`")

    users = [a for w, a in final["ins"] if w == "USER"]
    uid = None
    if not users:
        problems.append("the runtime stage has no USER")
    else:
        user = users[-1].split(":")[0]
        if not user.isdigit():
            problems.append(f"USER {user} is not numeric (Kubernetes' runAsNonRoot needs a uid)")
        elif int(user) == 0:
            problems.append("USER is root")
        else:
            uid = int(user)
        words = [w for w, _ in final["ins"]]
        if "RUN" in words[words.index("USER"):]:
            problems.append("RUN after USER in the runtime stage")
    ep = [json_or_shell(a) for w, a in final["ins"] if w == "ENTRYPOINT"]
    cmd = [json_or_shell(a) for w, a in final["ins"] if w == "CMD"]
    if not ep or ep[-1] != ["wasmq"]:
        problems.append(f"ENTRYPOINT is {ep[-1] if ep else None}, expected [\"wasmq\"]")
    if not cmd or cmd[-1] != ["worker"]:
        problems.append(f"CMD is {cmd[-1] if cmd else None}, expected [\"worker\"]")
    vols = " ".join(a for w, a in final["ins"] if w == "VOLUME")
    if "/var/cache/wasmq" not in vols:
        problems.append("no VOLUME /var/cache/wasmq")
    r.expect(
        "dockerfile",
        problems,
        f"stages {builder['image']} AS {builder['name']} -> {final['image']}; only "
        f"{built} copied to /usr/local/bin/wasmq; USER {uid}; ENTRYPOINT wasmq, CMD worker",
    )

    # The build context: what cargo needs is not ignored, build outputs are.
    ignore = d.dir / "Dockerfile.dockerignore"
    problems = []
    if not ignore.exists():
        r.fail("dockerignore", "no deploy/Dockerfile.dockerignore")
        return uid
    patterns = [l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")]
    needed = ["Cargo.toml", "Cargo.lock", "crates/cli/main.rs", "crates/sandbox/src/lib.rs",
              "wit/job.wit", "benches/sandbox.rs", "tests/all/main.rs"]
    for n in needed:
        if ignored(n, patterns):
            problems.append(f"{n} is ignored, but the build needs it")
    for n in [".git", "target", "jobs/guests/target"]:
        if not ignored(n, patterns):
            problems.append(f"{n} is not ignored")
    r.expect("dockerignore", problems, "keeps .git, target/ and build outputs out; keeps the sources in")
    return uid


def ignored(path, patterns):
    """Whether a .dockerignore excludes `path` (or a directory above it)."""
    import fnmatch

    result = False
    parts = path.split("/")
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        for i in range(1, len(parts) + 1):
            if fnmatch.fnmatchcase("/".join(parts[:i]), p):
                result = not neg
                break
    return result


# ---------------------------------------------------------------------------------------
# Flags and environment variables given to the worker exist in its --help.


def worker_args(args):
    """The flags of a `wasmq worker ...` argument list (without the program)."""
    return [a.split("=", 1)[0] for a in args if a.startswith("-")]


def collect_worker_settings(d: Deploy, objs, compose):
    """{source: (flags, env names)} of everything the deploy files pass to the worker."""
    found = {}
    for path, obj in objs:
        if obj.get("kind") != "Deployment":
            continue
        for c in worker_containers(obj):
            args = list(c.get("command", [])[1:]) + list(c.get("args", []))
            env = [e["name"] for e in c.get("env", []) if e["name"].startswith("WASMQ_")]
            found[f"{d.rel(path)} {c['name']}"] = (worker_args(args), env)
    for name, s in compose_worker_services(compose or {}).items():
        cmd = s.get("command") or []
        cmd = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        env = [k for k in compose_env(s) if k.startswith("WASMQ_")]
        found[f"deploy/compose.yaml {name}"] = (worker_args(cmd), env)
    text = (d.dir / "Dockerfile").read_text()
    flags, env = [], []
    for word, args in dockerfile_instructions(text):
        if word in ("CMD", "ENTRYPOINT"):
            flags += worker_args(json_or_shell(args))
        if word == "ENV":
            env += [t.split("=", 1)[0] for t in shlex.split(args) if t.startswith("WASMQ_")]
    found["deploy/Dockerfile"] = (flags, env)
    unit = d.dir / "systemd" / "wasmq-worker.service"
    if unit.exists():
        flags, env = [], []
        for line in unit.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ExecStart":
                flags += worker_args(shlex.split(value)[1:])
            elif key.strip() == "Environment":
                env += [t.split("=", 1)[0] for t in shlex.split(value) if t.startswith("WASMQ_")]
        found[d.rel(unit)] = (flags, env)
    return found


def check_help(r: Report, d: Deploy, objs, compose, binary: Path):
    try:
        p = subprocess.run([str(binary), "worker", "--help"], capture_output=True, text=True,
                           timeout=60, env=clean_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        r.fail("worker --help", f"could not run {binary} worker --help: {e}")
        return
    if p.returncode != 0:
        r.fail("worker --help", f"{binary} worker --help exited {p.returncode}: {last_lines(p.stderr)}")
        return
    text = p.stdout
    for source, (flags, env) in collect_worker_settings(d, objs, compose).items():
        missing = [f for f in flags if not re.search(rf"(?<![\w-]){re.escape(f)}(?![\w-])", text)]
        missing += [e for e in env if not re.search(rf"\b{re.escape(e)}\b", text)]
        shown = ", ".join(flags + env) or "nothing"
        r.expect(
            f"worker --help: {source}",
            [f"not in `wasmq worker --help`: {', '.join(missing)}"] if missing else [],
            f"{shown}: all in `wasmq worker --help`",
        )


# ---------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--bin", required=True, type=Path)
    a = ap.parse_args()
    d, r = Deploy(a.root.resolve()), Report()
    if not (a.bin.is_file() and os.access(a.bin, os.X_OK)):
        r.fail("binary", f"{a.bin} is not an executable file")

    check_parse(r, d)
    cfg = load_config(r, d)
    check_config(r, d, cfg, a.bin)
    check_hadolint(r, d)
    docker_user = check_dockerfile(r, d)
    objs = load_manifests(r, d)
    check_k8s_schemas(r, d, objs)
    check_kustomization(r, d)
    check_k8s_consistency(r, d, objs, cfg, docker_user)
    compose = check_compose(r, d, cfg)
    check_grafana(r, d)
    check_help(r, d, objs, compose, a.bin)

    print(f"deploy check: {r.passed} passed, {r.failed} failed")
    sys.exit(1 if r.failed else 0)


if __name__ == "__main__":
    main()
