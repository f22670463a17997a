"""The model registry ("zoo"): known PoseNet models, their official URLs and sha256.

A registry entry is a *set of files* (one ``.tflite``, or a TensorFlow.js
``model-strideN.json`` plus the ``group1-shard*.bin`` files its
``weightsManifest`` names). Files are cached under
``<cache>/models/<relative path>``; ``<cache>`` is ``EDGEPOSE_CACHE_DIR`` or
platformdirs' ``user_cache_dir("edgepose")``. The relative path is also the
layout of a mirror (``EDGEPOSE_MODEL_MIRROR``: a folder or an http(s)/file URL
base), so an air-gapped site copies files to ``<mirror>/coral/<file>`` and
nothing else changes.

Every download is streamed to a temporary file in the destination folder,
hashed on the way, and moved into place with :func:`os.replace` only when its
sha256 matches: a reader never sees a partial or corrupt file, and two
concurrent fetches of the same model both end with the same good file.

An entry whose sha256 is not published anywhere we could check is
*unverified*: it is downloaded only when the caller allows it explicitly
(``allow_unverified=True`` / ``--allow-unverified``); the sha256 computed then
is printed and recorded next to the file (``<file>.sha256``), and later uses
are checked against that record (trust on first use).
"""

from __future__ import annotations

import difflib
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Iterable

from ..errors import DownloadError, ModelError
from ..net import backoff_delays
from ..paths import CACHE_ENV, models_dir
from ..progress import bar as progress_bar

log = logging.getLogger(__name__)

#: What ``model.path`` defaults to: the raw uint8 Coral model at 353x481 (CPU, no custom op).
DEFAULT_MODEL = "posenet_mobilenet_v1_075_353_481"

MIRROR_ENV = "EDGEPOSE_MODEL_MIRROR"
TIMEOUT_ENV = "EDGEPOSE_DOWNLOAD_TIMEOUT"

#: Seconds a connection or a read may stall before the attempt fails.
TIMEOUT = 30.0
#: Attempts per file, and the first back-off (doubled after each failure, up to BACKOFF_MAX).
ATTEMPTS = 3
BACKOFF = 1.0
BACKOFF_MAX = 30.0
CHUNK = 1 << 16

MIRROR_HINT = (
    f"check the network, or on an air-gapped site set {MIRROR_ENV} to a folder or http(s) URL that holds "
    "the same files under the same relative paths (see edgepose/model/README.md)."
)

# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class ModelFile:
    """One file of an entry. ``path`` is relative to the cache and to a mirror."""

    path: str
    url: str
    sha256: str | None = None  # None: not published, see the module docstring
    size: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # "tflite" | "tflite+decoder" | "edgetpu" | "tfjs"
    files: tuple[ModelFile, ...]
    description: str
    input_size: tuple[int, int] | None = None  # (height, width); None: any size
    output_stride: int | None = None
    aliases: tuple[str, ...] = ()
    #: TF.js: the first file is a model.json whose weightsManifest lists more files beside it.
    manifest: bool = False

    @property
    def verified(self) -> bool:
        return not self.manifest and all(f.sha256 for f in self.files)

    @property
    def primary(self) -> ModelFile:
        return self.files[0]


@dataclass(frozen=True)
class ModelInfo:
    """An entry as ``list_models`` reports it, with its cache state."""

    name: str
    kind: str
    description: str
    input_size: tuple[int, int] | None
    output_stride: int | None
    aliases: tuple[str, ...]
    verified: bool
    cached: bool
    #: Known (registry) or, once cached, actual total bytes; None if unknown.
    size_bytes: int | None
    #: Where the primary file is (or would be) cached.
    path: Path
    urls: tuple[str, ...] = field(default=())


CORAL_BASE = "https://github.com/google-coral/project-posenet/raw/master/models/mobilenet/"
TFJS_BASE = "https://storage.googleapis.com/tfjs-models/savedmodel/posenet/"

