"""Static checks of deploy/: compose, Dockerfile, systemd unit, Kubernetes manifests, configs.

No Docker daemon, cluster or hadolint: files are parsed and cross-checked against each other
and against the repository (paths, ports, the config's variables, the shipped rules).
"""

from __future__ import annotations

import configparser
import fnmatch
import importlib.util
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from conftest import REPO

from ingest.config import Settings, load_config
from ingest.durations import parse_duration
from ingest.errors import ConfigError
from ingest.notify import email as email_channel
from ingest.notify import webhook as webhook_channel
from ingest.notify.signing import signature
from ingest.service.app import load_rule_files

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
UNIT = DEPLOY / "ingest.service"
K8S = DEPLOY / "k8s"
INGESTERS = ("ingest-1", "ingest-2")
# Where the image keeps the shipped rules and seeds, and where they are in the repository.
IMAGE_PATHS = {"/opt/ingest/rules": REPO / "rules", "/opt/ingest/seeds": REPO / "seeds"}
SHIPPED_CHANNELS = {"ops-webhook", "analysts-email"}  # README.md, "Deploy"
ENV = {
    "INGEST_DATABASE_URL": "postgresql://ingest:pw@db.invalid:5432/ingest",
    "INGEST_WEBHOOK_URL": "http://hooks.invalid/alerts",
    "INGEST_WEBHOOK_SECRET": "s3cret",
    "SMTP_PASSWORD": "pw",
}
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


# --- loading -------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _service(name: str) -> dict[str, Any]:
    return _compose()["services"][name]


def _k8s_docs() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / resource).read_text(encoding="utf-8")) if d]
    return docs


