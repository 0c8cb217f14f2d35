"""Build and install the native verifier module into the running Python (``make install`` runs it).

The wheel is built from these sources by maturin (crates from crates.io, pinned by Cargo.lock) and
kept under ``~/.cache/sealtrail/native/<key>/``, where the key hashes every source file here, the
Python tag and ``rustc -V``: a fresh clone with a warm cache installs it without compiling, and any
change to the sources or the toolchain builds a new one. Cargo's target directory is cached there
too, so a rebuild compiles only what changed. Nothing prebuilt comes from anywhere else.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("SEALTRAIL_CACHE", Path.home() / ".cache" / "sealtrail")) / "native"
SOURCES = ("Cargo.toml", "Cargo.lock", "pyproject.toml", "sealtrail_native.pyi", "install.py")


def key() -> str:
    h = hashlib.sha256()
    files = [HERE / name for name in SOURCES] + sorted((HERE / "src").rglob("*.rs"))
    for path in files:
        h.update(str(path.relative_to(HERE)).encode() + b"\0" + path.read_bytes() + b"\0")
    try:
        rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"native/install.py: the Rust toolchain (rustc, cargo) is needed to build the native "
                         f"verifier module: {e}") from e
    h.update(f"{rustc}\0{sys.implementation.cache_tag}\0{sys.platform}".encode())
    return h.hexdigest()[:24]


def build(out: Path) -> None:
    env = {**os.environ, "CARGO_TARGET_DIR": str(CACHE / "target")}
    subprocess.run([sys.executable, "-m", "maturin", "build", "--release", "--locked", "--quiet",
                    "-m", str(HERE / "Cargo.toml"), "-i", sys.executable, "--out", str(out)], env=env, check=True)


def main() -> None:
    k = key()
    marker = Path(sys.prefix) / f".sealtrail-native-{k}"
    if marker.exists():
        return
    out = CACHE / k
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        print(f"building the native verifier module (cache {out})", flush=True)
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        build(tmp)
        tmp.rename(out)
        wheels = sorted(out.glob("*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", str(wheels[-1])],
                   check=True)
    for old in Path(sys.prefix).glob(".sealtrail-native-*"):
        old.unlink()
    marker.touch()


if __name__ == "__main__":
    main()
