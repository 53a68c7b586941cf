"""The named metrics and their official settings.

Names, sample counts and parameters are those of NVlabs/stylegan2 `metric_defaults.py`
(fid50k, is50k, ppl_*, ppl2_wend, pr50k3) and NVlabs/stylegan2-ada-pytorch
`metric_main.py` (the `_full` variants and KID).
"""

import dataclasses
from typing import Optional
from ..errors import UserError

NVLABS_SG2 = "NVlabs/stylegan2"
NVLABS_ADA = "NVlabs/stylegan2-ada-pytorch"


@dataclasses.dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str                      # 'fid' | 'kid' | 'is' | 'ppl' | 'pr'
    num_fakes: int                 # generated images (PPL: path samples)
    max_reals: Optional[int]       # reals used; None = every image of the dataset; 0 = none
    network: str                   # feature network: 'inception' | 'lpips' | 'vgg16'
    origin: str                    # the code whose definition this follows
    params: tuple = ()             # extra (key, value) pairs

    @property
    def options(self):
        return dict(self.params)

    @property
    def needs_dataset(self):
        return self.max_reals != 0


def _ppl(name, space, sampling, crop, origin):
    return MetricDef(name, "ppl", 50000, 0, "lpips", origin,
                     (("space", space), ("sampling", sampling), ("crop", crop), ("epsilon", 1e-4)))


METRICS = {m.name: m for m in [
    # FID: SG2 takes 50k reals and np.cov (N-1); ADA's _full takes every real and divides by N.
    MetricDef("fid50k", "fid", 50000, 50000, "inception", NVLABS_SG2, (("ddof", 1),)),
    MetricDef("fid50k_full", "fid", 50000, None, "inception", NVLABS_ADA, (("ddof", 0),)),
    MetricDef("kid50k", "kid", 50000, 50000, "inception", NVLABS_ADA, (("num_subsets", 100), ("max_subset_size",
                                                                                              1000))),
    MetricDef("kid50k_full", "kid", 50000, 1000000, "inception", NVLABS_ADA,
              (("num_subsets", 100), ("max_subset_size", 1000))),
    MetricDef("is50k", "is", 50000, 0, "inception", NVLABS_SG2, (("num_splits", 10),)),
    _ppl("ppl_zfull", "z", "full", True, NVLABS_SG2),
    _ppl("ppl_wfull", "w", "full", True, NVLABS_SG2),
    _ppl("ppl_zend", "z", "end", True, NVLABS_SG2),
    _ppl("ppl_wend", "w", "end", True, NVLABS_SG2),
    _ppl("ppl2_wend", "w", "end", False, NVLABS_SG2),
    MetricDef("pr50k3", "pr", 50000, 50000, "vgg16", NVLABS_SG2,
              (("nhood_size", 3), ("row_batch_size", 10000), ("col_batch_size", 10000))),
    MetricDef("pr50k3_full", "pr", 50000, 200000, "vgg16", NVLABS_ADA,
              (("nhood_size", 3), ("row_batch_size", 10000), ("col_batch_size", 10000))),
]}


class MetricError(UserError):
    """Bad metric request: unknown name, missing feature network, unusable dataset."""


def parse_metric_list(text):
    """'fid50k,ppl_wend' -> [MetricDef, ...]; 'none' or '' -> []."""
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise MetricError(f"unknown metric '{unknown[0]}'; available: {', '.join(METRICS)}")
    return [METRICS[n] for n in dict.fromkeys(names)]