def _k8s(kind: str) -> dict[str, Any]:
    found = [d for d in _k8s_docs() if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _pod(kind: str) -> dict[str, Any]:
    return _k8s(kind)["spec"]["template"]["spec"]


def _k8s_config_text() -> str:
    return _k8s("ConfigMap")["data"]["ingest.yaml"]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        instruction, _, args = (pending + line).partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def _final_stage() -> list[tuple[str, str]]:
    lines = _dockerfile()
    last_from = max(i for i, (ins, _) in enumerate(lines) if ins == "FROM")
    return lines[last_from:]


def _build_args(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(arg.split("=", 1) for ins, arg in stage if ins == "ARG" and "=" in arg)


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",),
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are CamelCase
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


def _load(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          env: dict[str, str] = ENV) -> Settings:
    """A deploy config, with the image's rules and seeds paths pointed at the repository."""
    for name in (*ENV, "INGEST_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for image_path, repo_path in IMAGE_PATHS.items():
        text = text.replace(image_path, repo_path.as_posix())
    path = tmp_path / "ingest.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _needed_vars(text: str) -> set[str]:
    """The variables a config's ${VAR} references need (no default; comments skipped, as
    ingest does)."""
    return {m.group(1) for line in text.splitlines() if not line.lstrip().startswith("#")
            for m in _ENV_REF.finditer(line) if m.group(2) is None}


def _port(settings: Settings) -> int:
    return int(settings.http.listen.rpartition(":")[2])


CONFIGS = {
    "compose": lambda: (DEPLOY / "compose" / "ingest.yaml").read_text(encoding="utf-8"),
    "k8s": _k8s_config_text,
}


# --- every file ----------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    """Every YAML file under deploy/ is valid YAML with at least one document."""
    files = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
    assert {p.relative_to(DEPLOY).as_posix() for p in files} >= {
        "docker-compose.yml", "compose/ingest.yaml", "k8s/kustomization.yaml",
        "k8s/deployment.yaml", "k8s/configmap.yaml", "k8s/secret.yaml", "k8s/pdb.yaml",
        "k8s/migrate-job.yaml"}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs, f"{path} holds no YAML document"


# --- docker compose ------------------------------------------------------------------------


def test_compose_starts_postgres_mailpit_and_two_ingesters() -> None:
    """The compose file has PostgreSQL 16, Mailpit, a migration step and two ingesters."""
    services = _compose()["services"]
    assert set(services) >= {"postgres", "mailpit", "migrate", *INGESTERS}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["mailpit"]["image"].startswith("axllent/mailpit")
    assert "127.0.0.1:8025:8025" in services["mailpit"]["ports"]
    assert services["migrate"]["command"] == ["db", "upgrade"]


def test_compose_builds_use_the_repository_and_the_dockerfile() -> None:
    """Each build's context is the repository root and its Dockerfile exists there."""
    built = {name: s["build"] for name, s in _compose()["services"].items() if "build" in s}
    assert set(built) >= {"migrate", *INGESTERS}
    for name, build in built.items():
        context = (COMPOSE.parent / build["context"]).resolve()
        assert context == REPO, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_compose_bind_mounts_exist() -> None:
    """Every host path a service mounts exists (relative to the compose file)."""
    mounts = 0
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source} does not exist"
                mounts += 1
    assert mounts >= 3  # the config in migrate and both ingesters


def test_compose_healthchecks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL is checked with pg_isready and each ingester on /healthz at its port."""
    port = _port(_load(CONFIGS["compose"](), tmp_path, monkeypatch))
    assert "pg_isready" in " ".join(_service("postgres")["healthcheck"]["test"])
    for name in INGESTERS:
        check = _service(name)["healthcheck"]
        assert not check.get("disable"), name
        assert f"127.0.0.1:{port}/healthz" in " ".join(check["test"]), name
        assert parse_duration(check["start_period"]) >= 60, name


def test_compose_ingesters_share_postgres_and_the_config() -> None:
    """Both ingesters wait for a healthy database and the migration, use one database URL
    and mount deploy/compose/ingest.yaml where INGEST_CONFIG points."""
    for name in INGESTERS:
        service = _service(name)
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
        assert "mailpit" in service["depends_on"]
        env = service["environment"]
        assert env["INGEST_DATABASE_URL"] == "postgresql://ingest:ingest@postgres:5432/ingest"
        assert f"./compose/ingest.yaml:{env['INGEST_CONFIG']}:ro" in service["volumes"]


def test_compose_stop_grace_exceeds_shutdown_timeout(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """docker stops an ingester only after the config's shutdown_timeout has passed."""
    settings = _load(CONFIGS["compose"](), tmp_path, monkeypatch)
    for name in INGESTERS:
        grace = parse_duration(_service(name)["stop_grace_period"])
        assert grace >= settings.shutdown_timeout + 5, name


def test_compose_ports_map_each_ingester_to_its_own_host_port(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ingest-1 and ingest-2 publish the config's HTTP port on 127.0.0.1:9464 and :9465."""
    port = _port(_load(CONFIGS["compose"](), tmp_path, monkeypatch))
    assert _service("ingest-1")["ports"] == [f"127.0.0.1:9464:{port}"]
    assert _service("ingest-2")["ports"] == [f"127.0.0.1:9465:{port}"]


def test_compose_channels_reach_services_of_the_compose_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Email goes to Mailpit's SMTP port; the default webhook URL names the sink service,
    and every ${VAR} of the config is set in the ingesters' environment."""
    services = _compose()["services"]
    text = CONFIGS["compose"]()
    env = services["ingest-1"]["environment"]
    assert _needed_vars(text) <= set(env)
    default_url = re.fullmatch(r"\$\{INGEST_WEBHOOK_URL:-(.+)\}", env["INGEST_WEBHOOK_URL"])
    assert default_url is not None
    settings = _load(text, tmp_path, monkeypatch,
                     {**ENV, "INGEST_WEBHOOK_URL": default_url.group(1)})
    email = settings.channels["analysts-email"]
    assert isinstance(email, email_channel.Settings)
    assert (email.host, email.effective_port, email.security) == ("mailpit", 1025, "none")
    hook = settings.channels["ops-webhook"]
    assert isinstance(hook, webhook_channel.Settings)
    sink_host, _, sink_port = hook.url.split("/")[2].partition(":")
    assert sink_host in services
    assert services[sink_host]["command"][-1] == sink_port


def test_webhook_sink_accepts_what_ingest_signs() -> None:
    """The compose webhook receiver verifies ingest's signatures and refuses a changed body."""
    spec = importlib.util.spec_from_file_location("webhook_sink",
                                                  DEPLOY / "compose" / "webhook_sink.py")
    assert spec is not None and spec.loader is not None
    sink = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sink)
    body = b'{"alert_id": "a1"}'
    header = signature(["new", "old"], body, int(time.time()))
    assert sink.verify("old", header, body)
    assert not sink.verify("old", header, body + b" ")
    assert not sink.verify("other", header, body)


# --- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_and_installs_the_postgres_extra() -> None:
    """A builder stage installs '.[postgres]' with the constraints; the final stage copies
    the virtual environment from it."""
    lines = _dockerfile()
    froms = [arg for ins, arg in lines if ins == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS builder")
    installs = [arg for ins, arg in lines if ins == "RUN" and "pip install" in arg]
    assert any("-c constraints.txt" in a and "'.[postgres]'" in a for a in installs)
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in _final_stage()


def test_dockerfile_checks_the_model_at_build_time() -> None:
    """The image build loads the spaCy model with the service's own loader."""
    runs = " ".join(arg for ins, arg in _final_stage() if ins == "RUN")
    assert "from ingest.nlp.pipeline import load_model" in runs


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    """The final USER is a numeric non-zero UID (Kubernetes' runAsNonRoot needs a number),
    the same one the Kubernetes pods run as."""
    stage = _final_stage()
    users = [arg for ins, arg in stage if ins == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1]
    for name, value in _build_args(stage).items():
        user = user.replace("${" + name + "}", value).replace("$" + name, value)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, user
    assert not gid or (gid.isdigit() and int(gid) > 0), user
    for kind in ("Deployment", "Job"):
        assert _pod(kind)["securityContext"]["runAsUser"] == int(uid), kind


def test_dockerfile_healthcheck_exposes_and_stops_cleanly() -> None:
    """EXPOSE 9464, a HEALTHCHECK on /healthz at that port, STOPSIGNAL SIGTERM, and the
    config path the compose and Kubernetes files mount."""
    stage = _final_stage()
    assert ("EXPOSE", "9464") in stage
    assert ("STOPSIGNAL", "SIGTERM") in stage
    checks = [arg for ins, arg in stage if ins == "HEALTHCHECK"]
    assert len(checks) == 1 and "CMD" in checks[0]
    env = " ".join(arg for ins, arg in stage if ins == "ENV")
    assert "INGEST_HEALTHCHECK_URL=http://127.0.0.1:9464/healthz" in env
    assert "INGEST_HEALTHCHECK_URL" in checks[0]
    assert "INGEST_CONFIG=/etc/ingest/ingest.yaml" in env
    assert [arg for ins, arg in stage if ins == "ENTRYPOINT"] == ['["ingest"]']


def _dockerignore() -> list[str]:
    path = REPO / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith(("#", "!"))]


def test_dockerfile_copy_sources_exist_in_the_build_context() -> None:
    """Every COPY source (not --from=) exists under the repository root and is not
    excluded by .dockerignore."""
    ignored = _dockerignore()
    copies = [arg for ins, arg in _dockerfile() if ins == "COPY"]
    sources = [src for arg in copies if not arg.startswith("--from=")
               for src in [w for w in shlex.split(arg) if not w.startswith("--")][:-1]]
    assert {"pyproject.toml", "constraints.txt", "ingest/", "rules/", "seeds/"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: not in the build context"
        parts = PurePosixPath(source).parts
        for pattern in ignored:
            assert not any(fnmatch.fnmatch("/".join(parts[:i + 1]), pattern.strip("/"))
                           for i in range(len(parts))), f"COPY {source}: .dockerignore {pattern}"


# --- systemd -------------------------------------------------------------------------------


def test_unit_is_a_notify_service_with_reload_and_restart() -> None:
    """Type=notify from the main process, SIGHUP reload, restart on failure, ingest run."""
    service = _unit()["Service"]
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert service["ExecStart"].endswith("/bin/ingest run")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["WorkingDirectory"] == "/var/lib/ingest"


def test_unit_timeouts_cover_shutdown_and_heartbeat() -> None:
    """TimeoutStopSec exceeds the default shutdown_timeout; the watchdog allows at least
    three default heartbeats."""
    service = _unit()["Service"]
    defaults = Settings()
    assert parse_duration(service["TimeoutStopSec"]) > defaults.shutdown_timeout
    assert parse_duration(service["WatchdogSec"]) >= 3 * defaults.fleet.heartbeat
    assert parse_duration(service["TimeoutStartSec"]) >= 90


def test_unit_is_hardened() -> None:
    """The sandbox: only /var/lib/ingest writable, no privileges, no capabilities."""
    service = _unit()["Service"]
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "ReadWritePaths": "/var/lib/ingest",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6", "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "LockPersonality": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "UMask": "0027",
        "User": "ingest",
    }
    assert {key: service.get(key) for key in expected} == expected


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """systemd-analyze finds no unknown key or bad value (ExecStart pointed at /bin/true,
    since the venv is not installed here)."""
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/ingest/.venv/bin/ingest run" in text
    unit = tmp_path / "ingest.service"
    unit.write_text(text.replace("/opt/ingest/.venv/bin/ingest run", "/bin/true run"),
                    encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    about_unit = [line for line in (result.stdout + result.stderr).splitlines()
                  if str(unit) in line or "ingest.service" in line]
    assert about_unit == []
    assert result.returncode == 0, result.stderr


# --- Kubernetes ----------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    """Every file kustomization.yaml lists exists, every manifest is listed, and the kinds
    the deployment needs are there."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources)
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(resources) == on_disk
    kinds = {d["kind"] for d in _k8s_docs()}
    assert kinds >= {"Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Job",
                     "Service"}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
def test_kustomize_builds_the_manifests() -> None:
    """`kubectl kustomize` (offline) renders the six objects, labelled part-of ingest."""
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert sorted(d["kind"] for d in docs) == sorted(d["kind"] for d in _k8s_docs())
    assert all(d["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ingest" for d in docs)


def _container(kind: str) -> dict[str, Any]:
    containers = _pod(kind)["containers"]
    assert len(containers) == 1
    return containers[0]


def _probe_port(container: dict[str, Any], probe: dict[str, Any]) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_deployment_probes_use_the_configured_port(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Liveness and startup ask /healthz, readiness /readyz, at the config's http.listen
    port, which Prometheus is told to scrape; startup allows two minutes for the model."""
    port = _port(_load(_k8s_config_text(), tmp_path, monkeypatch))
    container = _container("Deployment")
    paths = {name: container[name]["httpGet"]["path"]
             for name in ("livenessProbe", "readinessProbe", "startupProbe")}
    assert paths == {"livenessProbe": "/healthz", "readinessProbe": "/readyz",
                     "startupProbe": "/healthz"}
    for name in paths:
        assert _probe_port(container, container[name]) == port, name
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    annotations = _k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)


def test_deployment_replicas_grace_and_resources(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas, a grace period above shutdown_timeout and about 700 MB per pod."""
    settings = _load(_k8s_config_text(), tmp_path, monkeypatch)
    deployment = _k8s("Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = _pod("Deployment")
    assert pod["terminationGracePeriodSeconds"] >= settings.shutdown_timeout + 5
    resources = _container("Deployment")["resources"]
    assert resources["requests"]["memory"] == "768Mi"
    assert resources["limits"]["memory"] == "1Gi"
    assert settings.nlp.workers == 1  # one model copy per pod, whatever the node's cores


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_are_locked_down(kind: str) -> None:
    """Non-root, read-only root file system with emptyDirs for /var/lib/ingest and /tmp,
    no privilege escalation, no capabilities, the runtime's seccomp profile."""
    pod = _pod(kind)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    container = _container(kind)
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    for path in ("/var/lib/ingest", "/tmp"):
        assert "emptyDir" in volumes[mounts[path]], f"{kind}: {path}"


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_get_the_config_and_the_secret(kind: str) -> None:
    """INGEST_CONFIG points into the ConfigMap's mount; the Secret is the environment."""
    container = _container(kind)
    env = {e["name"]: e["value"] for e in container["env"]}
    config = PurePosixPath(env["INGEST_CONFIG"])
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in _pod(kind)["volumes"] if v["name"] == mounts[str(config.parent)])
    assert volume["configMap"]["name"] == _k8s("ConfigMap")["metadata"]["name"]
    assert config.name in _k8s("ConfigMap")["data"]
    assert [e["secretRef"]["name"] for e in container["envFrom"]] == \
        [_k8s("Secret")["metadata"]["name"]]


def test_job_migrates_with_the_deployment_image() -> None:
    """The Job runs `ingest db upgrade` with the ingesters' image, once per apply."""
    job = _container("Job")
    assert job["args"] == ["db", "upgrade"]
    assert job["image"] == _container("Deployment")["image"] == "ingest:latest"
    assert _pod("Job")["restartPolicy"] in {"OnFailure", "Never"}


def test_pdb_and_service_select_the_deployment_pods() -> None:
    """The PodDisruptionBudget (minAvailable 1) and the Service select exactly the pods of
    the Deployment, not the migration Job's."""
    deployment = _k8s("Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    pdb = _k8s("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 < deployment["spec"]["replicas"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    assert _k8s("Service")["spec"]["selector"] == selector
    job_labels = _k8s("Job")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items()


def test_secret_holds_every_variable_the_config_needs() -> None:
    """Each ${VAR} without a default and each password_env in the ConfigMap's config is a
    key of the Secret; the secret values are visibly placeholders."""
    text = _k8s_config_text()
    needed = _needed_vars(text) | set(re.findall(r"password_env:\s*([A-Za-z_][A-Za-z0-9_]*)", text))
    data = _k8s("Secret")["stringData"]
    assert needed == set(data)
    assert needed >= {"INGEST_DATABASE_URL", "INGEST_WEBHOOK_SECRET", "SMTP_PASSWORD"}
    for name in ("INGEST_DATABASE_URL", "INGEST_WEBHOOK_SECRET", "SMTP_PASSWORD"):
        assert "CHANGE-ME" in data[name], name


# --- the configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_loads_with_the_shipped_rules_and_seeds(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The config validates, lists the shipped feeds, listens on all interfaces, logs JSON,
    configures the channels the shipped rules name, and the shipped rules load with it."""
    settings = _load(CONFIGS[name](), tmp_path, monkeypatch)
    assert settings.database_url == ENV["INGEST_DATABASE_URL"]
    assert settings.rules_dir == REPO / "rules"
    assert settings.feed_files == [REPO / "seeds" / "feeds.yaml"]
    assert len(settings.all_feeds()) >= 10
    assert settings.http.enabled and settings.http.listen == "0.0.0.0:9464"
    assert settings.log.format == "json"
    assert set(settings.channels) >= SHIPPED_CHANNELS
    hook = settings.channels["ops-webhook"]
    assert isinstance(hook, webhook_channel.Settings)
    assert hook.secrets() == [ENV["INGEST_WEBHOOK_SECRET"]]
    assert isinstance(settings.channels["analysts-email"], email_channel.Settings)
    assert settings.fleet.lease >= 3 * settings.fleet.heartbeat
    _, rules = load_rule_files(settings)
    assert len(rules.rules) >= 10


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_refuses_to_start_without_its_variables(name: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing database URL or webhook secret is an error naming it, not a silent
    SQLite file or an unsigned webhook."""
    for missing in ("INGEST_DATABASE_URL", "INGEST_WEBHOOK_SECRET"):
        env = {k: v for k, v in ENV.items() if k != missing}
        with pytest.raises(ConfigError, match=missing):
            _load(CONFIGS[name](), tmp_path, monkeypatch, env)
