"""Latent editing: directions in W found from the weights (SeFa) or from samples (GANSpace), and
edits that move w along them (`directions.py`, `edits.py`)."""

from .directions import (Directions, EditingError, ganspace, load_directions, network_digest, pca_directions,
                         sefa, sefa_factorize, style_affines)
from .edits import apply_direction, parse_layers

__all__ = ["Directions", "EditingError", "apply_direction", "ganspace", "load_directions", "network_digest",
           "parse_layers", "pca_directions", "sefa", "sefa_factorize", "style_affines"]