# sha256 and sizes of the files Coral publishes, as checked against ../shared/models/coral.
_CORAL: dict[str, tuple[str, int]] = {
    "posenet_mobilenet_v1_075_353_481_quant": (
        "d589f727ee72effba3e8211b04c284fc65fc0a22907c161e2d6c080244d5c264",
        1298664,
    ),
    "posenet_mobilenet_v1_075_481_641_quant": (
        "d7ac211a927e114a9266e424c3cb5b6ce0db462ee2d5311471c437cca2b262a6",
        1298664,
    ),
    "posenet_mobilenet_v1_075_721_1281_quant": (
        "5214ffd99fc633a99960bc133d544d57d85304c082cd72a18f12580ee6921445",
        1298664,
    ),
    "posenet_mobilenet_v1_075_353_481_quant_decoder": (
        "7519aebd2c9052089bdcfaf222b03db1212f05f5942660fc076446a13708b042",
        1299352,
    ),
    "posenet_mobilenet_v1_075_481_641_quant_decoder": (
        "29c142d62cd1f4f562bcb423a88b85c67db26aa2c057c4a3ce519bc397a6f7d4",
        1299352,
    ),
    "posenet_mobilenet_v1_075_721_1281_quant_decoder": (
        "21952c70ef5f5e54897941db41d757db6e1027b955d183def4f3f7a22d9d8746",
        1299352,
    ),
    # Coral also publishes 353_481 and 721_1281 Edge TPU builds, but we have no checksum for them.
    "posenet_mobilenet_v1_075_481_641_quant_decoder_edgetpu": (
        "73837902b843122386133a517a732b5c3887cfdd21fa6ae4ac1db4b61da28318",
        1680872,
    ),
}


def _coral_entries() -> list[ModelEntry]:
    out = []
    for stem, (sha, size) in _CORAL.items():
        found = re.search(r"_(\d+)_(\d+)_quant", stem)
        assert found is not None, stem  # every Coral stem names its input size
        h, w = (int(v) for v in found.groups())
        hw = f"{h}x{w}"
        # The raw backbones live in components/, the decoder builds one level up.
        url = CORAL_BASE + ("components/" if stem.endswith("_quant") else "") + stem + ".tflite"
        aliases: tuple[str, ...]
        if stem.endswith("_edgetpu"):
            kind, desc = "edgetpu", f"Coral PoseNet MobileNetV1 0.75 {hw} for the Edge TPU, with Coral's decoder op"
            aliases = (stem, f"posenet-{hw}-edgetpu")
        elif stem.endswith("_decoder"):
            kind, desc = "tflite+decoder", f"Coral PoseNet MobileNetV1 0.75 {hw}, uint8, with Coral's PosenetDecoderOp"
            aliases = (stem, f"posenet-{hw}-decoder")
        else:
            kind, desc = "tflite", f"Coral PoseNet MobileNetV1 0.75 {hw}, uint8, raw heads (CPU)"
            aliases = (stem, stem[: -len("_quant")], f"posenet-{hw}")
        out.append(
            ModelEntry(
                name=f"coral/{stem}",
                kind=kind,
                files=(ModelFile(f"coral/{stem}.tflite", url, sha, size),),
                description=desc,
                input_size=(h, w),
                output_stride=16,
                aliases=aliases,
            )
        )
    return out


def _tfjs_entries() -> list[ModelEntry]:
    # URL scheme of tfjs-models/posenet's checkpoints.ts (quantBytes 4 is "float").
    out = []
    quants = {"float": "float32", "quant2": "uint16-quantized", "quant1": "uint8-quantized"}
    archs = [
        ("mobilenet_v1_" + m, f"mobilenet/{{q}}/{m}", f"MobileNetV1 {int(m) / 100:.2f}", (8, 16))
        for m in ("050", "075", "100")
    ]
    archs.append(("resnet50", "resnet50/{q}", "ResNet50", (16, 32)))
    for arch, folder, adesc, strides in archs:
        for stride in strides:
            for q, qdesc in quants.items():
                rel = f"{folder.format(q=q)}/model-stride{stride}.json"
                out.append(
                    ModelEntry(
                        name=f"tfjs/{arch}_stride{stride}_{q}",
                        kind="tfjs",
                        files=(ModelFile("tfjs/" + rel, TFJS_BASE + rel),),
                        description=f"TF.js PoseNet {adesc}, stride {stride}, {qdesc} (converter input)",
                        output_stride=stride,
                        manifest=True,
                    )
                )
    return out


REGISTRY: dict[str, ModelEntry] = {e.name: e for e in _coral_entries() + _tfjs_entries()}

_ALIASES: dict[str, str] = {"posenet": "coral/posenet_mobilenet_v1_075_353_481_quant"}
for _e in REGISTRY.values():
    for _a in _e.aliases:
        _ALIASES[_a] = _e.name
assert _ALIASES[DEFAULT_MODEL] == "coral/posenet_mobilenet_v1_075_353_481_quant"


def all_names() -> list[str]:
    """Every name ``resolve_model`` accepts (canonical names and aliases)."""
    return sorted(set(REGISTRY) | set(_ALIASES))


