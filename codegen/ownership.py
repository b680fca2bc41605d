"""What ``rpcfw gen`` owns in OUT, and what it may do to the other files there.

Every run writes ``OUT/.rpcfw-gen.json`` (the manifest): the backend and, for every file it
wrote, its path below OUT and sha256. The next run into the same OUT then

* refuses an OUT that holds files but no manifest (a folder rpcfw gen did not make), unless
  forced: nothing is written; forced, it generates beside those files and keeps them;
* refuses to replace a file it does not own, or one edited since it wrote it, unless forced;
* removes the files it wrote before and does not write now (switching backends leaves no
  stale modules), and the folders that leaves empty; a file edited since it was written is
  kept instead (with a warning) and is the user's from then on, as is an ``__init__.py`` the
  user wrote or edited: rpcfw gen adds empty ones only where none is the user's;
* leaves every other file alone: ``.proto`` sources kept in OUT, ``__pycache__``, and files
  added beside the generated ones after the first run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .errors import GenError

__all__ = ["MANIFEST", "Manifest", "Ownership", "digest", "manifest_text", "write_manifest"]

MANIFEST = ".rpcfw-gen.json"
_FORMAT = 1
_GENERATOR = "rpcfw gen"
_SHOWN = 5  # files named in an error message; the rest are counted


def digest(data: bytes) -> str:
    """The manifest's digest of a file's bytes: sha256, hex."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Manifest:
    """What one run wrote: OUT-relative POSIX path -> sha256 (hex) of the bytes written."""

    backend: str
    files: Mapping[str, str]


def manifest_text(backend: str, files: Mapping[str, str]) -> str:
    """The manifest's JSON (stable: sorted keys, no timestamps), for ``files`` path -> sha256."""
    data = {
        "generator": _GENERATOR,
        "format": _FORMAT,
        "backend": backend,
        "files": dict(sorted(files.items())),
    }
    return json.dumps(data, indent=1) + "\n"


def _safe(rel: object) -> bool:
    if not isinstance(rel, str) or not rel or "\\" in rel:
        return False
    path = PurePosixPath(rel)
    return not path.is_absolute() and ".." not in path.parts and rel != MANIFEST


def _read_manifest(path: Path) -> Manifest | None:
    if not path.is_file():
        return None
    bad = f"{path}: not a manifest of rpcfw gen; delete it to generate into this folder"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise GenError(bad) from None
    if not isinstance(data, dict) or data.get("generator") != _GENERATOR:
        raise GenError(bad)
    if data.get("format") != _FORMAT:
        raise GenError(f"{path}: manifest format {data.get('format')!r} is not {_FORMAT}")
    files, backend = data.get("files"), data.get("backend")
    if not isinstance(files, dict) or not isinstance(backend, str):
        raise GenError(bad)
    if not all(_safe(rel) and isinstance(sha, str) for rel, sha in files.items()):
        raise GenError(bad)
    return Manifest(backend, files)


def _listing(rels: Iterable[str]) -> str:
    items = sorted(rels)
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")


def _counted(path: Path, out: Path) -> bool:
    """Files that make OUT 'not empty': not manifests, sources or bytecode caches."""
    parts = path.relative_to(out).parts
    return path.suffix != ".proto" and "__pycache__" not in parts and parts != (MANIFEST,)


@dataclass(frozen=True, slots=True)
class Ownership:
    """OUT as found before a run: its manifest (None if it has none) and its files' digests."""

    out: Path
    manifest: Manifest | None
    present: Mapping[str, str]  # OUT-relative POSIX path -> sha256, of the counted files

    @classmethod
    def scan(cls, out: Path) -> Ownership:
        """Read OUT's manifest and digest its files (OUT may not exist yet)."""
        manifest = _read_manifest(out / MANIFEST)
        present: dict[str, str] = {}
        if out.is_dir():
            for path in out.rglob("*"):
                if path.is_file() and _counted(path, out):
                    present[path.relative_to(out).as_posix()] = digest(path.read_bytes())
        return cls(out, manifest, present)

    def owns(self, rel: str) -> bool:
        """True if the last run wrote ``rel`` and it is still as written."""
        wrote = self.manifest.files.get(rel) if self.manifest else None
        return wrote is not None and self.present.get(rel) == wrote

    def is_users(self, rel: str) -> bool:
        """True if ``rel`` exists and rpcfw gen must not replace it unasked."""
        return rel in self.present and not self.owns(rel)

    def check_folder(self, force: bool) -> None:
        """Refuse a non-empty OUT that rpcfw gen did not make (unless ``force``)."""
        if self.manifest is None and self.present and not force:
            raise GenError(
                f"{self.out}: not empty and not made by rpcfw gen (it has no {MANIFEST}); "
                f"files there: {_listing(self.present)}. Choose an empty or new folder, "
                "or pass --force to generate into it anyway (files it does not write are kept)"
            )

    def check_writes(self, staged: Mapping[str, str], force: bool) -> None:
        """Refuse to replace files that are not rpcfw gen's (unless ``force``)."""
        clashes = [
            rel for rel, sha in staged.items() if self.is_users(rel) and self.present[rel] != sha
        ]
        if clashes and not force:
            raise GenError(
                f"{self.out}: would overwrite files rpcfw gen did not write or that were "
                f"edited since: {_listing(clashes)}. Move them away, "
                "or pass --force to overwrite them"
            )

    def stale(self, staged: Mapping[str, str]) -> tuple[list[str], list[str]]:
        """(remove, keep): files the last run wrote that this one does not, unedited or edited."""
        if self.manifest is None:
            return [], []
        gone = sorted(rel for rel in self.manifest.files if rel not in staged)
        remove = [rel for rel in gone if self.owns(rel)]
        keep = [rel for rel in gone if self.is_users(rel)]
        return remove, keep

    def remove(self, rels: Iterable[str]) -> list[Path]:
        """Delete ``rels`` and then the folders below OUT left with nothing but caches."""
        removed: list[Path] = []
        folders: set[Path] = set()
        for rel in rels:
            path = self.out / rel
            path.unlink()
            removed.append(path)
            folders.update(p for p in path.parents if self.out in p.parents)
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and all(p.name == "__pycache__" for p in folder.iterdir()):
                shutil.rmtree(folder)
        return removed


def write_manifest(out: Path, backend: str, files: Mapping[str, str]) -> None:
    """Write OUT's manifest (left alone when unchanged, like the files it lists)."""
    path, text = out / MANIFEST, manifest_text(backend, files)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")
