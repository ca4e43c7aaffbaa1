"""Encoders and heads; :func:`build_encoder` picks the encoder a data schema needs."""

from typing import Any

from torch import nn

from .encoders import BACKBONES, Encoder
from ..data.encoder_graph import GraphView
from .heads import ClassifierHead, FeatureHead, PairHead
from .molecular import MolEncoder


def build_encoder(cfg: Any, schema: dict) -> nn.Module:
    """The molecular GIN for molecule data (``schema["kind"] == "molecules"``), else the
    typed heterogeneous-graph :class:`Encoder`."""
    if schema.get("kind") == "molecules":
        return MolEncoder(cfg, schema)
    return Encoder(cfg, schema)


__all__ = ["BACKBONES", "Encoder", "MolEncoder", "GraphView", "ClassifierHead", "FeatureHead", "PairHead",
           "build_encoder"]
