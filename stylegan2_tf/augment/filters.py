"""The fixed filters of the augmentation pipeline (Karras et al. 2020, "Training Generative
Adversarial Networks with Limited Data", appendix B; stylegan2-ada-pytorch training/augment.py).

  GEOMETRIC_LOWPASS  symlet-6 low-pass taps, normalised to unit DC gain: the 2x up- and
                     down-sampling around the geometric transforms
  FILTER_BANK        [4, 43] band filters of the image-space filtering: one low band and three
                     octave bands from a symlet-2 two-channel filter bank
  FILTER_BAND_POWER  the 1/f power spectrum the band gains are normalised against
"""

import numpy as np

# Low-pass (scaling-filter) coefficients of the Daubechies symlets, as tabulated in the wavelet
# literature (e.g. PyWavelets' 'sym2' and 'sym6' dec_lo, reversed).
SYM2 = np.array([-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025])
SYM6 = np.array([0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
                 0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
                 -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148])


def _unit_dc(taps):
    """float32 taps scaled to sum 1 (computed in float32, as the reference does)."""
    taps = np.asarray(taps, np.float32)
    return taps / taps.sum(dtype=np.float32)


def _filter_bank(lowpass, bands=4):
    """Band filters of an octave (dyadic) decomposition: row 0 keeps the lowest band, row i
    (i >= 1) one octave band, finest last. Each step doubles the scale of the filters so far
    (zeros between taps), smooths them with the low-pass power response H(z)H(1/z)/2, and adds
    the high-pass power response H(-z)H(-1/z)/2 as the new band's filter, centred."""
    lo = np.asarray(lowpass, np.float64)
    hi = lo * (-1.0) ** np.arange(lo.size)                 # H(-z)
    lo_power = np.convolve(lo, lo[::-1]) / 2
    hi_power = np.convolve(hi, hi[::-1]) / 2
    bank = np.zeros([bands, 1])
    bank[0, 0] = 1.0
    for band in range(1, bands):
        spread = np.zeros([bands, 2 * bank.shape[1] - 1])
        spread[:, ::2] = bank
        bank = np.stack([np.convolve(row, lo_power) for row in spread])
        start = (bank.shape[1] - hi_power.size) // 2
        bank[band, start:start + hi_power.size] += hi_power
    return bank.astype(np.float32)


GEOMETRIC_LOWPASS = _unit_dc(SYM6)
FILTER_BANK = _filter_bank(SYM2)
FILTER_BAND_POWER = np.array([10, 1, 1, 1], np.float64) / 13
