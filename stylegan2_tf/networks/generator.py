"""Generator = mapping network + synthesis network."""

import keras
import numpy as np
import tensorflow as tf

from .config import ConfigSerializable, GeneratorConfig
from .mapping import MappingNetwork
from .synthesis import SynthesisNetwork


class Generator(ConfigSerializable, keras.Model):
    """G(z, c) -> images [N, R, R, C] (NHWC, float, roughly [-1, 1]).

    Call keywords: `c` (one-hot labels for conditional nets), `truncation_psi`,
    `truncation_cutoff`, `noise_mode` ('random' | 'const' | 'none'),
    `fused_modconv` (None = the config's choice, automatic by default: fused on GPUs,
    non-fused on CPUs), `return_ws`, `noise_seed` ([2] int32:
    reproducible 'random' noise).
    """

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config if config is not None else GeneratorConfig()
        self.mapping = MappingNetwork(self.config, name="mapping")
        self.synthesis = SynthesisNetwork(self.config, name="synthesis")
        # Every weight exists now: no symbolic build pass on the first call.
        self.built = True

    @property
    def z_dim(self):
        return self.config.z_dim

    @property
    def c_dim(self):
        return self.config.c_dim

    @property
    def num_ws(self):
        return self.config.num_ws

    def call(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None, noise_mode="random",
             fused_modconv=None, return_ws=False, noise_seed=None, training=False):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        img = self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, noise_seed=noise_seed)
        return (img, ws) if return_ws else img

    def build_weights(self):
        """Create every variable by running one tiny batch (variables also exist before,
        this just traces once so that summaries and checkpoints see a built model)."""
        z = np.zeros([1, self.config.z_dim], np.float32)
        c = np.zeros([1, self.config.c_dim], np.float32) if self.config.c_dim else None
        self(z, c=c, noise_mode="none")
        return self



def num_trainable_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
