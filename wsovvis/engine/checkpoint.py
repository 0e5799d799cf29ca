"""The one checkpointer of training, resume and evaluation, with the wsovvis checkpoint policy.

:class:`VideoCheckpointer` is a detectron2 ``DetectionCheckpointer`` whose every load runs:

1. safe reading (:func:`wsovvis.utils.io.torch_load_trusted`, a restricted unpickler for
   ``.pkl``): no code from an untrusted pickle runs; ``MODEL.TRUSTED_CHECKPOINTS`` opts in;
2. format conversion (:mod:`wsovvis.checkpoint.formats`, e.g. VNext SeqFormer files);
3. for eval/resume, a VidEoMT ``pos_embed`` grid of another ``IMG_SIZE`` is adopted;
4. the fit check (:mod:`wsovvis.checkpoint.policy`) before any tensor is copied, so a resume with
   a checkpoint of another architecture fails with one message (not in the optimizer), and
   eval-only never scores a half-random model;
5. one summary line of what was loaded / ignored / re-initialised (instead of fvcore's
   per-key warnings).
"""
import logging
import os
import pickle
import urllib.error
from typing import Iterable, Optional

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from fvcore.common.checkpoint import Checkpointer, _strip_prefix_if_present

from wsovvis.checkpoint import assess_fit, convert_to_wsovvis, external_weight_prefixes
from wsovvis.checkpoint import random_backbone_error
from wsovvis.modeling.videomt.hf_checkpoint import hf_weights_file, read_safetensors
from wsovvis.utils.io import (
    UntrustedCheckpointError,
    atomic_write,
    pickle_load_restricted,
    torch_load_trusted,
)

__all__ = ["CheckpointError", "VideoCheckpointer"]

