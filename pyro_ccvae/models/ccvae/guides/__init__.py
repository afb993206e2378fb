"""Swappable guides ``q(z | x) q(y | z_c)`` (docs/guides.md): built-ins by name, a user's own by
``module:attr`` (:mod:`.registry`); the contract every guide follows (:mod:`.base`) and its
start-up check (:mod:`.check`)."""
from .base import CCVAEGuide, DiagonalClassifier, JointOverLabels, PriorClassifier, labels_plate, sample_labels
from .check import check_guide
from .flow import FlowGuide
from .fullrank import FullRankGuide
from .lowrank import LowRankGuide
from .meanfield import MeanFieldGuide
from .registry import GUIDES, GuideError, build_guide, guide_options, resolve_guide, tie_classifier

__all__ = [
    "GUIDES", "CCVAEGuide", "DiagonalClassifier", "FlowGuide", "FullRankGuide", "GuideError", "JointOverLabels",
    "LowRankGuide", "MeanFieldGuide", "PriorClassifier", "build_guide", "check_guide", "guide_options", "labels_plate",
    "resolve_guide", "sample_labels", "tie_classifier",
]  # fmt: skip
