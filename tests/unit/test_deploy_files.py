"""The deployment files under deploy/ are well-formed and agree with each other.

No Docker engine or cluster is needed: every YAML file is parsed with ``yaml.safe_load_all`` and its
structure checked, and the Dockerfile is read instruction by instruction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from sealtrail.devstack.postgres import LEDGER_WRITE_SETTINGS
from sealtrail.infra.settings import SEALED_SEGMENT_MS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
README = DEPLOY / "README.md"

SEALTRAIL_SERVICES = {"ingest": 8081, "query": 8082, "ledger": 9101, "projector": 9102}
BACKENDS = {"kafka", "postgres"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "Job"}
EXTERNAL_SECRETS = {"sealtrail-db", "sealtrail-keys", "sealtrail-service-keys", "sealtrail-signing-keys"}
# The services that sign with their own Ed25519 key (SEALTRAIL_SERVICE_KEY_FILE): ingest its receipts,
# query its erasure receipts. Each has its own key; no other service gets one.
SERVICE_KEY_USERS = {"ingest", "query"}
SERVICE_KEYS_SECRET = "sealtrail-service-keys"

Doc = dict[str, Any]


# ---- loading ---------------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())


@cache
def _load_all(path: Path) -> tuple[Doc, ...]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return tuple(docs)


@cache
def _compose() -> Doc:
    (doc,) = _load_all(COMPOSE_FILE)
    return doc


def _services() -> dict[str, Doc]:
    services: dict[str, Doc] = _compose()["services"]
    return services


def _is_one_shot(service: Doc) -> bool:
    return str(service.get("restart", "")) == "no"


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _k8s_docs() -> list[Doc]:
    return [doc for path in _k8s_files() for doc in _load_all(path)]


def _of_kind(*kinds: str) -> list[Doc]:
    return [d for d in _k8s_docs() if d["kind"] in kinds]


def _named(kind: str, name: str) -> Doc:
    (doc,) = [d for d in _of_kind(kind) if d["metadata"]["name"] == name]
    return doc


def _pod_spec(workload: Doc) -> Doc:
    spec: Doc = workload["spec"]["template"]["spec"]
    return spec


def _containers(workload: Doc, *, init: bool = True) -> list[Doc]:
    pod = _pod_spec(workload)
    return list(pod["containers"]) + (list(pod.get("initContainers", [])) if init else [])


def _all_containers() -> Iterator[tuple[str, Doc, Doc]]:
    """(workload name, workload, container) for every container and init container."""
    for w in _of_kind(*WORKLOAD_KINDS):
        for c in _containers(w):
            yield w["metadata"]["name"], w, c


def _is_sealtrail_image(container: Doc) -> bool:
    return str(container["image"]).split(":")[0].rsplit("/", 1)[-1] == "sealtrail"


def _pod_labels() -> list[dict[str, str]]:
    return [w["spec"]["template"]["metadata"]["labels"] for w in _of_kind(*WORKLOAD_KINDS)]


def _matches_some_pod(selector: dict[str, str]) -> bool:
    return bool(selector) and any(selector.items() <= labels.items() for labels in _pod_labels())


def _env(container: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# ---- every YAML file -------------------------------------------------------------------------------


def test_every_yaml_file_under_deploy_parses_into_mappings() -> None:
    """Each YAML file under deploy/ parses with safe_load_all into one or more mappings."""
    files = _yaml_files()
    assert COMPOSE_FILE in files and K8S / "kustomization.yaml" in files
    for path in files:
        docs = _load_all(path)
        assert docs, f"{path} holds no document"
        assert all(isinstance(d, dict) for d in docs), f"{path} holds a document that is not a mapping"


# ---- compose ---------------------------------------------------------------------------------------


def test_compose_defines_the_backends_and_the_four_services() -> None:
    """compose.yaml has kafka, postgres, ingest, ledger, projector and query."""
    assert BACKENDS | SEALTRAIL_SERVICES.keys() <= _services().keys()


def test_every_long_running_compose_service_has_a_healthcheck() -> None:
    """Every compose service except one-shot jobs has an enabled healthcheck with a test command."""
    for name, svc in _services().items():
        if _is_one_shot(svc):
            assert name not in BACKENDS | SEALTRAIL_SERVICES.keys(), f"{name} must keep running"
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_every_compose_service_has_cpu_and_memory_limits() -> None:
    """Every compose service sets deploy.resources.limits for both cpus and memory."""
    for name, svc in _services().items():
        limits = svc.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= limits.keys(), f"{name} lacks cpu/memory limits"


def test_compose_depends_on_targets_exist_and_are_waited_for() -> None:
    """Every depends_on names a defined service and waits for it to be healthy (or, for a one-shot, done)."""
    services = _services()
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on must state a condition per target"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on undefined service {target}"
            wanted = "service_completed_successfully" if _is_one_shot(services[target]) else "service_healthy"
            assert spec.get("condition") == wanted, f"{name} -> {target}: condition must be {wanted}"


def test_compose_services_wait_for_their_backends_without_cycles() -> None:
    """Each Sealtrail service depends on postgres (and all but projector on kafka); depends_on is acyclic."""
    services = _services()
    for name in SEALTRAIL_SERVICES:
        deps = set(services[name].get("depends_on", {}))
        assert "postgres" in deps, f"{name} must wait for postgres"
        if name != "projector":
            assert "kafka" in deps, f"{name} must wait for kafka"

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"depends_on cycle: {' -> '.join((*path, node))}"
        for dep in services[node].get("depends_on", {}):
            visit(dep, (*path, node))

    for name in services:
        visit(name, ())


def _host_ips(port: str | int | Doc) -> str | None:
    if isinstance(port, dict):
        return port.get("host_ip")
    parts = str(port).split(":")
    return parts[0] if len(parts) == 3 else None


def test_compose_ports_are_published_on_loopback_only() -> None:
    """Every published port binds 127.0.0.1, and each Sealtrail service publishes its default port."""
    for name, svc in _services().items():
        for port in svc.get("ports", []):
            assert _host_ips(port) == "127.0.0.1", f"{name} publishes {port!r} beyond 127.0.0.1"
    for name, number in SEALTRAIL_SERVICES.items():
        assert f"127.0.0.1:{number}:{number}" in _services()[name].get("ports", []), name


def test_compose_sealtrail_services_listen_and_are_checked_on_their_port() -> None:
    """Each Sealtrail service gets its port, binds all interfaces, and is health-checked on /readyz there."""
    for name, number in SEALTRAIL_SERVICES.items():
        svc = _services()[name]
        command = svc["command"]
        assert command[0] == name
        assert command[command.index("--port") + 1] == str(number)
        assert command[command.index("--host") + 1] == "0.0.0.0"
        assert f"http://127.0.0.1:{number}/readyz" in " ".join(svc["healthcheck"]["test"])


def test_compose_sealtrail_services_are_built_unprivileged_and_restart() -> None:
    """The four services build from deploy/Dockerfile, run read-only, unprivileged, and restart."""
    for name in SEALTRAIL_SERVICES:
        svc = _services()[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        build = svc["build"]
        assert (COMPOSE_FILE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
        assert str(svc["user"]).split(":")[0] not in {"0", "root"}
        assert "no-new-privileges:true" in svc["security_opt"]
        assert svc["restart"] in {"always", "unless-stopped", "on-failure"}


def test_compose_secrets_are_defined_and_kek_comes_from_a_file() -> None:
    """Services mount only declared secrets; the KEK is a file, mounted where SEALTRAIL_KEK_FILE says."""
    declared = _compose()["secrets"]
    assert "file" in declared["kek"]
    kek_users = set()
    for name, svc in _services().items():
        mounted = {s if isinstance(s, str) else s["source"] for s in svc.get("secrets", [])}
        assert mounted <= declared.keys(), f"{name} mounts undeclared secrets {mounted - declared.keys()}"
        kek_file = svc.get("environment", {}).get("SEALTRAIL_KEK_FILE")
        if kek_file is not None:
            assert kek_file.removeprefix("/run/secrets/") in mounted, f"{name}: {kek_file} is not mounted"
            kek_users.add(name)
    assert kek_users == {"ingest", "query"}


def _compose_secret_mounts(svc: Doc) -> dict[str, str]:
    """Mount path -> secret name for each secret a compose service mounts."""
    mounts = {}
    for s in svc.get("secrets", []):
        source = s if isinstance(s, str) else s["source"]
        target = source if isinstance(s, str) else s.get("target", source)
        mounts[target if target.startswith("/") else f"/run/secrets/{target}"] = source
    return mounts


def test_compose_service_keys_are_own_files_mounted_where_service_key_file_says() -> None:
    """ingest and query each read SEALTRAIL_SERVICE_KEY_FILE from their own file-backed secret; no other
    service has a service key setting or mounts a service key."""
    declared = _compose()["secrets"]
    key_secrets: dict[str, str] = {}
    for name, svc in _services().items():
        mounts = _compose_secret_mounts(svc)
        key_file = svc.get("environment", {}).get("SEALTRAIL_SERVICE_KEY_FILE")
        if name not in SERVICE_KEY_USERS:
            assert key_file is None, f"{name} is given a service key it does not need"
            continue
        assert key_file, f"{name} has no SEALTRAIL_SERVICE_KEY_FILE and would not start"
        assert key_file in mounts, f"{name}: {key_file} is not a mounted secret"
        secret = mounts[key_file]
        assert "file" in declared[secret], f"{name}: service key secret {secret} must come from a file"
        key_secrets[name] = secret
    assert len(set(key_secrets.values())) == len(SERVICE_KEY_USERS), "ingest and query must not share a key"
    assert not {"kek", "db_password"} & set(key_secrets.values())
    for name, svc in _services().items():
        held = set(_compose_secret_mounts(svc).values()) & set(key_secrets.values())
        own = {key_secrets[name]} if name in key_secrets else set()
        assert held == own, f"{name} mounts service keys {held - own} that are not its own"


def test_compose_backends_are_kraft_kafka_and_postgres_16_with_volumes() -> None:
    """kafka is apache/kafka:3.9.1 in KRaft combined mode, postgres is 16 with pg_isready; both keep data."""
    kafka, postgres = _services()["kafka"], _services()["postgres"]
    assert kafka["image"] == "apache/kafka:3.9.1"
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    named = _compose()["volumes"].keys()
    for svc in (kafka, postgres):
        assert any(str(v).split(":")[0] in named for v in svc["volumes"])


# ---- Kubernetes ------------------------------------------------------------------------------------


def test_every_k8s_document_has_api_version_kind_and_name() -> None:
    """Every manifest document states apiVersion, kind and metadata.name."""
    docs = _k8s_docs()
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind"), doc
        assert doc.get("metadata", {}).get("name"), f"a {doc['kind']} has no metadata.name"


def test_kustomization_lists_exactly_the_manifest_files() -> None:
    """kustomization.yaml's resources are exactly the other YAML files in deploy/k8s, each once."""
    (kustomization,) = _load_all(K8S / "kustomization.yaml")
    resources = kustomization["resources"]
    assert len(resources) == len(set(resources))
    assert set(resources) == {p.name for p in _k8s_files()}


