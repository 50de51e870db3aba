"""Lambda layers: Nexus's shared code, and its dependencies built from ``uv.lock`` without Docker.

The dependency layer is bundled locally during ``cdk synth``: ``uv export`` turns the lock file into
pinned requirements and ``uv pip install --python-platform`` fetches the wheels for the Lambda
platform (manylinux for the chosen architecture, Amazon Linux 2023's glibc), binary only, so nothing
is compiled on the build machine (ADR 0009). A local cache keyed by the lock file makes repeated
synths cheap.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import StageConfig

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "uv.lock"
BUILD_CACHE = ROOT / ".cache" / "layers"
# Amazon Linux 2023 (the python3.12+ runtimes) ships glibc 2.34; python3.11 runs on AL2 (glibc 2.26,
# so manylinux2014 wheels only: psycopg-binary has none for arm64 there).
GLIBC = {"3.11": "2_17", "3.12": "2_34", "3.13": "2_34", "3.14": "2_34"}
# Bump when the way the layer is built changes, so cached builds are not reused.
RECIPE = "1"
EXPORT_FLAGS = (
    *("--frozen", "--no-dev", "--no-emit-project", "--no-hashes", "--no-header", "--no-annotate"),
    *("--color", "never"),  # the CDK CLI forces colour on in its children
)


def _uv() -> str:
    found = Path(sys.executable).with_name("uv")
    return str(found) if found.exists() else shutil.which("uv") or "uv"


def lambda_platform(architecture: str, python_version: str) -> str:
    arch = {"arm64": "aarch64", "x86_64": "x86_64"}[architecture]
    return f"{arch}-manylinux_{GLIBC[python_version]}"


def requirements() -> str:
    """Pinned runtime requirements from the lock file: no dev tools, no extras (CDK, local PG)."""
    return subprocess.run(
        [_uv(), "export", *EXPORT_FLAGS],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def build_dependencies(out: Path, platform: str, python_version: str) -> None:
    """Install the locked requirements for ``platform`` into ``out/python`` (a layer's layout)."""
    reqs = requirements()
    key = hashlib.sha256(f"{RECIPE}\0{platform}\0{python_version}\0{reqs}".encode()).hexdigest()[:16]
    cached = BUILD_CACHE / key
    if not cached.exists():
        staging = BUILD_CACHE / f"{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        (staging / "requirements.txt").write_text(reqs)
        subprocess.run(
            [
                *(_uv(), "pip", "install", "--quiet", "--no-deps", "--only-binary", ":all:", "--no-compile"),
                *("--python-platform", platform, "--python-version", python_version),
                *("--target", str(staging / "python"), "-r", str(staging / "requirements.txt")),
            ],
            check=True,
        )
        # Console scripts carry the build machine's interpreter path; the layer has no use for them.
        shutil.rmtree(staging / "python" / "bin", ignore_errors=True)
        staging.rename(cached)
    shutil.copytree(cached / "python", out / "python", dirs_exist_ok=True)


@jsii.implements(cdk.ILocalBundling)
class _UvBundling:
    def __init__(self, platform: str, python_version: str) -> None:
        self.platform = platform
        self.python_version = python_version

    def try_bundle(self, output_dir: str, *args: object, **kwargs: object) -> bool:
        build_dependencies(Path(output_dir), self.platform, self.python_version)
        return True


def _lock_hash(*parts: str) -> str:
    return hashlib.sha256(LOCK.read_bytes() + "\0".join((RECIPE, *parts)).encode()).hexdigest()


class Layers(Construct):
    """``dependencies`` (third-party, from the lock) and ``shared`` (the ``nexus`` package)."""

    def __init__(self, scope: Construct, construct_id: str, *, stage: StageConfig) -> None:
        super().__init__(scope, construct_id)
        arch = architecture(stage)
        python_version = stage.python_version
        runtime = python_runtime(python_version)
        platform = lambda_platform(stage.architecture, python_version)
        self.dependencies = lambda_.LayerVersion(
            self,
            "Dependencies",
            description=f"Nexus dependencies from uv.lock for {platform}, Python {python_version}",
            compatible_architectures=[arch],
            compatible_runtimes=[runtime],
            code=lambda_.Code.from_asset(
                str(ROOT / "layers" / "dependencies"),
                asset_hash_type=cdk.AssetHashType.CUSTOM,
                asset_hash=_lock_hash(platform, python_version),
                bundling=cdk.BundlingOptions(
                    # Never pulled: the local bundler always succeeds, so Docker is not needed.
                    image=cdk.DockerImage.from_registry("unused-local-bundling"),
                    local=_UvBundling(platform, python_version),
                ),
            ),
        )
        self.shared = lambda_.LayerVersion(
            self,
            "Shared",
            description="Nexus shared code: config, db + migrations, tracking, pricing, adapters",
            compatible_architectures=[arch],
            compatible_runtimes=[runtime],
            code=lambda_.Code.from_asset(str(ROOT / "layers" / "shared"), exclude=PY_JUNK),
        )


PY_JUNK = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache"]


def architecture(stage: StageConfig) -> lambda_.Architecture:
    return lambda_.Architecture.ARM_64 if stage.architecture == "arm64" else lambda_.Architecture.X86_64


def python_runtime(version: str) -> lambda_.Runtime:
    runtime: lambda_.Runtime = getattr(lambda_.Runtime, f"PYTHON_{version.replace('.', '_')}")
    return runtime
