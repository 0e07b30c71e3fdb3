"""docker-compose.yml, Dockerfile and .env.example, checked without a Docker engine."""

from __future__ import annotations

import os
import re
import shlex
import subprocess

import pytest
from temporalio.common import SearchAttributeIndexedValueType

from journeys.cli import build_parser
from journeys.config import Settings
from journeys.domain import search
from journeys.settings_doc import env_name
from tests.ops import compose
from tests.ops.compose import ROOT

APP_SERVICES = ("migrate", "api", "worker")

# Who waits for whom, and for what: the order issue 5 asks for.
EXPECTED_START_ORDER = {
    "postgresql": {},
    "temporal-schema": {"postgresql": "service_healthy"},
    "temporal": {"temporal-schema": "service_completed_successfully"},
    "temporal-namespace": {"temporal": "service_healthy"},
    "temporal-ui": {"temporal": "service_healthy"},
    "migrate": {"postgresql": "service_healthy"},
    "api": {
        "migrate": "service_completed_successfully",
        "temporal-namespace": "service_completed_successfully",
    },
    "worker": {
        "migrate": "service_completed_successfully",
        "temporal-namespace": "service_completed_successfully",
    },
    "mailpit": {},
}

# An exact version: 17.6, 1.30.1, v1.22.3 (not `latest`, not a bare major like `17`).
PINNED_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?([-.][\w.]+)?$")


@pytest.fixture(scope="module")
def services() -> dict:
    return compose.load()["services"]


def settings_env_names() -> set[str]:
    return {env_name(name) for name in Settings.model_fields}


def test_services_are_the_reference_topology(services: dict) -> None:
    assert set(services) == set(EXPECTED_START_ORDER)


def test_every_service_has_a_pinned_image_or_is_built_here(services: dict) -> None:
    for name, service in services.items():
        if "build" in service:
            assert service["build"]["dockerfile"] == "Dockerfile", name
            assert (ROOT / service["build"]["context"] / "Dockerfile").exists(), name
            continue
        image = service.get("image", "")
        repository, _, tag = image.rpartition(":")
        assert repository and PINNED_TAG.match(tag), f"{name}: image {image!r} is not pinned"


def test_temporal_images_follow_one_server_version(services: dict) -> None:
    # The schema tools must match the server they prepare the database for.
    server = services["temporal"]["image"].rpartition(":")[2]
    assert services["temporal-schema"]["image"] == f"temporalio/admin-tools:{server}"
    assert services["temporal-namespace"]["image"] == f"temporalio/admin-tools:{server}"


def test_start_order_follows_depends_on_conditions(services: dict) -> None:
    actual = {name: compose.depends_on(service) for name, service in services.items()}
    assert actual == EXPECTED_START_ORDER


def test_one_shot_jobs_are_not_restarted_and_long_running_services_are(services: dict) -> None:
    for name in ("temporal-schema", "temporal-namespace", "migrate"):
        assert services[name]["restart"] == "no", name
    for name in ("postgresql", "temporal", "temporal-ui", "api", "worker", "mailpit"):
        assert services[name]["restart"] == "unless-stopped", name


def test_services_that_others_wait_for_healthy_have_healthchecks(services: dict) -> None:
    awaited = {
        dep
        for deps in EXPECTED_START_ORDER.values()
        for dep, condition in deps.items()
        if condition == "service_healthy"
    }
    for name in awaited | {"api", "worker"}:
        assert services[name]["healthcheck"]["test"], name
    assert "7233" in services["temporal"]["healthcheck"]["test"]


def test_search_attributes_registered_by_compose_are_the_ones_the_code_uses(
    services: dict,
) -> None:
    job = compose.environment(services["temporal-namespace"])
    registered = dict(pair.split("=") for pair in job["SEARCH_ATTRIBUTES"].split())
    types = {SearchAttributeIndexedValueType.KEYWORD: "Keyword"}
    assert registered == {key.name: types[key.indexed_value_type] for key in search.ALL}
    assert "/setup-namespace.sh" in services["temporal-namespace"]["entrypoint"][-1]


def test_namespace_job_creates_the_namespace_the_app_uses(services: dict) -> None:
    created = compose.environment(services["temporal-namespace"])["NAMESPACE"]
    for name in APP_SERVICES:
        assert compose.environment(services[name])["JOURNEYS_TEMPORAL_NAMESPACE"] == created
    assert compose.environment(services["temporal-ui"])["TEMPORAL_DEFAULT_NAMESPACE"] == created


