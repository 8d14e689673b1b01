"""charts/promptops, checked statically: helm lint and template, every object against the Kubernetes schemas
(kubernetes-validate --strict), the custom resources against validators generated from their CRDs, checkov,
and what the chart must wire (probes, ports, flags, the NetworkPolicy, PDBs, the autoscalers).

There is no cluster here: nothing is applied. The tools come from scripts/setup-k8s-tools.sh (`make k8s-tools`,
which `make test` runs); without them these tests skip and say so. Four variants are rendered, one per values file
in charts/promptops/ci/: the defaults, a GPU node pool, KEDA + monitoring, and an Ingress.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "promptops"
CI_VALUES = CHART / "ci"
TOOLS = Path(os.environ.get("PROMPTOPS_TOOLS_DIR", ROOT / ".tools"))
NODE_MODULES = TOOLS / "npm" / "node_modules"
VARIANTS = ("default", "gpu-pool", "keda", "ingress")
NAMESPACE = "prompts"
RELEASE = "rel"
FULLNAME = f"{RELEASE}-promptops"
GATEWAY, TRITON = f"{FULLNAME}-gateway", f"{FULLNAME}-triton"
# Kinds kubernetes-validate has no schema for: checked by validate_crds.mjs and by the tests below.
CRD_KINDS = {"ScaledObject", "ServiceMonitor", "PrometheusRule"}
# The oldest Kubernetes the chart accepts (Chart.yaml kubeVersion); the newest is the newest kubernetes-validate has.
OLDEST_KUBERNETES = "1.29.0"
# PROMPTOPS_* variables the chart sets that are not GatewaySettings fields: read by the Triton launcher's
# settings (the model repository, for model.json).
OTHER_PROMPTOPS_ENV = {"PROMPTOPS_MODEL_REPOSITORY"}
SETUP_HINT = "run `make k8s-tools` (scripts/setup-k8s-tools.sh) to install it"


# -- tools ------------------------------------------------------------------------------------------------------

def tool(name: str, where: Path) -> str:
    """The tool in .tools/ (else on PATH), or skip the test saying how to install it."""
    path = where / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not found in {where} or on PATH: {SETUP_HINT}")
    return found


def helm() -> str:
    return tool("helm", TOOLS / "bin")


def run(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(args[:3])} ... exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                    f"{result.stderr[-4000:]}", pytrace=False)
    return result


@cache
def newest_kubernetes() -> str:
    """The newest Kubernetes version the installed kubernetes-validate has schemas for."""
    python = TOOLS / "venv" / "bin" / "python"
    if not python.exists():
        python = Path(shutil.which("python3") or "python3")
    out = run(str(python), "-c", "import kubernetes_validate.utils as u; print(u.latest_version())", check=False)
    if out.returncode != 0:
        pytest.skip(f"kubernetes-validate is not importable: {SETUP_HINT}")
    return out.stdout.strip()


# -- rendering --------------------------------------------------------------------------------------------------

@cache
def render_text(variant: str) -> str:
    # Rendered for the oldest Kubernetes the chart accepts: its kubeVersion constraint must admit it.
    out = run(helm(), "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--kube-version", OLDEST_KUBERNETES,
              "-f", str(CI_VALUES / f"{variant}-values.yaml"))
    return out.stdout


@cache
def render(variant: str) -> tuple[dict[str, Any], ...]:
    return tuple(doc for doc in yaml.safe_load_all(render_text(variant)) if doc)


def objects(variant: str, kind: str) -> dict[str, dict[str, Any]]:
    """The rendered objects of one kind, by name."""
    return {doc["metadata"]["name"]: doc for doc in render(variant) if doc["kind"] == kind}


def one(variant: str, kind: str, name: str) -> dict[str, Any]:
    found = objects(variant, kind)
    assert name in found, f"{kind}/{name} not rendered in {variant}: {sorted(found)}"
    return found[name]


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def env_of(c: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in c.get("env", [])}


def port_number(c: dict[str, Any], port: str | int) -> int:
    """A probe's or policy's port, by name or number, as the container port number."""
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in c["ports"] if p["name"] == port)


def values(variant: str) -> dict[str, Any]:
    """The chart's values merged with the variant's file (dicts merged, everything else replaced), as helm does."""
    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {k: merge(base.get(k), v) if k in base else v for k, v in over.items()} | \
                {k: v for k, v in base.items() if k not in over}
        return over
    base = yaml.safe_load((CHART / "values.yaml").read_text())
    return merge(base, yaml.safe_load((CI_VALUES / f"{variant}-values.yaml").read_text()) or {})


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# -- helm lint / template ---------------------------------------------------------------------------------------

def test_every_values_file_in_ci_is_a_tested_variant():
    assert sorted(p.name for p in CI_VALUES.glob("*.yaml")) == sorted(f"{v}-values.yaml" for v in VARIANTS)


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant):
    run(helm(), "lint", "--strict", str(CHART), "--namespace", NAMESPACE, "-f", str(CI_VALUES / f"{variant}-values.yaml"))


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_template_renders_namespaced_labelled_objects(variant):
    docs = render(variant)
    assert len(docs) >= 14
    for doc in docs:
        meta = doc["metadata"]
        assert meta["namespace"] == NAMESPACE, f"{doc['kind']}/{meta['name']}"
        assert meta["labels"]["app.kubernetes.io/instance"] == RELEASE
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize(("setting", "message"), [
    (["--set", "gateway.store.url="], "gateway.store.url is required"),
    (["--set", "gateway.defaultModel=other"], "must be in triton.loadModels"),
    (["--set", "triton.loadModels={smollm2-135m,missing}"], "not in triton.modelRepository.models"),
    (["--set", "gateway.store.auth.type=ssh"], "needs sshPrivateKey and knownHosts"),
    (["--set", "gateway.store.auth.type=https"], "needs httpsToken"),
])
def test_misconfiguration_fails_the_render_with_a_clear_message(setting, message):
    out = run(helm(), "template", RELEASE, str(CHART), "-f", str(CI_VALUES / "default-values.yaml"), *setting,
              check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr


def test_notes_say_how_to_sign_in(tmp_path):
    """NOTES.txt rendered offline (helm template does not render it): through tpl in a copy of the chart."""
    chart = tmp_path / "promptops"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates" / "NOTES.txt", chart / "notes.in")
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n'
        '  notes: {{ tpl (.Files.Get "notes.in") . | quote }}\n')
    for variant, secret, url in (("default", f"{GATEWAY}-auth", f"port-forward svc/{GATEWAY} 7070:7070"),
                                 ("ingress", "promptops-auth", "https://prompts.example.com/")):
        out = run(helm(), "template", RELEASE, str(chart), "--namespace", NAMESPACE, "--show-only",
                  "templates/zz-notes.yaml", "-f", str(CI_VALUES / f"{variant}-values.yaml"))
        notes = yaml.safe_load(out.stdout)["data"]["notes"]
        assert f"get secret {secret} -o jsonpath='{{.data.admin-token}}'" in notes
        assert url in notes and "/signin" in notes


# -- schemas ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kubernetes", ["newest", OLDEST_KUBERNETES])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_validates_strictly_against_the_kubernetes_schemas(variant, kubernetes, tmp_path):
    validate = tool("kubernetes-validate", TOOLS / "venv" / "bin")
    version = newest_kubernetes() if kubernetes == "newest" else kubernetes
    manifest = tmp_path / f"{variant}.yaml"
    manifest.write_text(render_text(variant))
    out = run(validate, "--strict", "-k", version, str(manifest), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    report = (out.stdout + out.stderr).splitlines()
    checked = {line.split("for resource ")[1].split(" ")[0] for line in report if " passed for resource " in line}
    unknown = [line for line in report if line.startswith("WARN")]
    # Only the custom resources lack a schema; a typo in a core kind's apiVersion would land here too.
    assert all(re.search(r"Couldn't find schema for kind (\w+) ", w).group(1) in CRD_KINDS for w in unknown), unknown
    core = [d for d in render(variant) if d["kind"] not in CRD_KINDS]
    assert len(checked) == len(core), (sorted(checked), report)


@pytest.mark.parametrize("variant", VARIANTS)
def test_custom_resources_validate_against_their_crds(variant):
    docs = [d for d in render(variant) if d["kind"] in CRD_KINDS]
    if not docs:
        assert variant != "keda"
        return
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@kubernetes-models" / "keda").is_dir():
        pytest.skip(f"node or the @kubernetes-models validators are missing: {SETUP_HINT}")
    out = run(node, str(Path(__file__).with_name("validate_crds.mjs")), str(NODE_MODULES), input=json.dumps(docs))
    results = json.loads(out.stdout)
    assert {r["kind"] for r in results} == {d["kind"] for d in docs}
    assert all(not r["errors"] for r in results), results


# -- checkov ----------------------------------------------------------------------------------------------------

def checkov_skips() -> dict[str, str]:
    return yaml.safe_load((CHART / "checkov-skips.yaml").read_text())


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory) -> dict[str, Any]:
    """One checkov run over the four renderings (framework kubernetes), with the chart's documented skips."""
    checkov = tool("checkov", TOOLS / "venv" / "bin")
    folder = tmp_path_factory.mktemp("rendered")
    for variant in VARIANTS:
        (folder / f"{variant}.yaml").write_text(render_text(variant))
    out = run(checkov, "-d", str(folder), "--framework", "kubernetes", "--output", "json",
              "--skip-download", "--skip-check", ",".join(checkov_skips()), check=False,
              env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert out.returncode in (0, 1), out.stderr[-4000:]
    report = json.loads(out.stdout)
    report = report[0] if isinstance(report, list) else report
    assert report["check_type"] == "kubernetes"
    return report


@pytest.mark.parametrize("variant", VARIANTS)
def test_checkov_finds_no_failed_check(checkov_report, variant):
    results = checkov_report["results"]
    mine = [c for c in results["failed_checks"] if Path(c["file_path"]).stem == variant]
    assert not mine, [(c["check_id"], c["check_name"], c["resource"]) for c in mine]
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert any(Path(c["file_path"]).stem == variant for c in results["passed_checks"])


def test_every_checkov_skip_has_a_reason_and_is_documented(checkov_report):
    readme = (CHART / "README.md").read_text()
    for check_id, reason in checkov_skips().items():
        assert re.fullmatch(r"CKV2?_K8S_\d+", check_id) and len(reason) > 40, check_id
        assert check_id in readme, f"{check_id} is skipped but not explained in charts/promptops/README.md"
    for skipped in checkov_report["results"]["skipped_checks"]:
        # Per-object skips are annotations `checkov.io/skipN: ID=reason`.
        assert skipped["check_id"] in readme, skipped["check_id"]
        assert len(skipped["check_result"].get("suppress_comment") or "") > 40, skipped["check_id"]


# -- what the chart must wire -----------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_triton_runs_nvidias_vllm_image_with_explicit_model_control(variant):
    sts = one(variant, "StatefulSet", TRITON)
    c = container(sts, "triton")
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-vllm-python-py3", c["image"])
    args = c["args"]
    assert args[0] == "tritonserver" and "--model-repository=/models" in args
    assert "--model-control-mode=explicit" in args
    load = [a.removeprefix("--load-model=") for a in args if a.startswith("--load-model=")]
    assert load == values(variant)["triton"]["loadModels"] and load
    assert {"--grpc-port=8001", "--http-port=8000", "--metrics-port=8002"} <= set(args)
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8000, "grpc": 8001, "metrics": 8002}
    assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1


