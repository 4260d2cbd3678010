"""The step cache of a study's run folder: every trained model is stored under a content hash of
everything that determines it, so that a re-run loads what is still valid and trains only what
changed.

Layout inside the run folder::

    models/<step>-<key[:16]>.pt            the model (a levelup model file; its metadata holds
                                           the full key under "study_key")
    models/<step>-<key[:16]>.history.json  its training History (written before the model)
    manifest.json                          what the last run did: step -> key, file, status,
                                           seconds

A key is :func:`content_key` of the step's inputs: training arrays and labels, settings, seeds,
the parent model's tensor checksum for a model derived from another one, the model-file
format version and levelup's version. Files are written atomically and each step is recorded
in the manifest as soon as it is done, so a run killed half-way keeps every model it finished;
models of earlier settings stay in ``models/`` (switching back to them reuses them).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from levelup.atomicwrite import write_text_atomic
from levelup.errors import ModelFileError
from levelup.jsonvalues import json_ready

#: Version of this cache's layout and of what the keys cover; a change invalidates every key.
CACHE_VERSION = 1
MANIFEST = "manifest.json"
FORMAT = "levelup-study-run"


def content_key(parts: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of ``parts``: numpy arrays by dtype, shape and bytes; everything else as
    canonical JSON. Same inputs, same key, on any machine."""
    digest = hashlib.sha256(f"{FORMAT}/{CACHE_VERSION}".encode())
    for name in sorted(parts):
        value = parts[name]
        digest.update(f"|{name}=".encode())
        if isinstance(value, np.ndarray):
            arr = np.ascontiguousarray(value)
            digest.update(f"array:{arr.dtype.str}:{arr.shape}:".encode())
            digest.update(arr.tobytes())
        else:
            plain = json_ready(value, nonfinite="text", where="a step key")
            digest.update(json.dumps(plain, sort_keys=True).encode())
    return digest.hexdigest()


class StepCache:
    """Trained models of a run folder, found by step name and key (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.models = self.folder / "models"
        self.manifest = self._read_manifest()

    def _read_manifest(self) -> dict[str, Any]:
        path = self.folder / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = None  # none yet, or unreadable: the model files are still found by name
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            data = {"format": FORMAT, "version": CACHE_VERSION, "steps": {}}
        data.setdefault("steps", {})
        return data

    def model_file(self, step: str, key: str) -> Path:
        """Where the model of ``step`` with ``key`` lives (whether or not it exists yet)."""
        return self.models / f"{step}-{key[:16]}.pt"

    def history_file(self, step: str, key: str) -> Path:
        """The JSON file of step ``step``'s training history (or linear choice) under ``key``."""
        return self.models / f"{step}-{key[:16]}.history.json"

    def find(self, step: str, key: str) -> dict[str, Any] | None:
        """The metadata of the saved model of ``step`` with exactly ``key`` (plus its
        ``tensors_sha256``), or None when there is none or it is unreadable."""
        from levelup.model.files import read_header

        path = self.model_file(step, key)
        if not path.is_file() or not self.history_file(step, key).is_file():
            return None
        try:
            header = read_header(path)
        except (ModelFileError, OSError):
            return None
        meta = dict(header.get("metadata") or {})
        if meta.get("study_key") != key:
            return None
        meta["tensors_sha256"] = header["tensors_sha256"]
        return meta

    def save(self, step: str, key: str, model: Any, history: Any,
             metadata: Mapping[str, Any]) -> str:
        """Store ``model`` and its History for ``step`` under ``key``; returns the model's tensor
        checksum. The history is written first, so a model file always has its history."""
        from levelup.model.files import read_header

        history.save(self.history_file(step, key))
        path = self.model_file(step, key)
        model.save(path, metadata={**metadata, "study_step": step, "study_key": key})
        return read_header(path)["tensors_sha256"]

    def record(self, step: str, entry: Mapping[str, Any]) -> None:
        """Write ``step``'s entry to the manifest (atomically, at once)."""
        from levelup._version import __version__

        self.manifest["steps"][step] = dict(entry)
        self.manifest["levelup_version"] = __version__
        self.folder.mkdir(parents=True, exist_ok=True)
        plain = json_ready(self.manifest, nonfinite="text", where=MANIFEST)
        write_text_atomic(self.folder / MANIFEST, json.dumps(plain, indent=1, sort_keys=True)
                          + "\n")

    def entry(self, step: str) -> dict[str, Any]:
        """The manifest entry of ``step`` from the last run ({} when none)."""
        return dict(self.manifest["steps"].get(step) or {})


__all__ = ["CACHE_VERSION", "StepCache", "content_key"]
