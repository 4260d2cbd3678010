"""Read-only files of a folder or of a zip archive (a wheel), by relative POSIX path: how the
published models' files are reached without unpacking the archive they ship in."""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from levelup.errors import ModelFileError


class Files:
    """Read-only access to the files of a folder or of a zip archive (a wheel), by relative
    POSIX path. Errors name the archive and the missing member."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._zip: zipfile.ZipFile | None = None
        if self.path.is_dir():
            return
        if not self.path.exists():
            raise ModelFileError(f"{self.path}: no such file or folder; expected a torchani wheel "
                                 "(.whl) or a folder holding NeuroChem model files")
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelFileError(f"{self.path}: not a readable zip archive or wheel ({exc}); "
                                 "delete it and download it again") from exc
        self._names = set(self._zip.namelist())

    def __enter__(self) -> Files:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the zip archive, if any."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def names(self) -> list[str]:
        """Every file's relative POSIX path."""
        if self._zip is not None:
            return sorted(n for n in self._names if not n.endswith("/"))
        return sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file())

    def exists(self, name: str) -> bool:
        """Whether the file ``name`` is there."""
        if self._zip is not None:
            return name in self._names
        return (self.path / name).is_file()

    def read(self, name: str) -> bytes:
        """The bytes of file ``name``; ModelFileError if missing or unreadable."""
        if not self.exists(name):
            raise ModelFileError(f"{self.path}: missing file {name}; the NeuroChem model is "
                                 "incomplete (re-download the wheel or pass a complete folder)")
        try:
            if self._zip is not None:
                return self._zip.read(name)
            return (self.path / name).read_bytes()
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            raise ModelFileError(f"{self.path}: cannot read {name} ({exc}); the archive is "
                                 "corrupt: delete it and download it again") from exc

    def find_model_root(self, marker: str = "sae_linfit.dat", folder: str | None = None) -> str:
        """Relative folder ('' for the top) of the ensemble: the shallowest folder that holds
        ``marker`` and a ``train0/`` subfolder, optionally one named ``folder`` (e.g.
        'ani-1x_8x')."""
        candidates = []
        for name in self.names():
            p = PurePosixPath(name)
            if p.name != marker:
                continue
            root = p.parent
            if folder is not None and root.name != folder and str(root) != ".":
                continue
            prefix = "" if str(root) == "." else f"{root.as_posix()}/"
            if any(n.startswith(f"{prefix}train0/") for n in self.names()):
                candidates.append(prefix)
        if not candidates:
            where = f" in a folder named {folder}" if folder else ""
            raise ModelFileError(f"{self.path}: no NeuroChem ensemble found{where} (expected "
                                 f"{marker} beside train0/, train1/, ... folders)")
        return min(candidates, key=lambda c: (c.count("/"), c))
