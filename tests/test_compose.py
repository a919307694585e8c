"""docker-compose.yml, the Dockerfile and .env.example agree with settings.py and with each other.

No Docker needed: the files are read and cross-checked, so a renamed setting, a moved port or a search
attribute added in code but not in the stack fails here instead of in a deployment.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from settings import Settings
from workflows.models import SEARCH_ATTRIBUTE_TYPES

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "temporal-postgres", "temporal", "temporal-setup", "temporal-ui", "worker", "api"}
APP_SERVICES = ("api", "worker")
DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
SETTING_NAMES = {name.upper() for name in Settings.model_fields}
TEMPORAL_PORT = 7233

_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}")
_ENV_LINE = re.compile(r"^(?P<commented>#\s?)?(?P<name>[A-Z][A-Z0-9_]*)=")


def resolve(value: Any) -> str:
    """A compose value as compose would see it with no variables set: `${X:-d}` becomes `d`."""
    return _INTERPOLATION.sub(lambda m: m.group("default") or "", str(value))


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: {"condition": "service_started"} for name in deps}
    return {name: (spec or {"condition": "service_started"}) for name, spec in deps.items()}


def container_ports(service: dict[str, Any]) -> list[int]:
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(resolve(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def dockerfile_cmd() -> list[str]:
    cmds = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD ")]
    assert cmds, "the Dockerfile has no CMD"
    cmd = json.loads(cmds[-1][len("CMD ") :])
    assert isinstance(cmd, list), "CMD must be the exec (JSON) form so uvicorn gets the signals"
    return cmd


def flag(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def env_example_lines() -> dict[str, bool]:
    """Each variable of .env.example, and whether its line is commented out."""
    found: dict[str, bool] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = _ENV_LINE.match(line)
        if match:
            name = match.group("name")
            assert name not in found, f"{name} is listed twice in .env.example"
            found[name] = bool(match.group("commented"))
    return found


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def temporal_services(services: dict[str, dict[str, Any]]) -> set[str]:
    return {
        name
        for name, svc in services.items()
        if str(svc.get("image", "")).startswith(("temporalio/auto-setup:", "temporalio/server:"))
    }


def test_the_stack_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert SERVICES <= set(services), f"missing: {SERVICES - set(services)}"


def test_third_party_images_are_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        if "build" in svc:
            continue
        image = str(svc["image"])
        assert ":" in image and not image.endswith(":latest"), f"{name} image {image} is not pinned"


def test_app_services_set_only_real_settings(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - SETTING_NAMES
        assert not unknown, f"{name} sets {sorted(unknown)}, which settings.Settings does not read"


def test_app_services_read_the_env_file_but_not_required(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        entries = services[name].get("env_file")
        assert entries, f"{name} has no env_file"
        entries = entries if isinstance(entries, list) else [entries]
        dotenv = [e for e in entries if (e["path"] if isinstance(e, dict) else e) == ".env"]
        assert dotenv, f"{name} does not read .env"
        assert isinstance(dotenv[0], dict) and dotenv[0].get("required") is False, (
            f"{name}: a missing .env must not stop the stack"
        )


def test_api_port_matches_the_image_command(services: dict[str, dict[str, Any]]) -> None:
    cmd = dockerfile_cmd()
    assert cmd[:3] == ["uvicorn", "--factory", "api.main:serve"]
    port = int(flag(cmd, "--port"))
    assert port == 8000
    assert flag(cmd, "--host") == "0.0.0.0"
    api = services["api"]
    assert "command" not in api, "the api runs the image's CMD"
    published = container_ports(api)
    assert published, "the api publishes no port"
    assert all(p == port for p in published), f"api publishes {published}, uvicorn listens on {port}"
    assert any("${API_PORT:-8000}" in str(p) for p in api["ports"]), "the host port follows API_PORT"
    assert int(environment(api)["API_PORT"]) == port


def test_api_healthcheck_asks_healthz_on_the_same_port(services: dict[str, dict[str, Any]]) -> None:
    test = services["api"]["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    port = int(flag(dockerfile_cmd(), "--port"))
    assert f"http://localhost:{port}/healthz" in text
    assert "curl" not in text and "wget" not in text, "python:3.11-slim has neither"


def test_worker_runs_the_worker_module(services: dict[str, dict[str, Any]]) -> None:
    command = services["worker"]["command"]
    args = command if isinstance(command, list) else shlex.split(command)
    assert args == ["python", "-m", "worker"]
    assert services["worker"].get("build") == services["api"].get("build"), "one image for both"
    assert not services["worker"].get("ports"), "the worker serves nothing"


def test_dockerfile_builds_the_project_as_a_non_root_user() -> None:
    text = DOCKERFILE.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    assert re.search(r"^RUN pip install \.$", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


def test_dockerignore_keeps_local_state_out() -> None:
    entries = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".venv", ".data", ".git", ".env"):
        assert needed in entries, f".dockerignore lacks {needed}"


def test_everything_talks_to_the_temporal_service(services: dict[str, dict[str, Any]]) -> None:
    servers = temporal_services(services)
    assert servers == {"temporal"}
    for name in ("temporal-ui", "temporal-setup", *APP_SERVICES):
        address = environment(services[name]).get("TEMPORAL_ADDRESS")
        assert address, f"{name} has no TEMPORAL_ADDRESS"
        assert host_port(address) == ("temporal", TEMPORAL_PORT), f"{name}: {address}"
    health = services["temporal"]["healthcheck"]["test"]
    health_text = health if isinstance(health, str) else " ".join(health)
    assert "operator cluster health" in health_text
    assert f"--address temporal:{TEMPORAL_PORT}" in health_text


def test_one_namespace_everywhere(services: dict[str, dict[str, Any]]) -> None:
    values = {
        "temporal DEFAULT_NAMESPACE": environment(services["temporal"])["DEFAULT_NAMESPACE"],
        "temporal-setup": environment(services["temporal-setup"])["TEMPORAL_NAMESPACE"],
        "temporal-ui": environment(services["temporal-ui"])["TEMPORAL_DEFAULT_NAMESPACE"],
        **{name: environment(services[name])["TEMPORAL_NAMESPACE"] for name in APP_SERVICES},
    }
    assert len(set(values.values())) == 1, values
    assert resolve(next(iter(values.values()))) == Settings.model_fields["temporal_namespace"].default


def test_temporal_persists_on_its_own_postgres(services: dict[str, dict[str, Any]]) -> None:
    temporal = environment(services["temporal"])
    db = environment(services["temporal-postgres"])
    assert temporal["DB"] == "postgres12"
    assert temporal["POSTGRES_SEEDS"] == "temporal-postgres"
    assert temporal["DB_PORT"] == "5432"
    assert temporal["POSTGRES_USER"] == db["POSTGRES_USER"]
    assert temporal["POSTGRES_PWD"] == db["POSTGRES_PASSWORD"]
    assert depends_on(services["temporal"])["temporal-postgres"]["condition"] == "service_healthy"


def test_databases_have_separate_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    mounts = {}
    for name in ("postgres", "temporal-postgres"):
        assert "pg_isready" in " ".join(services[name]["healthcheck"]["test"])
        (volume,) = [
            v.split(":")[0] for v in services[name]["volumes"] if v.endswith("/var/lib/postgresql/data")
        ]
        assert volume in (compose.get("volumes") or {}), f"{name}: {volume} is not a named volume"
        mounts[name] = volume
    assert mounts["postgres"] != mounts["temporal-postgres"]


def test_database_url_points_at_the_postgres_service(services: dict[str, dict[str, Any]]) -> None:
    db = environment(services["postgres"])
    for name in APP_SERVICES:
        url = urlsplit(environment(services[name])["DATABASE_URL"])
        assert url.scheme in {"postgresql", "postgres"}
        assert url.hostname == "postgres", f"{name}: DATABASE_URL host is {url.hostname}"
        assert url.port == 5432
        assert url.username == db["POSTGRES_USER"]
        assert url.password == db["POSTGRES_PASSWORD"]
        assert url.path.lstrip("/") == db["POSTGRES_DB"]


def test_depends_on_conditions_are_valid(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for target, spec in depends_on(svc).items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec.get("condition", "service_started")
            assert condition in DEPENDS_ON_CONDITIONS, f"{name} -> {target}: {condition}"
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck for {name}"
            if condition == "service_completed_successfully":
                assert services[target].get("restart", "no") == "no", f"{target} must be one-shot"


def test_app_waits_for_its_dependencies(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        deps = depends_on(services[name])
        assert deps["postgres"]["condition"] == "service_healthy"
        assert deps["temporal"]["condition"] == "service_healthy"
        assert deps["temporal-setup"]["condition"] == "service_completed_successfully"


def test_setup_registers_the_search_attributes_of_the_code(services: dict[str, dict[str, Any]]) -> None:
    setup = services["temporal-setup"]
    assert str(setup["image"]).startswith("temporalio/admin-tools:")
    pairs = environment(setup)["REMINDER_SEARCH_ATTRIBUTES"].split()
    registered = dict(pair.split("=", 1) for pair in pairs)
    assert len(registered) == len(pairs)
    assert registered == SEARCH_ATTRIBUTE_TYPES
    script = " ".join(setup["command"]) if isinstance(setup["command"], list) else setup["command"]
    assert "temporal operator search-attribute create" in script
    assert "$$REMINDER_SEARCH_ATTRIBUTES" in script
    assert "already exists" in script


def test_env_example_lists_exactly_the_settings() -> None:
    listed = set(env_example_lines())
    assert not SETTING_NAMES - listed, f".env.example lacks {sorted(SETTING_NAMES - listed)}"
    assert not listed - SETTING_NAMES, f".env.example lists unknown {sorted(listed - SETTING_NAMES)}"


def test_env_example_comments_out_exactly_the_unset_settings() -> None:
    lines = env_example_lines()
    for name, field in Settings.model_fields.items():
        unset = field.default is None
        assert name.upper() in lines, f".env.example lacks {name.upper()}"
        assert lines[name.upper()] == unset, (
            f"{name.upper()} should be {'commented out' if unset else 'set to its default'}"
        )


def test_env_example_values_are_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
    from_example = Settings(_env_file=ENV_EXAMPLE)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert from_example.model_dump() == defaults.model_dump()