def test_all_namespaced_objects_live_in_the_sealtrail_namespace() -> None:
    """The Namespace sealtrail is defined and every other object (and kustomize) targets it."""
    assert _named("Namespace", "sealtrail")
    (kustomization,) = _load_all(K8S / "kustomization.yaml")
    assert kustomization["namespace"] == "sealtrail"
    for doc in _k8s_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "sealtrail", doc["metadata"]["name"]


def test_sealtrail_deployments_have_the_planned_replicas() -> None:
    """ingest and query run 2 replicas, ledger and projector 1."""
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in _of_kind("Deployment")}
    assert replicas == {"ingest": 2, "query": 2, "ledger": 1, "projector": 1}


def test_workload_selectors_match_their_own_pod_labels() -> None:
    """Each Deployment's and StatefulSet's selector matches its pod template labels."""
    for w in _of_kind("Deployment", "StatefulSet"):
        selector = w["spec"]["selector"]["matchLabels"]
        assert selector and selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()


def test_every_workload_container_has_requests_and_limits() -> None:
    """Every container and init container sets cpu and memory requests and limits."""
    for name, _, c in _all_containers():
        resources = c.get("resources", {})
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources.get(part, {}).keys(), f"{name}/{c['name']} lacks {part}"


def test_every_workload_runs_non_root_without_capabilities() -> None:
    """Every pod runs non-root under RuntimeDefault seccomp; each container drops ALL and cannot escalate."""
    for name, w, c in _all_containers():
        pod_ctx = _pod_spec(w).get("securityContext", {})
        ctx = c.get("securityContext", {})
        assert ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is True, f"{name}/{c['name']}"
        assert ctx.get("runAsUser", pod_ctx.get("runAsUser", 1)) != 0, f"{name}/{c['name']} runs as root"
        assert ctx.get("allowPrivilegeEscalation") is False, f"{name}/{c['name']}"
        assert "ALL" in ctx.get("capabilities", {}).get("drop", []), f"{name}/{c['name']}"
        assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        assert _pod_spec(w).get("automountServiceAccountToken") is False, name


