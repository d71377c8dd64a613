"""Workspace-wide pytest fixtures.

`shared_data` points at the read-only real recordings and models in ``../shared/data``
(or ``$SE_SHARED_DATA``); tests that need it skip with a clear reason where it is absent,
as on a user's fresh clone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent


def shared_data_dir() -> Path | None:
    env = os.environ.get("SE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real test data not found: expected ../shared/data beside the repository "
                    "(or set SE_SHARED_DATA=/path/to/shared/data)")
    return d


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


def test_threads() -> int | None:
    """Torch intra-op threads for the tests: ``$SE_TEST_THREADS`` (a positive integer, or
    ``default`` to keep torch's own choice); 1 when unset. The tests use small tensors, for which
    a second OpenMP thread only adds hand-off cost (on a busy 2-core machine spinning threads
    made some tests 10-40x slower), and every test must pass at any setting."""
    raw = os.environ.get("SE_TEST_THREADS", "1").strip()
    if raw.lower() in ("default", "auto", ""):
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"SE_TEST_THREADS must be a positive integer or 'default', got {raw!r}")
    return int(raw)


@pytest.fixture(autouse=True)
def _test_torch_threads():
    """Every test runs torch with :func:`test_threads` intra-op threads (restored afterwards).
    Tools run in subprocesses set their own threads."""
    try:
        import torch
    except ImportError:
        yield
        return
    want = test_threads()
    n = torch.get_num_threads()
    if want is not None:
        torch.set_num_threads(want)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True, scope="session")
def _subprocess_bytecode_cache():
    """Tool tests start Python subprocesses. Where PYTHONDONTWRITEBYTECODE is set, each of them
    recompiles torch's sources (~10 s); for the test session, cache bytecode under the temp
    folder instead (never inside the virtual environment). Restored afterwards."""
    import tempfile

    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if saved["PYTHONDONTWRITEBYTECODE"] is not None:
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "se-toolkit-tests-pycache")
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
