"""File helpers shared by every tool: atomic writes, JSON reading with clear errors, and
checkpoint reading that never runs code from an untrusted pickle."""
import json
import logging
import os
import pickle
import re
import stat
import tempfile
from typing import Any, Callable, Iterable

__all__ = [
    "UntrustedCheckpointError", "atomic_write", "atomic_write_json", "pickle_load_restricted",
    "read_json", "torch_load_trusted",
]


def atomic_write(path: str, write_fn: Callable[[Any], None], mode: str = "w") -> None:
    """Write a file atomically: ``write_fn(fileobj)`` fills a temp file that is renamed over ``path``.

    A crash (or an exception in ``write_fn``) leaves any previous ``path`` untouched and never a
    partial file. The new file gets the permissions of the file it replaces, or the usual
    ``0o666 & ~umask`` for a new file (not the private 0o600 of the temporary file).

    Args:
        path: destination file; its directory is created if needed.
        write_fn: callable receiving the open temporary file object.
        mode: ``"w"`` for text, ``"wb"`` for bytes.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(path: str) -> int:
    """Permission bits for ``path``: those of the file being replaced, else 0o666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_current_umask()


def atomic_write_json(obj: Any, path: str, **dump_kwargs) -> None:
    """Serialise ``obj`` as JSON to ``path`` atomically (temp file + rename).

    Args:
        obj: JSON-serialisable object.
        path: destination file.
        **dump_kwargs: forwarded to :func:`json.dump` (e.g. ``indent``).
    """
    atomic_write(path, lambda f: json.dump(obj, f, **dump_kwargs))


def read_json(path: str, what: str = "JSON file") -> Any:
    """Load a JSON file, turning I/O and syntax problems into errors that name the file.

    Args:
        path: file to read.
        what: description used in error messages (e.g. "results file").

    Returns:
        The decoded object.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not valid JSON.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{what} {path} is not a UTF-8 text file: {e}") from e


class UntrustedCheckpointError(ValueError):
    """A checkpoint holds Python objects outside the allow-list and was not marked as trusted."""


def _safe_checkpoint_globals() -> list:
    """Types real checkpoints carry besides tensors, unpickled without running arbitrary code.

    numpy scalars and dtypes (official VidEoMT files, metrics stored by trainers; also under their
    numpy-1 names ``numpy.core.*``), plain numpy arrays, and ``argparse.Namespace`` (trainer
    options). detectron2's own checkpoints (``iteration``, ``scheduler``, ``optimizer`` state)
    hold only tensors and primitives, which ``weights_only=True`` always accepts.
    """
    import argparse

    import numpy as np

    core = getattr(np, "_core", None) or np.core
    allowed = [argparse.Namespace, np.dtype, np.ndarray, core.multiarray.scalar,
               core.multiarray._reconstruct,
               (core.multiarray.scalar, "numpy.core.multiarray.scalar"),
               (core.multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    return allowed


def _refused_globals(path: str, error: Exception) -> list:
    """Names of the globals ``weights_only`` refuses in ``path`` (empty: not a refusal)."""
    import torch

    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) file or not a checkpoint: read the error instead
        names = re.findall(r"GLOBAL ([\w.]+) was not an allowed global", str(error))
    allowed = {f"{g.__module__}.{g.__qualname__}" if not isinstance(g, tuple) else g[1]
               for g in _safe_checkpoint_globals()}
    return sorted(set(names) - allowed)


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(os.path.expanduser(a)) == os.path.realpath(os.path.expanduser(b))


def torch_load_trusted(path: str, trusted: Iterable[str] = ()) -> Any:
    """``torch.load`` a checkpoint onto the CPU without letting it run code unless trusted.

    The file is read with ``weights_only=True`` plus an allow-list of the non-tensor types real
    checkpoints carry (numpy scalars/dtypes/arrays, ``argparse.Namespace``; see
    :func:`_safe_checkpoint_globals`). A file holding anything else is refused with an error that
    names the file and the refused types, unless ``path`` is in ``trusted`` (config key
    ``MODEL.TRUSTED_CHECKPOINTS``, CLI flag ``--trust-checkpoint``): only then is it re-read as a
    full pickle, which can run arbitrary code.

    Args:
        path: the checkpoint file.
        trusted: files the user declared trustworthy (compared after resolving symlinks).

    Returns:
        What ``torch.load`` returned.

    Raises:
        UntrustedCheckpointError: the file holds non-allow-listed objects and is not trusted.
        Whatever ``torch.load`` raises for a file it cannot read (callers name the file).
    """
    import torch

    try:
        with torch.serialization.safe_globals(_safe_checkpoint_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = _refused_globals(path, e)
        if not refused:
            raise  # not a refusal of some type: corrupt, truncated or not a checkpoint
        if not any(_same_file(path, t) for t in trusted):
            raise UntrustedCheckpointError(
                f"{path} holds Python objects that are not on the checkpoint allow-list: "
                f"{', '.join(refused)}. Unpickling them could run arbitrary code, so the file "
                "was not loaded. If you trust it, name it in MODEL.TRUSTED_CHECKPOINTS "
                "(tools: --trust-checkpoint <file>)."
            ) from None
        logging.getLogger(__name__).warning(
            "%s holds %s: loading it as a full pickle because it is listed as trusted",
            path, ", ".join(refused),
        )
        return torch.load(path, map_location="cpu", weights_only=False)


def _global_name(g) -> str:
    return g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}"


def pickle_load_restricted(path: str, trusted: Iterable[str] = ()) -> Any:
    """Read a plain pickle (detectron2 / Detectron1 ``.pkl`` weights) without running its code.

    Only numpy arrays, scalars and dtypes, ``collections.OrderedDict`` and plain Python values
    are reconstructed; any other global is refused (:class:`UntrustedCheckpointError` naming the
    file and the type) unless ``path`` is in ``trusted``.

    Args:
        path: the ``.pkl`` file.
        trusted: files the user declared trustworthy (full unpickling allowed).

    Returns:
        The unpickled object (``encoding="latin1"``, as detectron2 reads these files).
    """
    import collections

    if any(_same_file(path, t) for t in trusted):
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    allowed = {_global_name(g): (g[0] if isinstance(g, tuple) else g)
               for g in _safe_checkpoint_globals()}
    allowed["collections.OrderedDict"] = collections.OrderedDict
    allowed["builtins.set"], allowed["builtins.frozenset"] = set, frozenset
    allowed["numpy.core.multiarray.scalar"] = allowed["numpy._core.multiarray.scalar"] = \
        allowed.get("numpy._core.multiarray.scalar", allowed.get("numpy.core.multiarray.scalar"))

    class _Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            full = f"{module}.{name}"
            if full in allowed:
                return allowed[full]
            raise UntrustedCheckpointError(
                f"{path} holds Python objects that are not on the checkpoint allow-list: {full}."
                " Unpickling them could run arbitrary code, so the file was not loaded. If you "
                "trust it, name it in MODEL.TRUSTED_CHECKPOINTS (tools: --trust-checkpoint "
                "<file>)."
            )

    with open(path, "rb") as f:
        return _Restricted(f, encoding="latin1").load()
