"""lungcad: lung-nodule computer-aided detection for chest CT."""

from importlib.metadata import PackageNotFoundError, version


def package_version() -> str:
    """The installed distribution's version: ``pyproject.toml`` is its one source (read at call time)."""
    try:
        return version("lungcad")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> str:
    # ``lungcad.__version__`` without a metadata lookup at import time (PEP 562)
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module 'lungcad' has no attribute {name!r}")
