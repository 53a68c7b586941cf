// A TensorFlow-free check of the CUDA kernels against plain reference loops, and their timing.
//
//   harness              run every check on the GPU (exit 77 when no GPU is visible)
//   harness --emulate    run the kernels' own per-element code on the CPU instead (no GPU needed)
//   harness --bench      also time the config-F shapes at 256^2 and 1024^2 (batch 4) on the GPU
//
// Exit status 0 when every check passes, 1 when one fails. Build: see ../README.md.
//
// The UpFirDn2D reference is written from the definition -- insert zeros, pad or crop, convolve
// with the filter, keep every down-th sample -- independently of the kernels' tap skipping.
// The FusedBiasAct reference evaluates the activation formulas of ../bias_act_math.h in float64
// (their math is checked against TensorFlow's own ops by tests/test_custom_ops.py through the CPU
// kernel, which shares the header); lrelu, the StyleGAN2 case, is also spelled out here.

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../bias_act_math.h"
#include "kernels.h"

namespace {

using sg2::half_t;

template <typename T> double ToDouble(T v) { return double(v); }
template <> double ToDouble<half_t>(half_t v) { return double(__half2float(reinterpret_cast<const __half&>(v))); }
template <typename T> T FromDouble(double v) { return T(v); }
template <> half_t FromDouble<half_t>(double v) {
  const __half h = __float2half_rn(float(v));
  half_t r;
  std::memcpy(&r, &h, sizeof r);
  return r;
}
template <typename T> const char* TypeName();
template <> const char* TypeName<float>() { return "float32"; }
template <> const char* TypeName<double>() { return "float64"; }
template <> const char* TypeName<half_t>() { return "float16"; }
template <typename T> double Tolerance();  // relative to the largest reference magnitude
template <> double Tolerance<double>() { return 1e-12; }
template <> double Tolerance<float>() { return 2e-6; }
template <> double Tolerance<half_t>() { return 2e-3; }

bool g_emulate = false;
int g_failures = 0, g_checks = 0;

#define SG2_CUDA_OK(call)                                                                    \
  do {                                                                                       \
    const cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      std::exit(1);                                                                          \
    }                                                                                        \
  } while (0)

