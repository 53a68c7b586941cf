// UpFirDn2D on the GPU, NHWC: one thread per output element, consecutive threads on consecutive
// channels (coalesced loads). Each visits only the taps that meet a non-zero of the upsampled,
// padded input -- the same definition as the CPU kernel (../upfirdn_2d.cc):
//
//   y[n, oy, ox, c] = sum_{ky, kx} u[oy * downy + ky, ox * downx + kx, c] * f[kh - 1 - ky, kw - 1 - kx]
//   u[p, q, c]      = x[n, (p - pady0) / upy, (q - padx0) / upx, c] where both divide exactly and
//                     land inside x, else 0.
//
// The geometries StyleGAN2 runs ([1,3,3,1] filter: upsampling x2, downsampling /2, and the FIR
// beside the transposed / strided convolutions) are compiled with constant factors and filter
// size, so that their tap loops unroll; everything else takes the generic path.
// Reference: stylegan2_tf/ops/upfirdn_2d.py.

#include "common.cuh"

namespace sg2 {

// UP, DOWN, K > 0: compile-time factor (both axes) and filter size (K x K); 0: read from args.
template <typename T, int UP, int DOWN, int K>
struct UpFirDnElement {
  UpFirDn2DArgs<T> a;

  template <typename I>
  __host__ __device__ void Compute(I i) const {
    using F = typename ComputeType<T>::type;
    const int upx = UP ? UP : a.upx, upy = UP ? UP : a.upy;
    const int downx = DOWN ? DOWN : a.downx, downy = DOWN ? DOWN : a.downy;
    const int kh = K ? K : a.kh, kw = K ? K : a.kw;
    const I c = i % I(a.c);
    I t = i / I(a.c);
    const I ox = t % I(a.out_w);
    t /= I(a.out_w);
    const I oy = t % I(a.out_h), n = t / I(a.out_h);
    F acc = F(0);
#pragma unroll
    for (int ky = 0; ky < kh; ++ky) {
      const int64_t p = int64_t(oy) * downy + ky - a.pady0;  // row in the zero-inserted signal
      if (p < 0 || p % upy != 0 || p / upy >= a.in_h) continue;
      const I row = (n * I(a.in_h) + I(p / upy)) * I(a.in_w);
#pragma unroll
      for (int kx = 0; kx < kw; ++kx) {
        const int64_t q = int64_t(ox) * downx + kx - a.padx0;
        if (q < 0 || q % upx != 0 || q / upx >= a.in_w) continue;
        acc += Load(a.x, (row + I(q / upx)) * I(a.c) + c) * Load(a.f, (kh - 1 - ky) * kw + (kw - 1 - kx));
      }
    }
    Store(a.y, i, acc);
  }

  __host__ __device__ void operator()(int64_t i) const {
    // 32-bit index arithmetic where every index fits: 64-bit division is slow on the device.
    if (a.n * a.out_h * a.out_w * a.c <= INT32_MAX && a.n * a.in_h * a.in_w * a.c <= INT32_MAX) {
      Compute<uint32_t>(uint32_t(i));
    } else {
      Compute<int64_t>(i);
    }
  }
};

enum class Path { kUp2K4, kDown2K4, kK4, kGeneric };

template <typename T>
Path SelectPath(const UpFirDn2DArgs<T>& a) {
  const bool k4 = a.kh == 4 && a.kw == 4;
  const bool up1 = a.upx == 1 && a.upy == 1, down1 = a.downx == 1 && a.downy == 1;
  if (k4 && a.upx == 2 && a.upy == 2 && down1) return Path::kUp2K4;
  if (k4 && up1 && a.downx == 2 && a.downy == 2) return Path::kDown2K4;
  if (k4 && up1 && down1) return Path::kK4;
  return Path::kGeneric;
}

template <typename T, class Run>
const char* Dispatch(const UpFirDn2DArgs<T>& a, const Run& run) {
  if (a.kh < 1 || a.kw < 1 || a.upx < 1 || a.upy < 1 || a.downx < 1 || a.downy < 1) {
    return "UpFirDn2D: filter sizes and factors must be >= 1";
  }
  switch (SelectPath(a)) {
    case Path::kUp2K4: return run(UpFirDnElement<T, 2, 1, 4>{a});
    case Path::kDown2K4: return run(UpFirDnElement<T, 1, 2, 4>{a});
    case Path::kK4: return run(UpFirDnElement<T, 1, 1, 4>{a});
    case Path::kGeneric: break;
  }
  return run(UpFirDnElement<T, 0, 0, 0>{a});
}

template <typename T>
const char* UpFirDn2DPath(const UpFirDn2DArgs<T>& a) {
  switch (SelectPath(a)) {
    case Path::kUp2K4: return "up2_k4";
    case Path::kDown2K4: return "down2_k4";
    case Path::kK4: return "k4";
    case Path::kGeneric: break;
  }
  return "generic";
}

template <typename T>
const char* LaunchUpFirDn2D(const UpFirDn2DArgs<T>& a, void* stream) {
  const int64_t size = a.n * a.out_h * a.out_w * a.c;
  return Dispatch(a, [&](const auto& element) { return LaunchElementwise(element, size, stream); });
}

template <typename T>
const char* EmulateUpFirDn2D(const UpFirDn2DArgs<T>& a) {
  const int64_t size = a.n * a.out_h * a.out_w * a.c;
  return Dispatch(a, [&](const auto& element) { return EmulateElementwise(element, size); });
}

#define SG2_INSTANTIATE(T)                                                    \
  template const char* LaunchUpFirDn2D<T>(const UpFirDn2DArgs<T>&, void*);    \
  template const char* EmulateUpFirDn2D<T>(const UpFirDn2DArgs<T>&);          \
  template const char* UpFirDn2DPath<T>(const UpFirDn2DArgs<T>&);
SG2_INSTANTIATE(float)
SG2_INSTANTIATE(double)
SG2_INSTANTIATE(half_t)
#undef SG2_INSTANTIATE

}  // namespace sg2
