"""Open-vocabulary test fixtures: a randomly initialised tiny open_clip model saved to a file."""
import pytest
import torch


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory):
    """A random-init ``wsovvis_tiny_convnext`` state dict file (open_clip's checkpoint format)."""
    import open_clip

    from wsovvis.open_vocab import register_model_configs

    register_model_configs()
    torch.manual_seed(0)
    model = open_clip.create_model("wsovvis_tiny_convnext", pretrained=None)
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_dense_clip(tiny_clip_file):
    """``(DenseClip, tokenizer)`` of the tiny CLIP, loaded through ``load_clip`` (the user's path)."""
    from wsovvis.open_vocab import DenseClip, load_clip

    model, tokenizer = load_clip("wsovvis_tiny_convnext", tiny_clip_file)
    return DenseClip(model, input_size=64), tokenizer