def lookup(name: str) -> ModelEntry | None:
    """The entry for a canonical name or alias (case-insensitive, ``.tflite`` optional)."""
    key = name.strip()
    for cand in (key, key.lower(), re.sub(r"\.tflite$", "", key.lower())):
        if cand in REGISTRY:
            return REGISTRY[cand]
        if cand in _ALIASES:
            return REGISTRY[_ALIASES[cand]]
    return None


def get_entry(name: str) -> ModelEntry:
    entry = lookup(name)
    if entry is None:
        raise _unknown(name)
    return entry


def _unknown(name: str) -> ModelError:
    close = difflib.get_close_matches(name.lower(), all_names(), n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    looks_like_path = name.endswith((".tflite", ".json")) or (
        os.sep in name and not name.startswith(("coral/", "tfjs/"))
    )
    problem = (
        f"no model file at '{name}' and no registry model of that name."
        if looks_like_path
        else f"'{name}' is not a known model name."
    )
    return ModelError(problem, f"{hint}Run `edgepose models list` for the names, or give the path of a .tflite file.")


# --------------------------------------------------------------------------- cache


def _record_path(p: Path) -> Path:
    return p.with_name(p.name + ".sha256")


def _read_record(p: Path) -> str | None:
    try:
        return _record_path(p).read_text().split()[0].lower()
    except (OSError, IndexError):
        return None


def _write_atomic(dest: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        _unlink(Path(tmp))
        raise


def _write_record(p: Path, sha: str) -> None:
    _write_atomic(_record_path(p), f"{sha}  {p.name}\n".encode())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _unlink(p: Path) -> None:
    try:
        p.unlink()
    except FileNotFoundError:
        pass


def _safe_rel(base_rel: str, name: str) -> str:
    """``name`` (from a downloaded manifest) beside ``base_rel``; refuses paths that climb out."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or not pure.parts or ":" in name:
        raise DownloadError(
            f"the TF.js manifest {base_rel} lists an unsafe weight path {name!r}.",
            "the file is not a genuine TF.js PoseNet checkpoint; delete it and use the official URL.",
        )
    return str(PurePosixPath(base_rel).parent / pure)


def _manifest_files(entry: ModelEntry, json_path: Path) -> list[ModelFile]:
    """The weight shards the entry's model.json names (same folder, same URL base)."""
    primary = entry.primary
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
        names = [p for group in doc["weightsManifest"] for p in group["paths"]]
    except (ValueError, KeyError, TypeError) as e:
        raise DownloadError(
            f"{json_path} is not a TF.js model.json with a weightsManifest ({type(e).__name__}: {e}).",
            f"delete it and run `edgepose models fetch {entry.name} --force --allow-unverified`.",
        ) from None
    url_base = primary.url.rsplit("/", 1)[0] + "/"
    files = []
    for n in dict.fromkeys(names):  # keep order, drop duplicates
        rel = _safe_rel(primary.path, n)
        files.append(ModelFile(rel, url_base + urllib.parse.quote(n)))
    return files


def _entry_files(entry: ModelEntry) -> list[ModelFile] | None:
    """All files of ``entry``; None while a TF.js manifest (which names the shards) is not cached."""
    files = list(entry.files)
    if entry.manifest:
        p0 = models_dir() / entry.primary.path
        if not p0.is_file():
            return None
        try:
            files += _manifest_files(entry, p0)
        except DownloadError:
            return None
    return files


def _cache_state(entry: ModelEntry) -> tuple[bool, int | None]:
    """(all files present, total bytes if known) without hashing anything."""
    root = models_dir()
    files = _entry_files(entry)
    if files is None:
        return False, None
    total: int | None = 0
    cached = True
    for f in files:
        p = root / f.path
        if p.is_file() and (f.sha256 is not None or _record_path(p).is_file()):
            size: int | None = p.stat().st_size
        else:
            cached, size = False, f.size
        total = None if total is None or size is None else total + size
    return cached, total


def list_models() -> list[ModelInfo]:
    out = []
    root = models_dir()
    for e in REGISTRY.values():
        cached, size = _cache_state(e)
        out.append(
            ModelInfo(
                name=e.name,
                kind=e.kind,
                description=e.description,
                input_size=e.input_size,
                output_stride=e.output_stride,
                aliases=e.aliases,
                verified=e.verified,
                cached=cached,
                size_bytes=size,
                path=root / e.primary.path,
                urls=tuple(f.url for f in e.files),
            )
        )
    return out


# --------------------------------------------------------------------------- download


def _mirror() -> str | None:
    m = os.environ.get(MIRROR_ENV, "").strip()
    return m or None


def _source(f: ModelFile) -> tuple[str, bool]:
    """(where to read ``f`` from, is it a mirror). A mirror is a folder or a URL base."""
    m = _mirror()
    if m is None:
        return f.url, False
    parsed = urllib.parse.urlparse(m)
    if parsed.scheme in ("http", "https"):
        return m.rstrip("/") + "/" + urllib.parse.quote(f.path), True
    if parsed.scheme == "file":
        m = urllib.request.url2pathname(parsed.path)
    return str(Path(m).expanduser().resolve() / f.path), True


class _Fatal(Exception):
    """A failure that another attempt will not fix (404, missing mirror file)."""


def _open(source: str) -> tuple[IO[bytes], int | None]:
    if not re.match(r"^https?://", source):
        try:
            fh = open(source, "rb")
        except FileNotFoundError:
            raise _Fatal("no such file") from None
        return fh, os.fstat(fh.fileno()).st_size
    timeout = float(os.environ.get(TIMEOUT_ENV) or TIMEOUT)
    req = urllib.request.Request(source, headers={"User-Agent": "edgepose-model-fetch"})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # http(s) only, checked above
    except urllib.error.HTTPError as e:
        if e.code == 429 or e.code >= 500:
            raise  # worth another attempt
        raise _Fatal(f"HTTP {e.code} {e.reason}") from None
    length = resp.headers.get("Content-Length")
    return resp, int(length) if length and length.isdigit() else None


_RETRYABLE = (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException, OSError)


def download_file(
    source: str,
    dest: Path,
    expected_sha256: str | None,
    *,
    label: str,
    progress: bool | None = None,
    fix_on_mismatch: str = "",
) -> str:
    """Stream ``source`` (path or http(s) URL) to ``dest`` atomically; returns the sha256.

    With ``expected_sha256`` a mismatch leaves ``dest`` untouched and raises.
    """
    attempts = max(1, int(ATTEMPTS))
    delays = backoff_delays(float(BACKOFF), BACKOFF_MAX)
    last: BaseException | None = None
    for attempt in range(1, attempts + 1):
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            # Same folder as dest, so os.replace is an atomic rename.
            fd, tmp_s = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        except OSError as e:
            raise DownloadError(
                f"cannot write to the model cache {dest.parent} ({e.strerror or e}).",
                f"set {CACHE_ENV} to a writable folder.",
            ) from None
        tmp = Path(tmp_s)
        try:
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out:
                src, total = _open(source)
                with src, progress_bar(total, label, progress=progress, leave=False) as bar:
                    got = 0
                    while True:
                        chunk = src.read(CHUNK)
                        if not chunk:
                            break
                        _write_cache(out, chunk, dest)
                        h.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
                if total is not None and got != total:
                    raise http.client.IncompleteRead(b"", total - got)
                _write_cache(out, None, dest)  # flush + fsync: a power cut must not leave a renamed empty file
            actual = h.hexdigest()
            if expected_sha256 and actual != expected_sha256.lower():
                raise DownloadError(
                    f"{label}: checksum mismatch for {source}: expected sha256 {expected_sha256}, got {actual}; "
                    "nothing was saved.",
                    fix_on_mismatch or "the download or the mirror's copy is corrupt: replace it and fetch again.",
                )
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
            return actual
        except _Fatal as e:
            _unlink(tmp)
            last = e
            break
        except DownloadError:
            _unlink(tmp)
            raise
        except _RETRYABLE as e:
            _unlink(tmp)
            last = e
            log.warning("download of %s failed (attempt %d/%d): %s", source, attempt, attempts, e)
            if attempt < attempts:
                time.sleep(next(delays))
        except BaseException:
            _unlink(tmp)
            raise
    reason = f"{type(last).__name__}: {last}" if not isinstance(last, _Fatal) else str(last)
    raise _DownloadFailed(source, reason)


def _write_cache(out: IO[bytes], chunk: bytes | None, dest: Path) -> None:
    """Write (or, with ``chunk=None``, flush and fsync); a full or read-only disk is not a network problem."""
    try:
        if chunk is None:
            out.flush()
            os.fsync(out.fileno())
        else:
            out.write(chunk)
    except OSError as e:
        raise DownloadError(
            f"cannot write to the model cache {dest.parent} ({e.strerror or e}).",
            f"free some space there, or set {CACHE_ENV} to a writable folder with room.",
        ) from None


class _DownloadFailed(Exception):
    def __init__(self, source: str, reason: str):
        super().__init__(reason)
        self.source = source
        self.reason = reason


def _fetch_file(entry: ModelEntry, f: ModelFile, *, force: bool, progress: bool | None, allow_unverified: bool) -> Path:
    dest = models_dir() / f.path
    if not force and dest.is_file():
        expected = f.sha256 or _read_record(dest)
        if expected is not None:
            actual = sha256_file(dest)
            if actual == expected:
                return dest
            if f.sha256 is None:
                # A trusted-on-first-use file changed: we cannot tell which copy is right.
                raise DownloadError(
                    f"cached file {dest} changed since it was downloaded (recorded sha256 {expected}, now {actual}).",
                    f"run `edgepose models fetch {entry.name} --force --allow-unverified` to download it again.",
                )
            log.warning(
                "cached %s is corrupt (sha256 %s, expected %s); deleting it and downloading it again",
                dest,
                actual,
                expected,
            )
            # Gone before the download: if that fails too, no corrupt file stays behind for the next run.
            _unlink(dest)
            _unlink(_record_path(dest))
    if f.sha256 is None and not allow_unverified:
        raise DownloadError(
            f"{entry.name} has no published sha256, so its download cannot be verified.",
            f"if you trust {f.url}, run `edgepose models fetch {entry.name} --allow-unverified` "
            "(the computed sha256 is printed and recorded in the cache).",
        )
    source, from_mirror = _source(f)
    label = PurePosixPath(f.path).name
    if from_mirror:
        fix = (
            f"the copy in {MIRROR_ENV}={_mirror()} differs from the official file: replace it with "
            f"{f.url} (sha256 {f.sha256}) and fetch again."
        )
    else:
        fix = f"the download was corrupted or the upstream file changed; retry, or download {f.url} yourself and check it."
    try:
        sha = download_file(source, dest, f.sha256, label=label, progress=progress, fix_on_mismatch=fix)
    except _DownloadFailed as e:
        if from_mirror:
            raise DownloadError(
                f"could not get {f.path} for {entry.name} from the mirror {e.source} ({e.reason}).",
                f"put the file at that path in {MIRROR_ENV}={_mirror()} (official URL {f.url}), "
                f"or unset {MIRROR_ENV} to download from the official URL.",
            ) from None
        raise DownloadError(f"could not download {entry.name} from {e.source} ({e.reason}).", MIRROR_HINT) from None
    _write_record(dest, sha)
    if f.sha256 is None:
        # The user opted in; they get the hash to compare against another source.
        print(f"unverified download: {f.path} sha256 {sha} (recorded in {_record_path(dest)})", file=sys.stderr)
    return dest


def fetch(name: str, force: bool = False, *, allow_unverified: bool = False, progress: bool | None = None) -> Path:
    """Make sure every file of model ``name`` is in the cache and valid; return the primary file.

    For a TF.js entry that is ``model-strideN.json`` with its weight shards beside it.
    """
    entry = get_entry(name)
    primary = _fetch_file(entry, entry.primary, force=force, progress=progress, allow_unverified=allow_unverified)
    rest: Iterable[ModelFile] = entry.files[1:]
    if entry.manifest:
        try:
            rest = list(rest) + _manifest_files(entry, primary)
        except DownloadError:
            # A refused manifest (unsafe paths, not a model.json) is not kept, nor its recorded sha256.
            _unlink(primary)
            _unlink(_record_path(primary))
            raise
    for f in rest:
        _fetch_file(entry, f, force=force, progress=progress, allow_unverified=allow_unverified)
    return primary


def resolve_model(name_or_path: str | os.PathLike[str]) -> Path:
    """A path that exists is returned as is; a registry name is fetched through the cache."""
    name = str(name_or_path)
    if not name.strip():
        # Path("") is the current directory: never let an empty setting resolve to it.
        raise ModelError(
            "no model given (empty name).", f"set model.path to a .tflite file or a name such as {DEFAULT_MODEL}."
        )
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    entry = lookup(name)
    if entry is None:
        raise _unknown(name)
    return fetch(entry.name)


def clear_cache(name: str | None = None) -> list[Path]:
    """Delete the cached files of one model (or the whole model cache); returns what was removed."""
    root = models_dir()
    if name is None:
        if root.exists():
            shutil.rmtree(root)
            return [root]
        return []
    files = _entry_files(get_entry(name)) or list(get_entry(name).files)
    removed = []
    for f in files:
        for p in (root / f.path, _record_path(root / f.path)):
            if p.exists():
                p.unlink()
                removed.append(p)
    return removed