@pytest.mark.parametrize("variant", VARIANTS)
def test_triton_probes_its_health_endpoints_with_a_long_startup_grace(variant):
    c = container(one(variant, "StatefulSet", TRITON), "triton")
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert port_number(c, c[probe]["httpGet"]["port"]) == 8000, probe
    startup = c["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # the first start downloads the weights


@pytest.mark.parametrize("variant", VARIANTS)
def test_triton_hf_cache_is_persistent_and_the_token_comes_from_a_secret(variant):
    sts = one(variant, "StatefulSet", TRITON)
    c = container(sts, "triton")
    env = env_of(c)
    assert env["HF_HOME"]["value"] == "/hf-cache"
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/hf-cache")
    claims = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert mount["name"] in claims or "persistentVolumeClaim" in volumes[mount["name"]]
    v = values(variant)
    if v["huggingface"]["token"] or v["huggingface"]["existingSecret"]:
        assert "secretKeyRef" in env["HF_TOKEN"]["valueFrom"]
    else:
        assert "HF_TOKEN" not in env
    assert all("value" not in e or not e["name"].endswith("TOKEN") for e in c["env"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_gpu_scheduling_comes_from_the_values(variant):
    spec = one(variant, "StatefulSet", TRITON)["spec"]["template"]["spec"]
    t = values(variant)["triton"]
    assert spec.get("nodeSelector", {}) == t["nodeSelector"]
    assert spec.get("tolerations", []) == t["tolerations"]
    if variant == "gpu-pool":
        assert spec["nodeSelector"] and spec["topologySpreadConstraints"]
        assert one(variant, "StatefulSet", TRITON)["spec"]["replicas"] == 2


def test_the_model_repository_is_the_repositorys_own():
    """The ConfigMap's files are model_repository/'s, byte for byte (values.yaml copies them)."""
    cm = one("default", "ConfigMap", f"{FULLNAME}-model-repository")
    sts = one("default", "StatefulSet", TRITON)
    volume = next(v for v in sts["spec"]["template"]["spec"]["volumes"] if v["name"] == "model-repository")
    items = {i["path"]: i["key"] for i in volume["configMap"]["items"]}
    assert items, "no model files mounted"
    for path, key in items.items():
        assert cm["data"][key] == (ROOT / "model_repository" / path).read_text(), path
    assert {p.split("/")[0] for p in items} >= set(values("default")["triton"]["loadModels"])
    gateway = one("default", "Deployment", GATEWAY)
    assert any(v["name"] == "model-repository" for v in gateway["spec"]["template"]["spec"]["volumes"])
    assert env_of(container(gateway, "gateway"))["PROMPTOPS_MODEL_REPOSITORY"]["value"] == "/models"


def serve_options() -> set[str]:
    """Every option `promptops serve` declares (from its click command)."""
    import typer

    from promptops.cli.serve import serve

    app = typer.Typer()
    app.command("serve")(serve)
    command = typer.main.get_command(app)
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_serves_a_read_only_clone_against_tritons_grpc_service(variant):
    c = container(one(variant, "Deployment", GATEWAY), "gateway")
    command = c["command"]
    assert command[:2] == ["promptops", "serve"]
    flags = [a for a in command if a.startswith("--")]
    assert set(flags) <= serve_options(), set(flags) - serve_options()
    opt = {command[i]: command[i + 1] for i in range(2, len(command) - 1) if command[i].startswith("--")}
    store = values(variant)["gateway"]["store"]
    assert opt["--store"] == store["url"] and opt["--ref"] == store["ref"] and opt["--refresh"] == store["refresh"]
    assert opt["--host"] == "0.0.0.0" and opt["--port"] == "7070"
    assert opt["--triton-url"] == f"{TRITON}:8001"
    assert "--ui" in command  # the UI stays on
    triton_service = one(variant, "Service", TRITON)
    assert {"name": "grpc", "port": 8001} in [{k: p[k] for k in ("name", "port")} for p in triton_service["spec"]["ports"]]


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_environment_names_are_settings_the_gateway_reads(variant):
    from gateway.settings import GatewaySettings
    from promptops.config.settings import env_name

    known = {env_name(f) for f in fields(GatewaySettings)} | OTHER_PROMPTOPS_ENV
    env = env_of(container(one(variant, "Deployment", GATEWAY), "gateway"))
    names = [n for n in env if n.startswith("PROMPTOPS_")]
    assert set(names) <= known, set(names) - known
    assert env["PROMPTOPS_HOST"]["value"] == "0.0.0.0"
    assert env["PROMPTOPS_TRITON_URL"]["value"] == f"{TRITON}:8001"
    assert env["PROMPTOPS_STORE"]["value"] == values(variant)["gateway"]["store"]["url"]
    for secret in ("PROMPTOPS_ADMIN_TOKEN", "PROMPTOPS_WEBHOOK_SECRET"):
        assert "secretKeyRef" in env[secret]["valueFrom"], secret


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_answers_its_service_names_probes_and_port_forward(variant):
    c = container(one(variant, "Deployment", GATEWAY), "gateway")
    env = list(env_of(c))
    hosts = env_of(c)["PROMPTOPS_ALLOWED_HOSTS"]["value"].split(",")
    assert env.index("POD_IP") < env.index("PROMPTOPS_ALLOWED_HOSTS")  # $(POD_IP) expands only from earlier ones
    assert {"localhost", "127.0.0.1", "$(POD_IP)", GATEWAY, f"{GATEWAY}.{NAMESPACE}.svc",
            f"{GATEWAY}.{NAMESPACE}.svc.cluster.local", f"{GATEWAY}-peers"} <= set(hosts)
    assert "*" not in hosts
    if variant == "ingress":
        assert "prompts.example.com" in hosts
        assert "https://prompts.example.com" in env_of(c)["PROMPTOPS_TRUSTED_ORIGINS"]["value"].split(",")


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_probes_readyz_and_healthz_on_its_port(variant):
    c = container(one(variant, "Deployment", GATEWAY), "gateway")
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert port_number(c, get["port"]) == 7070, probe
        assert {"name": "Host", "value": "localhost"} in get["httpHeaders"], probe


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_is_locked_down_and_writes_only_to_its_empty_dirs(variant):
    deployment = one(variant, "Deployment", GATEWAY)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in (*pod["initContainers"], *pod["containers"]):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, c["name"]
        assert sc["capabilities"]["drop"] == ["ALL"], c["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    c = container(deployment, "gateway")
    writable = {m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/promptops", "/home/promptops", "/tmp"}
    assert all("emptyDir" in volumes[m["name"]] for m in c["volumeMounts"] if not m.get("readOnly"))
    env = env_of(c)
    assert env["PROMPTOPS_CLONE_DIR"]["value"].startswith("/var/lib/promptops/")
    assert env["HOME"]["value"] == "/home/promptops" and env["HF_HOME"]["value"].startswith("/home/promptops/.cache")
    assert env["PROMPTOPS_USERS_FILE"]["value"].startswith("/home/promptops/.config/")


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_drains_before_it_stops(variant):
    g = values(variant)["gateway"]
    pod = one(variant, "Deployment", GATEWAY)["spec"]["template"]["spec"]
    c = container(one(variant, "Deployment", GATEWAY), "gateway")
    delay, grace = g["drain"]["delaySeconds"], g["drain"]["graceSeconds"]
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(delay)]
    assert pod["terminationGracePeriodSeconds"] == delay + grace + 5
    env = env_of(c)
    assert env["PROMPTOPS_DRAIN_DELAY"]["value"] == str(delay) and env["PROMPTOPS_DRAIN_GRACE"]["value"] == str(grace)


def test_gateway_git_credentials_come_from_secrets():
    ssh = env_of(container(one("gpu-pool", "Deployment", GATEWAY), "gateway"))
    assert "StrictHostKeyChecking=yes" in ssh["GIT_SSH_COMMAND"]["value"]
    assert "UserKnownHostsFile=/etc/promptops/git/known_hosts" in ssh["GIT_SSH_COMMAND"]["value"]
    secret = one("gpu-pool", "Secret", f"{GATEWAY}-git")
    assert set(secret["data"]) == {"ssh-privatekey", "known_hosts"}
    https = env_of(container(one("keda", "Deployment", GATEWAY), "gateway"))
    assert https["GIT_HTTPS_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == f"{GATEWAY}-git"
    assert https["GIT_CONFIG_KEY_0"]["value"] == "credential.helper"
    assert "placeholder-token" not in render_text("keda")  # only in the Secret, base64-encoded


def test_gateway_auth_secret_is_generated_or_taken_from_an_existing_one():
    auth = one("default", "Secret", f"{GATEWAY}-auth")
    assert {"admin-token", "webhook-secret"} <= set(auth["data"])
    assert len(base64.b64decode(auth["data"]["admin-token"])) >= 32
    assert f"{GATEWAY}-auth" not in objects("ingress", "Secret")  # existingSecret: the chart makes none
    env = env_of(container(one("ingress", "Deployment", GATEWAY), "gateway"))
    assert env["PROMPTOPS_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "promptops-auth"


@pytest.mark.parametrize("variant", VARIANTS)
def test_services_select_their_pods(variant):
    gateway = pod_labels(one(variant, "Deployment", GATEWAY))
    triton = pod_labels(one(variant, "StatefulSet", TRITON))
    svc = one(variant, "Service", GATEWAY)["spec"]
    assert svc["type"] == "ClusterIP" and selects(svc["selector"], gateway) and svc["ports"][0]["port"] == 7070
    peers = one(variant, "Service", f"{GATEWAY}-peers")["spec"]
    assert peers["clusterIP"] == "None" and selects(peers["selector"], gateway)
    t = one(variant, "Service", TRITON)["spec"]
    assert t["type"] == "ClusterIP" and selects(t["selector"], triton) and not selects(t["selector"], gateway)
    assert {p["port"] for p in t["ports"]} == {8001, 8002}
    assert one(variant, "StatefulSet", TRITON)["spec"]["serviceName"] in objects(variant, "Service")


@pytest.mark.parametrize("variant", VARIANTS)
def test_only_gateway_pods_reach_tritons_grpc_port(variant):
    policy = one(variant, "NetworkPolicy", TRITON)["spec"]
    gateway = pod_labels(one(variant, "Deployment", GATEWAY))
    assert selects(policy["podSelector"]["matchLabels"], pod_labels(one(variant, "StatefulSet", TRITON)))
    assert "Ingress" in policy["policyTypes"]
    rules = policy["ingress"]
    assert all(rule.get("from") and rule.get("ports") for rule in rules)  # no rule admits everyone or every port
    grpc = [rule for rule in rules if any(p["port"] == 8001 for p in rule["ports"])]
    assert len(grpc) == 1 and [p["port"] for p in grpc[0]["ports"]] == [8001]
    (peer,) = grpc[0]["from"]
    assert set(peer) == {"podSelector"}  # same namespace only: no namespaceSelector, no ipBlock
    assert peer["podSelector"]["matchLabels"] == {k: gateway[k] for k in peer["podSelector"]["matchLabels"]}
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"
    metrics = [rule for rule in rules if any(p["port"] == 8002 for p in rule["ports"])]
    assert len(metrics) == 1 and all({"namespaceSelector", "podSelector"} == set(p) for p in metrics[0]["from"])
    assert not any(p["port"] == 8000 for rule in rules for p in rule["ports"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_both_tiers_have_disruption_budgets(variant):
    budgets = objects(variant, "PodDisruptionBudget")
    assert selects(budgets[GATEWAY]["spec"]["selector"]["matchLabels"], pod_labels(one(variant, "Deployment", GATEWAY)))
    assert selects(budgets[TRITON]["spec"]["selector"]["matchLabels"], pod_labels(one(variant, "StatefulSet", TRITON)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_gateway_hpa_scales_on_cpu_and_requests_in_flight(variant):
    hpa = one(variant, "HorizontalPodAutoscaler", GATEWAY)["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": GATEWAY}
    metrics = {m["type"]: m for m in hpa["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "promptops_requests_in_flight"
    assert "replicas" not in one(variant, "Deployment", GATEWAY)["spec"]  # the HPA owns the count


def test_keda_scales_triton_on_its_queue_to_compute_ratio():
    assert not objects("default", "ScaledObject") and not objects("default", "PrometheusRule")
    scaled = one("keda", "ScaledObject", TRITON)["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": TRITON}
    assert set(scaled) <= {"scaleTargetRef", "pollingInterval", "initialCooldownPeriod", "cooldownPeriod",
                           "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "advanced", "triggers",
                           "fallback"}
    assert scaled["minReplicaCount"] >= 1
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "prometheus"
    assert set(trigger["metadata"]) == {"serverAddress", "query", "threshold"}
    query = trigger["metadata"]["query"]
    assert re.search(r"sum\(rate\(nv_inference_queue_duration_us(\{[^}]*\})?\[1m\]\)\) / "
                     r"\(sum\(rate\(nv_inference_compute_infer_duration_us(\{[^}]*\})?\[1m\]\)\) > 0\)", query), query
    assert 'namespace="promptops"' in query  # keda.metricSelector reaches both metrics
    assert "replicas" not in one("keda", "StatefulSet", TRITON)["spec"]  # KEDA owns the count
    (group,) = one("keda", "PrometheusRule", FULLNAME)["spec"]["groups"]
    (rule,) = group["rules"]
    assert rule["record"] == "promptops:triton_queue_compute_ratio:1m" and rule["expr"] == query


def test_service_monitors_scrape_the_metrics_ports():
    monitors = objects("keda", "ServiceMonitor")
    assert set(monitors) == {GATEWAY, TRITON}
    services = objects("keda", "Service")
    for name, monitor in monitors.items():
        spec = monitor["spec"]
        matched = [s for s in services.values()
                   if selects(spec["selector"]["matchLabels"], s["metadata"]["labels"])
                   and "promptops/headless" not in s["metadata"]["labels"]]
        assert [s["metadata"]["name"] for s in matched] == [name]  # not also the headless Service
        (endpoint,) = spec["endpoints"]
        assert endpoint["port"] in {p["name"] for p in matched[0]["spec"]["ports"]}
    assert monitors[TRITON]["spec"]["endpoints"][0]["port"] == "metrics"
    # The gateway's /metrics needs a credential on a non-loopback bind.
    assert monitors[GATEWAY]["spec"]["endpoints"][0]["authorization"]["type"] == "Bearer"


def test_ingress_routes_to_the_gateway_service():
    assert not objects("default", "Ingress")
    (ingress,) = objects("ingress", "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "prompts.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": GATEWAY, "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["hosts"] == ["prompts.example.com"]
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"] == "cookie"
