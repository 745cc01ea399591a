"""The bundled synthetic dataset: generated on demand (deterministically) into a cache folder.

The demo models in ``assets/models`` were trained on ``SyntheticConfig()`` (the defaults); generating
it again gives the same bytes, so the app and the command line can evaluate them without shipping data.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from protoviz.data.synthetic import SyntheticConfig, generate_dataset

_DONE_MARKER = ".complete"


def cache_root() -> Path:
    """``$PROTOVIZ_CACHE_DIR`` if set, else ``~/.cache/protoviz``."""
    env = os.environ.get("PROTOVIZ_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "protoviz"


def synthetic_dataset(config: SyntheticConfig | None = None, root: Path | None = None) -> Path:
    """Folder (CUB layout) of the synthetic dataset for ``config``, generated once and reused.

    Safe to call from several processes at once: generation happens under a file lock.
    """
    config = config or SyntheticConfig()
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    folder = (root or cache_root()) / f"synthetic-{digest}"
    if (folder / _DONE_MARKER).exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".synthetic-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / _DONE_MARKER).exists():
            generate_dataset(folder, config, overwrite=True)
            (folder / _DONE_MARKER).write_text("ok\n")
    return folder
