"""Who a workspace entry belongs to: every run, kept model and job has an owner, and is seen only by it.

- :data:`LOCAL_OWNER` (``"local"``) is the owner of the command line and the library by default
  (``PROTOVIZ_OWNER`` overrides it, see :func:`default_owner`), of a dashboard started with
  ``PROTOVIZ_SHARED_WORKSPACE=1``, and of everything a version-1 workspace held before owners existed.
- A dashboard visitor's owner is an unguessable token (:func:`new_token`: 18 random bytes, 24 URL-safe
  characters) carried in the page's address (``?ws=<token>``). The dashboard accepts only tokens of
  that exact form (:func:`is_token`), so no URL can name ``local`` or any short, guessable owner.

An owner is 1-64 characters of ``A-Z a-z 0-9 _ -`` (:func:`check_owner`). It is never written into a
result, an export or a file name: model files live under :func:`owner_folder`, a one-way digest.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from collections.abc import Mapping

from protoviz.errors import WorkspaceError

LOCAL_OWNER = "local"
TOKEN_BYTES = 18
TOKEN_LENGTH = 24  # len(secrets.token_urlsafe(TOKEN_BYTES))
_OWNER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN = re.compile(rf"[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}")


def check_owner(owner: object) -> str:
    """``owner`` if it is a valid owner name; WorkspaceError otherwise (the value is not echoed)."""
    if not isinstance(owner, str) or _OWNER.fullmatch(owner) is None:
        raise WorkspaceError("a workspace owner is 1-64 characters of letters, digits, '_' and '-'")
    return owner


def new_token() -> str:
    """A fresh, unguessable owner token (144 random bits, 24 URL-safe characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def is_token(value: object) -> bool:
    """True when ``value`` has the form of :func:`new_token`'s tokens (length and alphabet)."""
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def default_owner(env: Mapping[str, str] | None = None) -> str:
    """``$PROTOVIZ_OWNER`` (checked), else :data:`LOCAL_OWNER`: the owner of the command line and library."""
    value = (os.environ if env is None else env).get("PROTOVIZ_OWNER", "").strip()
    if not value:
        return LOCAL_OWNER
    try:
        return check_owner(value)
    except WorkspaceError:
        raise WorkspaceError("PROTOVIZ_OWNER must be 1-64 characters of letters, digits, '_' and '-'") from None


def owner_folder(owner: str) -> str:
    """The folder name of an owner's model files: a digest that does not reveal the owner (32 hex digits)."""
    return hashlib.sha256(f"protoviz-owner:{check_owner(owner)}".encode()).hexdigest()[:32]
