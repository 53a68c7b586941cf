"""Generator = mapping network + synthesis network."""

import keras
import numpy as np

from .config import ConfigSerializable, GeneratorConfig
from .mapping import MappingNetwork
from .lod import add_lod_variable, check_lod
from .synthesis import SynthesisNetwork
from .synthesis_progressive import ProgressiveSynthesisNetwork


class Generator(ConfigSerializable, keras.Model):
    """G(z, c) -> images [N, R, R, C] (NHWC, float, roughly [-1, 1]).

    Call keywords: `c` (one-hot labels for conditional nets), `truncation_psi`,
    `truncation_cutoff`, `noise_mode` ('random' | 'const' | 'none'),
    `fused_modconv` (None = the config's choice, automatic by default: fused on GPUs,
    non-fused on CPUs), `return_ws`, `noise_seed` ([2] int32:
    reproducible 'random' noise).

    Progressive architectures (configs A-D) have a `lod` variable (networks/lod.py); G
    hands it to its synthesis network, whose own `lod` is kept equal by `set_lod`.
    """

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig = None, **kwargs):
        super().__init__(**kwargs)
        self.config = config if config is not None else GeneratorConfig()
        self.mapping = MappingNetwork(self.config, name="mapping")
        if self.config.progressive:
            self.synthesis = ProgressiveSynthesisNetwork(self.config, name="synthesis")
            self.lod = add_lod_variable(self)
        else:
            self.synthesis = SynthesisNetwork(self.config, name="synthesis")
            self.lod = None
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
             fused_modconv=None, return_ws=False, noise_seed=None, training=False, level=None):
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        img = self.synthesize(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, noise_seed=noise_seed,
                              level=level)
        return (img, ws) if return_ws else img

    def synthesize(self, ws, level=None, **kwargs):
        """The synthesis network at G's own lod (progressive nets; `level` optional, static)."""
        if self.lod is None:
            return self.synthesis(ws, **kwargs)
        return self.synthesis(ws, lod=self.lod, level=level, **kwargs)

    def set_lod(self, lod):
        """Set the level of detail of G and of its synthesis network (progressive nets only)."""
        if self.lod is None:
            raise ValueError(f"{self.name}: architecture {self.config.architecture!r} has no level of detail")
        value = check_lod(lod, self.config.img_resolution)
        self.lod.assign(value)
        self.synthesis.lod.assign(value)

    def build_weights(self):
        """Create every variable by running one tiny batch (variables also exist before,
        this just traces once so that summaries and checkpoints see a built model)."""
        z = np.zeros([1, self.config.z_dim], np.float32)
        c = np.zeros([1, self.config.c_dim], np.float32) if self.config.c_dim else None
        self(z, c=c, noise_mode="none")
        return self



def num_trainable_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