def _probe_port(probe: Doc, container: Doc) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    return int(number)


def test_sealtrail_containers_probe_healthz_and_readyz_on_their_port() -> None:
    """Each Sealtrail service container probes /healthz (liveness) and /readyz (readiness) on its own port."""
    seen = set()
    for w in _of_kind("Deployment"):
        (c,) = _containers(w, init=False)
        assert _is_sealtrail_image(c)
        name = c["args"][0]
        number = SEALTRAIL_SERVICES[name]
        assert c["args"][c["args"].index("--port") + 1] == str(number)
        for kind, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            probe = c.get(kind)
            assert probe, f"{name} has no {kind}"
            assert probe["httpGet"]["path"] == path and _probe_port(probe, c) == number, f"{name} {kind}"
        seen.add(name)
    assert seen == SEALTRAIL_SERVICES.keys()


def test_sealtrail_containers_have_a_read_only_root_filesystem() -> None:
    """Every container of the Sealtrail image, init containers included, has readOnlyRootFilesystem."""
    sealtrail = [(n, c) for n, _, c in _all_containers() if _is_sealtrail_image(c)]
    assert len(sealtrail) >= len(SEALTRAIL_SERVICES)
    for name, c in sealtrail:
        assert c["securityContext"].get("readOnlyRootFilesystem") is True, f"{name}/{c['name']}"


