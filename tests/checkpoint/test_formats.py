"""Shared converter helpers of wsovvis.checkpoint.formats."""
import pytest
import torch

from wsovvis.checkpoint.formats import fuse_qkv


def test_fuse_qkv_concatenates_in_q_k_v_order_and_names_incomplete_blocks():
    parts = {1: {f"{c}{kind}": torch.full((2,), float(n)) for n, c in enumerate("qkv")
                 for kind in ("weight", "bias")}}
    out = fuse_qkv(parts, ("weight", "bias"), "b.{i}.qkv.{kind}", "layer")
    assert sorted(out) == ["b.1.qkv.bias", "b.1.qkv.weight"]
    assert out["b.1.qkv.weight"].tolist() == [0, 0, 1, 1, 2, 2]
    del parts[1]["kbias"]
    assert list(fuse_qkv(parts, ("weight",), "b.{i}.qkv.{kind}", "layer")) == ["b.1.qkv.weight"]
    with pytest.raises(ValueError, match=r"layer 1: q/k/v bias incomplete"):
        fuse_qkv(parts, ("weight", "bias"), "b.{i}.qkv.{kind}", "layer")