logger = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not fit the model."""


class VideoCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` applying the wsovvis checkpoint policy on every load.

    Args:
        model: the model (DDP-wrapped or not).
        save_dir: where checkpoints are saved (``OUTPUT_DIR``).
        cfg: the model's config: ``MODEL.TRUSTED_CHECKPOINTS``, backbone weights paths that
            count as loaded (``MODEL.DINOV2.WEIGHTS``, ``MODEL.VIDEOMT.VIT_WEIGHTS``,
            ``MODEL.SWIN.WEIGHTS``),
            ``ALLOW_RANDOM_INIT`` keys. None: no trusted files, no external weights.
        mode: policy of :meth:`load` when not resuming: ``"init"`` (training from
            ``MODEL.WEIGHTS``: partial checkpoints allowed) or ``"eval"`` (every tensor
            required). :meth:`resume_or_load` uses ``"resume"`` when it resumes.
        **checkpointables: as detectron2 (``trainer=...``).

    After a load, :attr:`last_report` is the :class:`~wsovvis.checkpoint.FitReport`.
    """

    def __init__(self, model, save_dir: str = "", *, cfg=None, mode: str = "init",
                 **checkpointables):
        super().__init__(model, save_dir, **checkpointables)
        self.cfg = cfg
        self.mode = mode
        self._load_mode = mode
        self.last_report = None
        self._source = ""

    @property
    def trusted(self) -> Iterable[str]:
        """Files named in ``MODEL.TRUSTED_CHECKPOINTS`` (full pickles allowed)."""
        if self.cfg is None:
            return ()
        return tuple(self.cfg.MODEL.get("TRUSTED_CHECKPOINTS", ()))

    # --- saving ---------------------------------------------------------------------------
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

    # --- loading --------------------------------------------------------------------------
    def resume_or_load(self, path: str, *, resume: bool = True):
        """detectron2's ``resume_or_load`` with the policy mode: ``resume`` when resuming."""
        if resume and self.has_checkpoint():
            return self.load(self.get_checkpoint_file(), mode="resume")
        return self.load(path, checkpointables=[])

    def load(self, path: str, checkpointables=None, *, mode: Optional[str] = None):
        """Load ``path`` (local file or URL) under the policy of ``mode`` (default :attr:`mode`).

        Raises:
            CheckpointError: unreadable / untrusted / non-fitting checkpoint, or a URL that
                cannot be downloaded (one line naming the URL and how to use a local file).
        """
        self._load_mode = mode or self.mode
        self._source = path
        self.last_report = None
        try:  # a Hugging Face VidEoMT folder / hub id -> its model.safetensors
            path = hf_weights_file(path) or path
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        if path and not os.path.isfile(path) and "://" in path:
            path = self._download(path)
        return super().load(path, checkpointables=checkpointables)

    def _download(self, url: str) -> str:
        try:
            return self.path_manager.get_local_path(url)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise CheckpointError(
                f"cannot download checkpoint {url}: {reason}. Offline? Download it elsewhere "
                "and pass the local file as MODEL.WEIGHTS /path/to/file (or set MODEL.WEIGHTS "
                "'' and give the backbone its own weights, e.g. MODEL.DINOV2.WEIGHTS)"
            ) from None

    def _load_file(self, filename: str):
        if filename.endswith(".safetensors"):  # no pickle: safe by construction
            try:
                return {"model": read_safetensors(filename)}
            except ValueError as e:
                raise CheckpointError(str(e)) from None
        try:
            if filename.endswith(".pkl"):
                loaded = pickle_load_restricted(filename, self.trusted)
                return self._wrap_pkl(loaded)
            loaded = torch_load_trusted(filename, self.trusted)
        except UntrustedCheckpointError as e:
            raise CheckpointError(str(e)) from None
        except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError, KeyError,
                OSError) as e:
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

    @staticmethod
    def _wrap_pkl(data):
        """detectron2's ``.pkl`` conventions (its own and Caffe2/Detectron1 model-zoo files)."""
        if not isinstance(data, dict):
            raise ValueError(f"a .pkl checkpoint must hold a dict, not {type(data).__name__}")
        if "model" in data and "__author__" in data:
            return data
        if "blobs" in data:
            data = data["blobs"]
        data = {k: v for k, v in data.items() if not k.endswith("_momentum")}
        return {"model": data, "__author__": "Caffe2", "matching_heuristics": True}

    def _load_model(self, checkpoint):
        model = self.model
        sd = checkpoint["model"]
        self._convert_ndarray_to_tensor(sd)
        if checkpoint.get("matching_heuristics", False):  # model-zoo .pkl: names by heuristics
            sd = align_and_update_state_dicts(
                model.state_dict(), sd, c2_conversion=checkpoint.get("__author__") == "Caffe2")
        _strip_prefix_if_present(sd, "module.")
        try:
            sd, conv = convert_to_wsovvis(sd)
        except ValueError as e:
            raise CheckpointError(f"Checkpoint {self._source}: {e}") from None
        mode = self._load_mode
        grid = None if mode == "init" else self._adopt_pos_embed_grid(sd)
        patch = self.cfg.MODEL.VIDEOMT.PATCH_SIZE if self.cfg is not None and \
            "VIDEOMT" in self.cfg.MODEL else 16
        report, ok = assess_fit(
            model.state_dict(), sd, mode=mode, source=self._source,
            external=external_weight_prefixes(model, self.cfg),
            fmt=conv.format if conv else "wsovvis", ignored=conv.ignored if conv else None,
            patch_size=patch)
        report.grid = grid
        self.last_report = report
        if not ok:
            raise CheckpointError(report.error_message())
        (logger.warning if report.reinitialized or report.unexpected else logger.info)(
            report.summary())
        loadable = set(report.loaded)
        checkpoint["model"] = {k: v for k, v in sd.items() if k in loadable}
        return Checkpointer._load_model(self, checkpoint)

    def _log_incompatible_keys(self, incompatible) -> None:
        """Replaced by the one summary of :meth:`_load_model` (``last_report``)."""

    def _adopt_pos_embed_grid(self, sd) -> Optional[int]:
        """VidEoMT: take the ``pos_embed`` reference grid of the checkpoint (eval / resume).

        The ViT interpolates ``pos_embed`` to every input size, so a checkpoint trained with
        another ``IMG_SIZE`` is used exactly by adopting its grid.
        """
        for name, module in self.model.named_modules():
            key = f"{name}.backbone.pos_embed"
            if not hasattr(module, "set_reference_grid") or key not in sd:
                continue
            own = module.backbone.pos_embed
            if sd[key].dim() == 3 and sd[key].shape[1] != own.shape[1]:
                img = module.set_reference_grid(sd[key].shape[1])
                logger.info("pos_embed reference grid taken from %s (IMG_SIZE=%d)",
                            self._source, img)
                return int(sd[key].shape[1])
        return None

    def check_initialisation(self) -> None:
        """Refuse training on a random pretrained-by-design backbone (see
        :func:`wsovvis.checkpoint.random_backbone_error`); call after loading ``MODEL.WEIGHTS``
        (or after finding none).

        Raises:
            CheckpointError: the backbone would train from random weights without
                ``ALLOW_RANDOM_INIT``.
        """
        if self.cfg is None:
            return
        loaded = self.last_report.loaded if self.last_report is not None else ()
        msg = random_backbone_error(self.model, self.cfg, loaded)
        if msg:
            raise CheckpointError(msg)
