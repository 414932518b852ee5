"""The docker images ``sam local invoke`` needs, made once and reused while their inputs are unchanged.

- The Lambda base image SAM runs functions in (``public.ecr.aws/lambda/python:3.13-<arch>``):
  pulled where the registry is reachable, otherwise built from Debian packages: a ``debootstrap``'d
  trixie rootfs with python3.13, plus awslambdaric and a ``/var/runtime/bootstrap`` that starts it.
- The emulator image (moto and the Binance simulator): that base image plus ``requirements/emulators.txt``.

Python packages are downloaded on the host by pip for the image's CPU and Python (manylinux wheels),
so no build step inside docker needs a network. Each built image carries a label with a hash of
what it was built from (requirements, Dockerfiles, bootstrap); a changed input means a new build.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from local.template import REPO_ROOT

__all__ = [
    "EMULATOR_REPO",
    "ensure_base_image",
    "ensure_emulator_image",
    "host_architecture",
    "lambda_image",
]

HERE = Path(__file__).resolve().parent
WORK_DIR = REPO_ROOT / ".sam-local"
KEY_LABEL = "klineo.sam-local.key"
EMULATOR_REPO = "klineo-sam-local/emulators"
ROOTFS_REPO = "klineo-sam-local/trixie-python"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ROOTFS_PACKAGES = ("python3.13",)
# Linux wheel tags pip may take for each Lambda CPU (every wheel the requirements need has one).
_WHEEL_PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}


def host_architecture() -> str:
    """This machine's CPU in Lambda's words (``x86_64`` or ``arm64``)."""
    return "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "x86_64"


def lambda_image(arch: str) -> str:
    """The image name SAM looks for when it runs a python3.13 function."""
    return f"public.ecr.aws/lambda/python:3.13-{arch}"


def _docker(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess:
    argv = [shutil.which("docker") or "docker", *args]
    return subprocess.run(argv, check=check, text=True, capture_output=quiet)  # noqa: S603 - fixed docker argv


def _label(image: str) -> str | None:
    """The image's cache-key label, "" for an image without one, None when there is no such image."""
    found = _docker(
        "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', image,
        check=False, quiet=True,
    )
    return found.stdout.strip().replace("<no value>", "") if found.returncode == 0 else None


def _key(*parts: str | Path) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
    return digest.hexdigest()[:16]


def _requirements_text(path: Path) -> str:
    """The file with every ``-r`` include inlined, so the key changes when any of them does."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-r "):
            lines.append(_requirements_text((path.parent / line[3:].strip()).resolve()))
        else:
            lines.append(line)
    return "\n".join(lines)


def _pip_target(target: Path, arch: str, *requirements: str) -> None:
    """Install wheels for Linux/``arch``/CPython 3.13 into ``target`` (on the host, no docker)."""
    platforms = [flag for tag in _WHEEL_PLATFORMS[arch] for flag in ("--platform", tag)]
    subprocess.run(  # noqa: S603 - this interpreter's pip, fixed arguments
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--target", str(target), "--only-binary=:all:", "--implementation", "cp",
         "--python-version", "3.13", *platforms, *requirements],
        check=True,
    )


def _build(tag: str, key: str, dockerfile: str, context: Path, **build_args: str) -> None:
    shutil.copy(HERE / dockerfile, context / "Dockerfile")
    args = [arg for name, value in build_args.items() for arg in ("--build-arg", f"{name}={value}")]
    _docker("build", "--quiet", "--network", "none", "--label", f"{KEY_LABEL}={key}", "-t", tag,
            *args, str(context))


def _rootfs_image(arch: str) -> str:
    """A Debian trixie minbase rootfs with python3.13, imported as an image (debootstrap; root only)."""
    key = _key(arch, *ROOTFS_PACKAGES)
    tag = f"{ROOTFS_REPO}:{key}"
    if _label(tag) is not None:
        return tag
    if shutil.which("debootstrap") is None:
        raise SystemExit(
            f"{lambda_image(arch)} cannot be pulled and debootstrap is missing to build it "
            "(Debian: apt-get install debootstrap; or pull the image where the registry is reachable)"
        )
    WORK_DIR.mkdir(exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=WORK_DIR))
    try:
        print(f"sam-local: debootstrap trixie ({arch}) for the Lambda base image ...", flush=True)
        debootstrap = [
            shutil.which("debootstrap") or "debootstrap", "--variant=minbase",
            f"--arch={'amd64' if arch == 'x86_64' else 'arm64'}", f"--include={','.join(ROOTFS_PACKAGES)}",
            "trixie", str(rootfs), DEBIAN_MIRROR,
        ]
        subprocess.run(debootstrap, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 - fixed arguments
        for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
            shutil.rmtree(rootfs / cache, ignore_errors=True)
        pack = [shutil.which("tar") or "tar", "-C", str(rootfs), "-c", "."]
        tar = subprocess.Popen(pack, stdout=subprocess.PIPE)  # noqa: S603 - fixed arguments
        docker = shutil.which("docker") or "docker"
        load = [docker, "import", "--change", f"LABEL {KEY_LABEL}={key}", "-", tag]
        subprocess.run(load, stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)  # noqa: S603
        tar.stdout.close()
        if tar.wait() != 0:
            raise SystemExit("sam-local: packing the Debian rootfs failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return tag


def ensure_base_image(arch: str) -> str:
    """``public.ecr.aws/lambda/python:3.13-<arch>``: present, pulled, or built from Debian packages."""
    image = lambda_image(arch)
    key = _key(HERE / "Dockerfile.lambda", HERE / "bootstrap", "awslambdaric", *ROOTFS_PACKAGES)
    label = _label(image)
    if label == "" or label == key:  # pulled from AWS (no label), or our build of these inputs
        return image
    if label is None and _docker("pull", "--quiet", image, check=False, quiet=True).returncode == 0:
        return image
    print(f"sam-local: building {image} from Debian packages (the registry is out of reach) ...", flush=True)
    rootfs = _rootfs_image(arch)
    with tempfile.TemporaryDirectory(prefix="lambda-image-") as context:
        shutil.copy(HERE / "bootstrap", Path(context) / "bootstrap")
        _pip_target(Path(context) / "site", arch, "awslambdaric")
        _build(image, key, "Dockerfile.lambda", Path(context), ROOTFS=rootfs)
    return image


def ensure_emulator_image(arch: str) -> str:
    """moto + the Binance simulator on the Lambda base image, rebuilt when its inputs change."""
    base = ensure_base_image(arch)
    base_id = _docker("image", "inspect", "--format", "{{.Id}}", base, quiet=True).stdout.strip()
    requirements = REPO_ROOT / "requirements" / "emulators.txt"
    key = _key(base_id, HERE / "Dockerfile.emulators", _requirements_text(requirements))
    tag = f"{EMULATOR_REPO}:{arch}-{key}"
    if _label(tag) is not None:
        return tag
    print(f"sam-local: building the emulator image {tag} ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="emulators-image-") as context:
        _pip_target(Path(context) / "site", arch, "-r", str(requirements))
        _build(tag, key, "Dockerfile.emulators", Path(context), BASE=base)
    return tag
