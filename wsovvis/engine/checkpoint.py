"""Checkpoint loading with clear errors: corrupt files, wrong architectures, foreign pickles."""
import logging
import os
import pickle

import torch
from detectron2.checkpoint import DetectionCheckpointer

from wsovvis.utils.io import atomic_write, torch_load_trusted

__all__ = ["CheckpointError", "VideoCheckpointer"]

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model."""


class VideoCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that refuses checkpoints which silently load nothing.

    * unreadable / corrupt files raise :class:`CheckpointError` naming the file;
    * torch ≥ 2.6 ``weights_only`` loading is tried first; foreign pickles (e.g. official
      checkpoints holding numpy scalars) fall back to a full unpickle with a warning;
    * after loading model weights, :attr:`last_incompatible` holds the missing / unexpected /
      shape-mismatched keys, and :meth:`check_compatible` turns a mismatch into an error.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last_incompatible = None

    def save(self, name: str, **kwargs) -> None:
        """Save ``<save_dir>/<name>.pth`` atomically (a kill mid-write never leaves a torn file)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f), "wb")
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Point ``last_checkpoint`` at ``last_filename_basename`` atomically."""
        atomic_write(
            os.path.join(self.save_dir, "last_checkpoint"),
            lambda f: f.write(last_filename_basename),
        )

    def _load_file(self, filename: str):
        if filename.endswith(".pkl"):
            try:
                return super()._load_file(filename)
            except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as e:
                raise CheckpointError(f"Cannot read checkpoint {filename}: {e!r}") from e
        try:
            loaded = torch_load_trusted(filename)
        except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, OSError) as e:
            if not os.path.isfile(filename):
                raise
            raise CheckpointError(
                f"Cannot read checkpoint {filename}: the file is corrupt or not a torch checkpoint "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from e
        if not isinstance(loaded, dict):
            raise CheckpointError(
                f"Checkpoint {filename} holds a {type(loaded).__name__}, not a dict"
            )
        if "model" not in loaded:
            loaded = {"model": loaded}
        return loaded

    def _load_model(self, checkpoint):
        self.last_incompatible = super()._load_model(checkpoint)
        return self.last_incompatible

    def check_compatible(self, path: str, *, strict: bool) -> None:
        """Raise if the last :meth:`load` did not fit the model.

        Args:
            path: the file that was loaded (for the message).
            strict: require every model tensor to be loaded with the right shape (resume);
                otherwise only require that at least one tensor matched (initialisation from a
                related checkpoint, e.g. a backbone or a different class count).

        Raises:
            CheckpointError: on mismatch.
        """
        inc = self.last_incompatible
        if inc is None:
            return
        model_keys = list(self.model.state_dict().keys())
        bad = set(inc.missing_keys) | {k for k, *_ in inc.incorrect_shapes}
        if all(k in bad for k in model_keys):  # not one tensor loaded
            raise CheckpointError(
                f"Checkpoint {path} does not fit this model: none of the model's "
                f"{len(model_keys)} tensors were found in it with a matching name and shape "
                f"(model expects e.g. {model_keys[:3]}; checkpoint has unexpected keys e.g. "
                f"{list(inc.unexpected_keys)[:3]}). Wrong architecture or MODEL.WEIGHTS?"
            )
        if strict and (inc.missing_keys or inc.incorrect_shapes):
            raise CheckpointError(
                f"Checkpoint {path} does not fully fit this model: missing "
                f"{list(inc.missing_keys)[:5]}, wrong shapes "
                f"{[k for k, *_ in inc.incorrect_shapes][:5]}. Resuming from a run with "
                "a different architecture?"
            )
