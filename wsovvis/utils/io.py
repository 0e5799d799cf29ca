"""File helpers shared by every tool: atomic writes and JSON reading with clear errors."""
import json
import logging
import os
import pickle
import stat
import tempfile
from typing import Any, Callable

__all__ = ["atomic_write", "atomic_write_json", "read_json", "torch_load_trusted"]


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


def torch_load_trusted(path: str) -> Any:
    """``torch.load`` a file onto the CPU, allowing full pickles of trusted checkpoints.

    ``weights_only=True`` is tried first; a file it refuses because it holds other Python objects
    (argparse options of a trainer pickle, numpy scalars of official checkpoints) is re-read as a
    full pickle, with a warning. A full unpickle can run code: only for files you trust.

    Args:
        path: the checkpoint file.

    Returns:
        What ``torch.load`` returned.

    Raises:
        Whatever ``torch.load`` raises for a file it cannot read (callers name the file).
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        logging.getLogger(__name__).warning(
            "%s holds non-tensor Python objects: loading it as a full pickle (weights_only=False;"
            " only for checkpoints you trust)",
            path,
        )
        return torch.load(path, map_location="cpu", weights_only=False)
