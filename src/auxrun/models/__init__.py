"""Encoders and heads."""

from .encoders import BACKBONES, Encoder
from .graph_view import GraphView
from .heads import ClassifierHead, FeatureHead, PairHead

__all__ = ["BACKBONES", "Encoder", "GraphView", "ClassifierHead", "FeatureHead", "PairHead"]