// Host or device copies of a host vector, depending on the mode.
template <typename T>
struct Buffer {
  std::vector<T> host;
  T* device = nullptr;
  explicit Buffer(std::vector<T> h) : host(std::move(h)) {
    if (!g_emulate && !host.empty()) {
      SG2_CUDA_OK(cudaMalloc(&device, host.size() * sizeof(T)));
      SG2_CUDA_OK(cudaMemcpy(device, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
    }
  }
  ~Buffer() { if (device) cudaFree(device); }
  T* ptr() { return host.empty() ? nullptr : (g_emulate ? host.data() : device); }
  std::vector<T>& Fetch() {
    if (!g_emulate && device) {
      SG2_CUDA_OK(cudaDeviceSynchronize());
      SG2_CUDA_OK(cudaMemcpy(host.data(), device, host.size() * sizeof(T), cudaMemcpyDeviceToHost));
    }
    return host;
  }
};

template <typename T>
std::vector<T> Random(std::mt19937& rng, size_t n, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<T> v(n);
  for (auto& e : v) e = FromDouble<T>(normal(rng));
  return v;
}

template <typename T>
void Compare(const std::string& what, const std::vector<T>& got, const std::vector<double>& want) {
  ++g_checks;
  double scale = 1e-30, worst = 0.0;
  size_t at = 0;
  for (double w : want) scale = std::max(scale, std::fabs(w));
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs(ToDouble(got[i]) - want[i]);
    if (!(err <= worst)) { worst = err; at = i; }  // NaN counts as the worst
  }
  const bool ok = got.size() == want.size() && worst <= Tolerance<T>() * scale;
  if (!ok) {
    ++g_failures;
    std::printf("FAIL %-60s %s: max error %.3g at %zu (got %.9g, want %.9g, scale %.3g)\n", what.c_str(),
                TypeName<T>(), worst, at, ToDouble(got[at]), want[at], scale);
  }
}

// ------------------------------------------------------------------------------ UpFirDn2D

struct Geometry { int64_t n, h, w, c; int kh, kw, upx, upy, downx, downy, padx0, padx1, pady0, pady1; };

int64_t OutSize(int64_t in, int up, int p0, int p1, int k, int down) { return (in * up + p0 + p1 - k) / down + 1; }

// From the definition: zero insertion, pad / crop, 2-D convolution, decimation.
std::vector<double> ReferenceUpFirDn(const Geometry& g, const std::vector<double>& x, const std::vector<double>& f) {
  const int64_t uh = g.h * g.upy + g.pady0 + g.pady1, uw = g.w * g.upx + g.padx0 + g.padx1;
  const int64_t oh = OutSize(g.h, g.upy, g.pady0, g.pady1, g.kh, g.downy);
  const int64_t ow = OutSize(g.w, g.upx, g.padx0, g.padx1, g.kw, g.downx);
  std::vector<double> y(g.n * oh * ow * g.c, 0.0);
  std::vector<double> u(uh * uw);
  for (int64_t n = 0; n < g.n; ++n) {
    for (int64_t c = 0; c < g.c; ++c) {
      std::fill(u.begin(), u.end(), 0.0);
      for (int64_t i = 0; i < g.h; ++i) {
        for (int64_t j = 0; j < g.w; ++j) {
          const int64_t p = i * g.upy + g.pady0, q = j * g.upx + g.padx0;  // where x lands in u
          if (p >= 0 && p < uh && q >= 0 && q < uw) u[p * uw + q] = x[((n * g.h + i) * g.w + j) * g.c + c];
        }
      }
      for (int64_t oy = 0; oy < oh; ++oy) {
        for (int64_t ox = 0; ox < ow; ++ox) {
          double s = 0.0;  // full convolution evaluated at the valid position: flip the filter
          for (int a = 0; a < g.kh; ++a)
            for (int b = 0; b < g.kw; ++b)
              s += u[(oy * g.downy + a) * uw + ox * g.downx + b] * f[(g.kh - 1 - a) * g.kw + (g.kw - 1 - b)];
          y[((n * oh + oy) * ow + ox) * g.c + c] = s;
        }
      }
    }
  }
  return y;
}

template <typename T>
sg2::UpFirDn2DArgs<T> Args(const Geometry& g) {
  sg2::UpFirDn2DArgs<T> a{};
  a.n = g.n; a.in_h = g.h; a.in_w = g.w; a.c = g.c;
  a.out_h = OutSize(g.h, g.upy, g.pady0, g.pady1, g.kh, g.downy);
  a.out_w = OutSize(g.w, g.upx, g.padx0, g.padx1, g.kw, g.downx);
  a.kh = g.kh; a.kw = g.kw; a.upx = g.upx; a.upy = g.upy; a.downx = g.downx; a.downy = g.downy;
  a.padx0 = g.padx0; a.pady0 = g.pady0;
  return a;
}

template <typename T>
void CheckUpFirDn(const Geometry& g, std::mt19937& rng, const std::string& label) {
  Buffer<T> x(Random<T>(rng, g.n * g.h * g.w * g.c)), f(Random<T>(rng, g.kh * g.kw, 0.5));
  sg2::UpFirDn2DArgs<T> a = Args<T>(g);
  Buffer<T> y{std::vector<T>(a.n * a.out_h * a.out_w * a.c)};
  a.x = x.ptr(); a.f = f.ptr(); a.y = y.ptr();
  const char* err = g_emulate ? sg2::EmulateUpFirDn2D(a) : sg2::LaunchUpFirDn2D(a, nullptr);
  char what[256];
  std::snprintf(what, sizeof what, "UpFirDn2D %s [%lld,%lld,%lld,%lld] k%dx%d up%d,%d down%d,%d pad%d,%d,%d,%d (%s)",
                label.c_str(), (long long)g.n, (long long)g.h, (long long)g.w, (long long)g.c, g.kh, g.kw, g.upy,
                g.upx, g.downy, g.downx, g.pady0, g.pady1, g.padx0, g.padx1, sg2::UpFirDn2DPath(a));
  if (err) { ++g_failures; std::printf("FAIL %s: %s\n", what, err); return; }
  std::vector<double> xd, fd;
  for (T v : x.host) xd.push_back(ToDouble(v));
  for (T v : f.host) fd.push_back(ToDouble(v));
  Compare(what, y.Fetch(), ReferenceUpFirDn(g, xd, fd));
}

template <typename T>
void CheckAllUpFirDn() {
  std::mt19937 rng(1234);
  // The StyleGAN2 geometries ([1,3,3,1] filter; odd sizes as the 4x4 / transposed-conv blocks give).
  CheckUpFirDn<T>({2, 8, 8, 37, 4, 4, 2, 2, 1, 1, 2, 1, 2, 1}, rng, "upsample_2d x2");
  CheckUpFirDn<T>({2, 16, 16, 37, 4, 4, 1, 1, 2, 2, 1, 1, 1, 1}, rng, "downsample_2d /2");
  CheckUpFirDn<T>({2, 17, 17, 37, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1}, rng, "FIR after transposed conv");
  CheckUpFirDn<T>({2, 16, 16, 37, 4, 4, 1, 1, 1, 1, 2, 2, 2, 2}, rng, "FIR before strided conv");
  std::uniform_int_distribution<int> factor(1, 4), taps(1, 8), pad(-3, 4), size(1, 9), chans(1, 6);
  for (int t = 0; t < 60; ++t) {
    Geometry g{};
    for (;;) {
      g = {size(rng) % 3 + 1, size(rng), size(rng), chans(rng), taps(rng), taps(rng), factor(rng), factor(rng),
           factor(rng), factor(rng), pad(rng), pad(rng), pad(rng), pad(rng)};
      const int64_t uh = g.h * g.upy + g.pady0 + g.pady1, uw = g.w * g.upx + g.padx0 + g.padx1;
      if (uh >= g.kh && uw >= g.kw) break;  // a geometry that leaves something to filter
    }
    CheckUpFirDn<T>(g, rng, "random");
  }
}

// ------------------------------------------------------------------------------ FusedBiasAct

double ReferenceBiasAct(sg2::Act act, int order, double z, double alpha, double dy, double gain, double clamp) {
  using sg2::Act;
  double v, d;
  if (act == Act::kLrelu) {  // spelled out independently of the header
    v = z > 0 ? z : alpha * z;
    d = order == 1 ? (z > 0 ? 1.0 : alpha) : 0.0;
  } else {
#define SG2_CASE(A) case Act::A: v = sg2::Value<Act::A, double>(z, alpha); \
    d = order ? sg2::Derivative<Act::A, double>(z, alpha, order) : 0.0; break;
    switch (act) {
      SG2_CASE(kLinear) SG2_CASE(kRelu) SG2_CASE(kLrelu) SG2_CASE(kTanh) SG2_CASE(kSigmoid) SG2_CASE(kElu)
      SG2_CASE(kSelu) SG2_CASE(kSoftplus) SG2_CASE(kSwish)
    }
#undef SG2_CASE
  }
  v *= gain;
  if (order == 0) return clamp >= 0 ? std::min(std::max(v, -clamp), clamp) : v;
  return (clamp < 0 || std::fabs(v) <= clamp) ? dy * gain * d : 0.0;
}

template <typename T>
void CheckBiasAct(sg2::Act act, int order, double clamp, bool bias, std::mt19937& rng) {
  const int64_t rows = 37, channels = 19, size = rows * channels;
  Buffer<T> x(Random<T>(rng, size, 1.5)), b(bias ? Random<T>(rng, channels) : std::vector<T>()),
      dy(Random<T>(rng, size)), out{std::vector<T>(size)};
  sg2::FusedBiasActArgs<T> a{};
  a.x = x.ptr(); a.b = b.ptr(); a.dy = order ? dy.ptr() : nullptr; a.out = out.ptr();
  a.size = size; a.channels = channels; a.act = int(act); a.order = order;
  a.alpha = 0.2f; a.gain = std::sqrt(2.0); a.clamp = clamp;
  const char* err = g_emulate ? sg2::EmulateFusedBiasAct(a) : sg2::LaunchFusedBiasAct(a, nullptr);
  char what[160];
  std::snprintf(what, sizeof what, "FusedBiasAct act %d order %d clamp %g bias %d", int(act), order, clamp, int(bias));
  if (err) { ++g_failures; std::printf("FAIL %s: %s\n", what, err); return; }
  std::vector<double> want(size);
  for (int64_t i = 0; i < size; ++i) {
    const double z = ToDouble(x.host[i]) + (bias ? ToDouble(b.host[i % channels]) : 0.0);
    // A value within rounding of the clamp bound may land on either side: keep those out.
    want[i] = ReferenceBiasAct(act, order, z, double(a.alpha), ToDouble(dy.host[i]), a.gain, clamp);
  }
  std::vector<T>& got = out.Fetch();
  if (clamp >= 0) {
    for (int64_t i = 0; i < size; ++i) {
      const double z = ToDouble(x.host[i]) + (bias ? ToDouble(b.host[i % channels]) : 0.0);
      const double v = ReferenceBiasAct(act, 0, z, double(a.alpha), 0.0, a.gain, -1.0);
      if (std::fabs(std::fabs(v) - clamp) < 1e-2 * clamp) { want[i] = 0.0; got[i] = FromDouble<T>(0.0); }
    }
  }
  Compare(what, got, want);
}

template <typename T>
void CheckAllBiasAct() {
  std::mt19937 rng(99);
  for (int act = 0; act <= int(sg2::Act::kSwish); ++act)
    for (int order = 0; order <= 3; ++order)
      for (double clamp : {-1.0, 0.8})
        for (bool bias : {true, false}) CheckBiasAct<T>(sg2::Act(act), order, clamp, bias, rng);
}

// ------------------------------------------------------------------------------ timing

template <class Fn>
float TimeMs(Fn fn, int repeats) {
  cudaEvent_t start, stop;
  SG2_CUDA_OK(cudaEventCreate(&start));
  SG2_CUDA_OK(cudaEventCreate(&stop));
  fn();
  SG2_CUDA_OK(cudaEventRecord(start));
  for (int i = 0; i < repeats; ++i) fn();
  SG2_CUDA_OK(cudaEventRecord(stop));
  SG2_CUDA_OK(cudaEventSynchronize(stop));
  float ms = 0;
  SG2_CUDA_OK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / repeats;
}

template <typename T>
void Bench(int res) {
  const int64_t c = std::min<int64_t>(16384 / (res / 2), 512), n = 4;
  std::mt19937 rng(5);
  const double kf[4] = {1, 3, 3, 1};
  struct Case { const char* name; Geometry g; double gain; };
  const Case cases[] = {
      {"upsample_2d x2 (G skip, 3 ch)", {n, res / 2, res / 2, 3, 4, 4, 2, 2, 1, 1, 2, 1, 2, 1}, 4},
      {"FIR after transposed conv (G up)", {n, res + 1, res + 1, c, 4, 4, 1, 1, 1, 1, 1, 1, 1, 1}, 4},
      {"downsample_2d /2 (D skip)", {n, res, res, c, 4, 4, 1, 1, 2, 2, 1, 1, 1, 1}, 1},
      {"FIR before strided conv (D down)", {n, res, res, c, 4, 4, 1, 1, 1, 1, 2, 2, 2, 2}, 1},
  };
  for (const Case& k : cases) {
    std::vector<T> fh(16);
    for (int i = 0; i < 16; ++i) fh[i] = FromDouble<T>(kf[i / 4] * kf[i % 4] / 64.0 * k.gain);
    Buffer<T> x(Random<T>(rng, k.g.n * k.g.h * k.g.w * k.g.c)), f(fh);
    sg2::UpFirDn2DArgs<T> a = Args<T>(k.g);
    Buffer<T> y{std::vector<T>(a.n * a.out_h * a.out_w * a.c)};
    a.x = x.ptr(); a.f = f.ptr(); a.y = y.ptr();
    const float ms = TimeMs([&] { sg2::LaunchUpFirDn2D(a, nullptr); }, 20);
    const double bytes = double(x.host.size() + y.host.size()) * sizeof(T);
    std::printf("  %4d^2 %-8s %-34s %-18s %8.3f ms %7.1f GB/s\n", res, TypeName<T>(), k.name,
                sg2::UpFirDn2DPath(a), ms, bytes / ms / 1e6);
  }
  const int64_t size = n * res * res * c;
  Buffer<T> x(Random<T>(rng, size)), b(Random<T>(rng, c)), dy(Random<T>(rng, size)), out{std::vector<T>(size)};
  for (int order : {0, 1}) {
    sg2::FusedBiasActArgs<T> a{};
    a.x = x.ptr(); a.b = b.ptr(); a.dy = order ? dy.ptr() : nullptr; a.out = out.ptr();
    a.size = size; a.channels = c; a.act = int(sg2::Act::kLrelu); a.order = order;
    a.alpha = 0.2f; a.gain = std::sqrt(2.0); a.clamp = -1;
    const float ms = TimeMs([&] { sg2::LaunchFusedBiasAct(a, nullptr); }, 20);
    const double bytes = double(size * (order ? 3 : 2)) * sizeof(T);
    std::printf("  %4d^2 %-8s bias + lrelu %-22s %-18s %8.3f ms %7.1f GB/s\n", res, TypeName<T>(),
                order ? "(gradient)" : "(forward)", "", ms, bytes / ms / 1e6);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--emulate") g_emulate = true;
    else if (arg == "--bench") bench = true;
    else { std::fprintf(stderr, "usage: %s [--emulate] [--bench]\n", argv[0]); return 2; }
  }
  if (!g_emulate) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::printf("no CUDA device visible: nothing run (use --emulate to check the kernels' code on the CPU)\n");
      return 77;
    }
    cudaDeviceProp prop;
    SG2_CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    std::printf("device: %s (compute capability %d.%d)\n", prop.name, prop.major, prop.minor);
  } else {
    std::printf("device: none, the kernels' per-element code emulated on the CPU\n");
  }
  CheckAllUpFirDn<double>();
  CheckAllUpFirDn<float>();
  CheckAllUpFirDn<half_t>();
  CheckAllBiasAct<double>();
  CheckAllBiasAct<float>();
  CheckAllBiasAct<half_t>();
  std::printf("%d checks, %d failed\n", g_checks, g_failures);
  if (bench && !g_emulate) {
    std::printf("timing (mean of 20 launches after one warm-up):\n");
    for (int res : {256, 1024}) {
      Bench<float>(res);
      Bench<half_t>(res);
    }
  }
  return g_failures ? 1 : 0;
}
