"""Which server paths a dashboard visitor may type: none, unless the operator lists allowed folders.

``PROTOVIZ_ALLOWED_ROOTS`` (folders separated by ``os.pathsep``, e.g. ``/data/cub:/data/models``)
turns the typed-path boxes on. A typed path is resolved (symbolic links followed, ``..`` collapsed)
and must lie inside one of those folders, and outside every denied folder (the upload folders of the
sessions). Anything else gets one and the same message, whether or not the path exists, so the boxes
cannot probe the server's file system. Paths are shown relative to their root.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from protoviz.errors import PathNotAllowedError

ENV_ROOTS = "PROTOVIZ_ALLOWED_ROOTS"
MAX_TYPED = 1024
OFF_MESSAGE = (f"Typed server paths are turned off on this server. The operator can allow folders with "
               f"{ENV_ROOTS} (see the README's 'Serving' section); until then use the uploads and the "
               "bundled data.")


@dataclass(frozen=True)
class PathPolicy:
    """The folders typed paths may reach (resolved), and folders inside them that stay out of reach."""

    roots: tuple[Path, ...] = ()
    denied: tuple[Path, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, denied: tuple[Path, ...] = ()) -> PathPolicy:
        """The policy of ``PROTOVIZ_ALLOWED_ROOTS`` (off when unset or empty); roots that do not exist
        or are not folders are ignored."""
        text = (environ if environ is not None else os.environ).get(ENV_ROOTS, "")
        roots = []
        for item in text.split(os.pathsep):
            if not item.strip():
                continue
            try:
                root = Path(item.strip()).expanduser().resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if root.is_dir() and root not in roots:
                roots.append(root)
        return cls(tuple(roots), tuple(_resolved(d) for d in denied))

    @property
    def enabled(self) -> bool:
        return bool(self.roots)

    def resolve(self, typed: str) -> Path:
        """The real path of ``typed`` inside an allowed root, else :class:`PathNotAllowedError`.

        Relative paths are taken relative to the first root. The refusal is the same whether or not
        the path exists.
        """
        if not self.enabled:
            raise PathNotAllowedError(OFF_MESSAGE)
        text = typed.strip()
        refusal = PathNotAllowedError(f"{_shown(text)} is not inside the folders this server allows "
                                      f"({', '.join(r.name or str(r) for r in self.roots)})")
        if not text or len(text) > MAX_TYPED or "\x00" in text:
            raise refusal
        candidate = Path(text)
        if not candidate.is_absolute():
            candidate = self.roots[0] / candidate
        try:
            real = candidate.resolve(strict=False)
        except (OSError, RuntimeError, ValueError):
            raise refusal from None
        if not any(_within(real, root) for root in self.roots) or any(_within(real, d) for d in self.denied):
            raise refusal
        return real

    def display(self, path: Path) -> str:
        """``path`` relative to its allowed root (``root-name/sub/path``), or just its name."""
        real = _resolved(path)
        for root in self.roots:
            if _within(real, root):
                relative = real.relative_to(root).as_posix()
                return f"{root.name}/{relative}" if relative != "." else root.name
        return path.name


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve(strict=False)
    except (OSError, RuntimeError, ValueError):
        return Path(path)


def _shown(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:80] + "...")