def test_every_volume_mount_names_a_declared_volume() -> None:
    """Each volumeMount refers to a pod volume or a volumeClaimTemplate of its workload."""
    for name, w, c in _all_containers():
        declared = {v["name"] for v in _pod_spec(w).get("volumes", [])}
        declared |= {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
        for mount in c.get("volumeMounts", []):
            assert mount["name"] in declared, f"{name}/{c['name']} mounts undeclared {mount['name']}"


def test_every_service_selector_matches_a_workload_and_its_ports() -> None:
    """Each Service selects some Deployment's or StatefulSet's pods, and its named targetPorts exist there."""
    for svc in _of_kind("Service"):
        selector = svc["spec"]["selector"]
        owners = [w for w in _of_kind("Deployment", "StatefulSet")
                  if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()]
        assert owners, f"Service {svc['metadata']['name']} selects no workload"
        port_names = {p.get("name") for w in owners for c in _containers(w) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert isinstance(target, int) or target in port_names, f"{svc['metadata']['name']}: {target}"
    assert {"ingest", "query"} <= {s["metadata"]["name"] for s in _of_kind("Service")}


def test_disruption_budgets_and_network_policies_select_real_pods() -> None:
    """PodDisruptionBudgets cover ingest and query; every PDB and NetworkPolicy selector matches some pods."""
    pdbs = _of_kind("PodDisruptionBudget")
    for pdb in pdbs:
        assert _matches_some_pod(pdb["spec"]["selector"]["matchLabels"]), pdb["metadata"]["name"]
    covered = {pdb["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/component") for pdb in pdbs}
    assert {"ingest", "query"} <= covered
    for policy in _of_kind("NetworkPolicy"):
        assert _matches_some_pod(policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"]["ingress"]:
            for peer in rule["from"]:
                assert _matches_some_pod(peer["podSelector"]["matchLabels"]), policy["metadata"]["name"]


def _secret_refs(w: Doc) -> set[str]:
    pod = _pod_spec(w)
    names = {v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v}
    for c in _containers(w):
        for value in _env(c).values():
            if isinstance(value, dict) and "secretKeyRef" in value:
                names.add(value["secretKeyRef"]["name"])
    return names


def test_secrets_are_referenced_never_defined_and_documented() -> None:
    """No Secret is defined in the manifests; the three referenced ones are each documented in the README."""
    assert not _of_kind("Secret")
    referenced = set().union(*(_secret_refs(w) for w in _of_kind(*WORKLOAD_KINDS)))
    assert referenced == EXTERNAL_SECRETS
    readme = README.read_text()
    for name in EXTERNAL_SECRETS:
        assert f"create secret generic {name}" in readme, f"README does not say how to create {name}"


def test_keys_reach_only_the_services_that_need_them() -> None:
    """The KEK Secret is mounted by ingest and query only; the signing keys by the ledger only."""
    users: dict[str, set[str]] = {}
    for w in _of_kind(*WORKLOAD_KINDS):
        for secret in _secret_refs(w):
            users.setdefault(secret, set()).add(w["metadata"]["name"])
    assert users["sealtrail-keys"] == {"ingest", "query"}
    assert users["sealtrail-signing-keys"] == {"ledger"}
    assert users[SERVICE_KEYS_SECRET] == SERVICE_KEY_USERS
    for w in _of_kind(*WORKLOAD_KINDS):
        name = w["metadata"]["name"]
        projected = [v["secret"] for v in _pod_spec(w).get("volumes", [])
                     if v.get("secret", {}).get("secretName") == SERVICE_KEYS_SECRET]
        # Without `items` a Secret volume projects every key, the other service's included.
        assert all(v.get("items") for v in projected), f"{name} projects all of {SERVICE_KEYS_SECRET}"
        keys = {item["key"] for v in projected for item in v["items"]}
        assert keys == ({f"{name}.key"} if name in SERVICE_KEY_USERS else set()), f"{name} gets {keys}"
        for c in _containers(w):
            if "SEALTRAIL_SERVICE_KEY_FILE" in _env(c):
                assert name in SERVICE_KEY_USERS, f"{name}/{c['name']} is given a service key setting"


def _mount_of(container: Doc, path: str) -> Doc | None:
    """The volumeMount of ``container`` under which ``path`` lies."""
    for mount in container.get("volumeMounts", []):
        if path.startswith(mount["mountPath"].rstrip("/") + "/"):
            return dict(mount)
    return None


def test_ingest_and_query_read_their_service_key_from_the_secret() -> None:
    """SEALTRAIL_SERVICE_KEY_FILE names a file that an init container copies with mode 0400 from this
    service's own entry of the service keys Secret into the in-memory key volume, mounted read-only."""
    for name in SERVICE_KEY_USERS:
        w = _named("Deployment", name)
        pod = _pod_spec(w)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        (c,) = _containers(w, init=False)
        key_file = _env(c).get("SEALTRAIL_SERVICE_KEY_FILE")
        assert isinstance(key_file, str) and key_file, f"{name} has no SEALTRAIL_SERVICE_KEY_FILE"
        mount = _mount_of(c, key_file)
        assert mount and mount.get("readOnly") is True, f"{name}: {key_file} is not on a read-only mount"
        assert volumes[mount["name"]].get("emptyDir", {}).get("medium") == "Memory", name
        installers = [i for i in pod.get("initContainers", []) if (i.get("command") or [])[-1:] == [key_file]]
        assert len(installers) == 1, f"{name}: no init container writes {key_file}"
        (init,) = installers
        command = init["command"]
        assert command[:3] == ["install", "-m", "0400"], f"{name}: {init['name']} must install with 0400"
        source = command[-2]
        src_mount = _mount_of(init, source)
        assert src_mount, f"{name}: {init['name']} reads {source} from no volume"
        secret = volumes[src_mount["name"]].get("secret", {})
        assert secret.get("secretName") == SERVICE_KEYS_SECRET, f"{name}: {source} is not from the Secret"
        relative = source[len(src_mount["mountPath"].rstrip("/")) + 1:]
        assert {"key": f"{name}.key", "path": relative} in secret.get("items", []), name
        dst_mount = _mount_of(init, key_file)
        assert dst_mount and dst_mount["name"] == mount["name"] and not dst_mount.get("readOnly"), name


def test_config_map_references_exist() -> None:
    """Every envFrom configMapRef names a ConfigMap defined in the manifests."""
    maps = {m["metadata"]["name"] for m in _of_kind("ConfigMap")}
    for name, _, c in _all_containers():
        for source in c.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in maps, name


def test_kafka_statefulset_is_three_node_kraft_with_durable_replication() -> None:
    """Kafka runs 3 KRaft combined nodes, replication factor 3, min.insync.replicas 2, with own volumes."""
    kafka = _named("StatefulSet", "kafka")
    assert kafka["spec"]["replicas"] == 3 and kafka["spec"]["volumeClaimTemplates"]
    (c,) = _containers(kafka)
    env = _env(c)
    assert c["image"] == "apache/kafka:3.9.1"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    voters = re.findall(r"(\d)@kafka-(\d)\.", c["args"][0])
    assert sorted(voters) == [(str(i), str(i)) for i in range(3)], "one quorum voter per pod ordinal"


def test_postgres_statefulset_keeps_data_on_a_claim() -> None:
    """PostgreSQL 16 runs as a StatefulSet whose data directory is a volumeClaimTemplate."""
    pg = _named("StatefulSet", "postgres")
    (c,) = _containers(pg)
    assert c["image"].startswith("postgres:16")
    claims = {t["metadata"]["name"] for t in pg["spec"]["volumeClaimTemplates"]}
    data = [m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/postgresql/data"]
    assert data and data[0]["name"] in claims


def _server_settings(command: list[str]) -> tuple[str, ...]:
    assert command[0] == "postgres", command
    flags, values = command[1::2], command[2::2]
    assert set(flags) == {"-c"} and len(flags) == len(values), command
    return tuple(values)


def test_postgres_runs_with_the_ledgers_write_settings_everywhere() -> None:
    """compose and the StatefulSet start PostgreSQL with the settings the benchmarks and tests use
    for the ledger's write load (sealtrail.devstack.postgres.LEDGER_WRITE_SETTINGS)."""
    (c,) = _containers(_named("StatefulSet", "postgres"))
    assert _server_settings(c["args"]) == LEDGER_WRITE_SETTINGS
    assert _server_settings(_services()["postgres"]["command"]) == LEDGER_WRITE_SETTINGS


def test_sealtrail_config_uses_production_topic_replication() -> None:
    """The ConfigMap asks the services for replication 3 and min.insync.replicas 2."""
    data = _named("ConfigMap", "sealtrail-config")["data"]
    assert data["SEALTRAIL_TOPIC_REPLICATION"] == "3" and data["SEALTRAIL_TOPIC_MIN_INSYNC"] == "2"
    assert data["SEALTRAIL_TOPIC_PARTITIONS"] == "12"


# ---- topics: the Job, compose and the README agree -----------------------------------------------


def _topic_lines(script: str) -> dict[str, tuple[int, int]]:
    found = re.findall(r"^\s*(sealtrail\.[a-z]+) (\d+) (-?\d+) \d+\s*$", script, flags=re.MULTILINE)
    return {name: (int(partitions), int(retention)) for name, partitions, retention in found}


def _segment_ms(script: str, topic: str) -> int:
    (found,) = re.findall(rf"^\s*{re.escape(topic)} \d+ -?\d+ (\d+)\s*$", script, flags=re.MULTILINE)
    return int(found)


def _readme_topics() -> dict[str, tuple[int, int, int, int]]:
    rows = re.findall(r"^\| `(sealtrail\.[a-z]+)` \| (\d+) \| (\d+) \| (\d+) \|.*retention\.ms=(-?\d+)",
                      README.read_text(), flags=re.MULTILINE)
    return {n: (int(p), int(r), int(m), int(ret)) for n, p, r, m, ret in rows}


def test_topic_settings_agree_between_job_compose_and_readme() -> None:
    """The topics Job, the compose topics service and the README table agree on partitions and retention."""
    readme = _readme_topics()
    assert readme["sealtrail.sealed"] == (12, 3, 2, 7 * 24 * 3600 * 1000)
    assert readme.keys() == {"sealtrail.sealed", "sealtrail.checkpoints", "sealtrail.dlq"}
    (job_container,) = _containers(_named("Job", "kafka-topics"))
    job = _topic_lines(job_container["args"][0])
    compose = _topic_lines(_services()["kafka-topics"]["command"][0])
    expected = {name: (p, ret) for name, (p, _, _, ret) in readme.items()}
    assert job == expected and compose == expected
    for script in (job_container["args"][0], _services()["kafka-topics"]["command"][0]):
        assert _segment_ms(script, "sealtrail.sealed") == SEALED_SEGMENT_MS  # as the services create it
        assert "segment.ms=$" in script
    assert "--replication-factor 3" in job_container["args"][0]
    assert "min.insync.replicas=2" in job_container["args"][0]


# ---- Dockerfile ------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in logical]


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def test_dockerfile_is_multi_stage_on_python_311_slim_installing_server_extras() -> None:
    """Two or more stages from python:3.11-slim, and the build installs the .[server] extras."""
    steps = _instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert len(froms) >= 2
    assert ("ARG", "PYTHON_IMAGE=python:3.11-slim") in steps
    assert all(f.split()[0] in {"${PYTHON_IMAGE}", "python:3.11-slim"} for f in froms)
    assert any(op == "RUN" and '".[server]"' in args for op, args in steps)
    assert any(op == "COPY" and args.startswith("--from=") for op, args in _final_stage())


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    """The final stage ends with a numeric, non-zero USER, so runAsNonRoot can verify it."""
    users = [args for op, args in _final_stage() if op == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_dockerfile_entrypoint_is_the_sealtrail_command() -> None:
    """The final stage's ENTRYPOINT is exec-form ["sealtrail"]."""
    entrypoints = [args for op, args in _final_stage() if op == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["sealtrail"]


def test_dockerfile_bakes_in_no_secret() -> None:
    """No ENV or ARG names a key, password or URL, and only the package sources are copied in."""
    secretish = re.compile(r"KEK|PASSWORD|SECRET|TOKEN|DATABASE_URL|KEY_FILE|SIGNING", re.IGNORECASE)
    for op, args in _instructions():
        if op in {"ENV", "ARG"}:
            assert not secretish.search(args), f"{op} {args}"
        if op == "COPY" and not args.startswith("--from="):
            sources = args.split()[:-1]
            assert set(sources) <= {"pyproject.toml", "README.md", "sealtrail", "services"}, args


@pytest.mark.parametrize("name", sorted(SEALTRAIL_SERVICES))
def test_readme_documents_each_service_command(name: str) -> None:
    """deploy/README.md shows how each service is started, with its port."""
    number = SEALTRAIL_SERVICES[name]
    assert f"`sealtrail {name} --host 0.0.0.0 --port {number}`" in README.read_text()