def test_app_services_set_only_real_settings(services: dict) -> None:
    known = settings_env_names()
    for name in APP_SERVICES:
        unknown = set(compose.environment(services[name])) - known
        assert not unknown, f"{name} sets variables journeys does not read: {sorted(unknown)}"


def test_app_environment_is_a_valid_production_configuration(
    services: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in APP_SERVICES:
        for var in settings_env_names():
            monkeypatch.delenv(var, raising=False)
        for var, value in compose.environment(services[name]).items():
            monkeypatch.setenv(var, value)
        settings = Settings()  # raises if a value does not parse or a secret is the dev one
        assert settings.env == "production"
        assert settings.effective_temporal_address == "temporal:7233"
        assert settings.effective_database_url.endswith("@postgresql:5432/journeys")


def test_ports_match_the_settings(services: dict) -> None:
    api_env = compose.environment(services["api"])
    assert api_env["JOURNEYS_API_HOST"] == "0.0.0.0"  # reachable from other containers
    published = [str(p).rsplit(":", 1)[1] for p in services["api"]["ports"]]
    assert published == [api_env["JOURNEYS_API_PORT"]]
    worker_env = compose.environment(services["worker"])
    assert worker_env["JOURNEYS_WORKER_METRICS_HOST"] == "0.0.0.0"
    assert services["worker"]["expose"] == [worker_env["JOURNEYS_WORKER_METRICS_PORT"]]
    assert "ports" not in services["worker"]  # so `--scale worker=N` needs no host ports
    assert f":{api_env['JOURNEYS_API_PORT']}/healthz" in " ".join(
        services["api"]["healthcheck"]["test"]
    )
    assert f":{worker_env['JOURNEYS_WORKER_METRICS_PORT']}/metrics" in " ".join(
        services["worker"]["healthcheck"]["test"]
    )


def test_app_commands_are_journeys_commands(services: dict) -> None:
    commands = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in APP_SERVICES:
        assert services[name]["command"] == [name]
        assert name in commands


def test_workers_get_time_to_finish_activities_before_sigkill(services: dict) -> None:
    grace = services["worker"]["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) > Settings().worker_graceful_shutdown_seconds


def test_scalable_services_have_no_fixed_container_name(services: dict) -> None:
    for name in ("api", "worker"):
        assert "container_name" not in services[name]


def test_env_example_defines_every_variable_compose_needs() -> None:
    needed = compose.variables(compose.COMPOSE_FILE.read_text())
    defined = set(compose.read_env_file(compose.ENV_EXAMPLE))
    assert needed <= defined, f"missing from .env.example: {sorted(needed - defined)}"


def test_compose_refuses_to_start_without_the_secrets() -> None:
    env = compose.read_env_file(compose.ENV_EXAMPLE)
    for secret in (
        "POSTGRES_PASSWORD",
        "JOURNEYS_DB_PASSWORD",
        "TEMPORAL_DB_PASSWORD",
        "JOURNEYS_SECRET_KEY",
    ):
        with pytest.raises(compose.MissingVariable, match=secret):
            compose.load({k: v for k, v in env.items() if k != secret})


def test_mounted_deploy_files_exist(services: dict) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


@pytest.mark.parametrize("script", sorted((ROOT / "deploy").rglob("*.sh")), ids=lambda p: p.name)
def test_deploy_scripts_are_valid_posix_shell(script) -> None:  # type: ignore[no-untyped-def]
    # The images run them with /bin/sh (dash or busybox), not bash.
    result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert script.read_text().startswith("#!/bin/sh\n")
    assert os.access(script, os.X_OK), f"{script.name} must be executable (initdb.d runs it)"


def test_dockerfile_is_multi_stage_slim_non_root_without_dev_extras() -> None:
    text = (ROOT / "Dockerfile").read_text()
    instructions = [
        line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert stages == ["FROM ${PYTHON_IMAGE} AS build", "FROM ${PYTHON_IMAGE} AS runtime"]
    runtime = instructions[instructions.index(stages[1]) :]
    user = [line for line in runtime if line.startswith("USER ")]
    assert user and not re.search(r"\broot\b|\b0\b", user[-1])
    assert "[test]" not in text and ".[" not in text  # no extras, test or otherwise
    entrypoint = [line for line in runtime if line.startswith("ENTRYPOINT")]
    assert shlex.split(entrypoint[-1].split(" ", 1)[1].strip("[]").replace(",", " ")) == [
        "journeys"
    ]


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".journeys", ".git"} <= ignored
