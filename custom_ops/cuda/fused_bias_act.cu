// FusedBiasAct on the GPU: one thread per element computes clamp(act(x + b) * gain), or for
// order k >= 1, dy * gain * act^(k)(x + b) * clamp mask -- the same formulas as the CPU kernel
// (../fused_bias_act.cc), from the same header (../bias_act_math.h). float16 is loaded and
// stored as half and computed in float32. Reference: stylegan2_tf/ops/fused_bias_act.py.

#include "../bias_act_math.h"
#include "common.cuh"

namespace sg2 {

template <Act A, int K, typename T>
struct BiasActElement {
  FusedBiasActArgs<T> a;

  __host__ __device__ void operator()(int64_t i) const {
    using F = typename ComputeType<T>::type;
    const F alpha = F(a.alpha), gain = F(a.gain), clamp = F(a.clamp);
    // 32-bit index arithmetic where it fits: 64-bit division is slow on the device.
    const int64_t c = a.size <= INT32_MAX ? int64_t(uint32_t(i) % uint32_t(a.channels)) : i % a.channels;
    const F z = Load(a.x, i) + (a.b ? Load(a.b, c) : F(0));
    const F v = Value<A, F>(z, alpha) * gain;
    if (K == 0) {
      Store(a.out, i, a.clamp >= 0 ? (v < -clamp ? -clamp : v > clamp ? clamp : v) : v);
      return;
    }
    const F g = Load(a.dy, i) * gain * Derivative<A, F>(z, alpha, K);
    const bool inside = a.clamp < 0 || (v >= -clamp && v <= clamp);  // NaN: outside, as on the CPU
    Store(a.out, i, inside ? g : F(0));
  }
};

// Runs `run(element)` with the element functor for the args' activation and order.
template <Act A, typename T, class Run>
const char* ByOrder(const FusedBiasActArgs<T>& a, const Run& run) {
  switch (a.order) {
    case 0: return run(BiasActElement<A, 0, T>{a});
    case 1: return run(BiasActElement<A, 1, T>{a});
    case 2: return run(BiasActElement<A, 2, T>{a});
    case 3: return run(BiasActElement<A, 3, T>{a});
  }
  return "FusedBiasAct: order must be 0-3";
}

template <typename T, class Run>
const char* Dispatch(const FusedBiasActArgs<T>& a, const Run& run) {
  if (a.channels <= 0 && a.size > 0) return "FusedBiasAct: channels must be positive";
  switch (static_cast<Act>(a.act)) {
    case Act::kLinear: return ByOrder<Act::kLinear>(a, run);
    case Act::kRelu: return ByOrder<Act::kRelu>(a, run);
    case Act::kLrelu: return ByOrder<Act::kLrelu>(a, run);
    case Act::kTanh: return ByOrder<Act::kTanh>(a, run);
    case Act::kSigmoid: return ByOrder<Act::kSigmoid>(a, run);
    case Act::kElu: return ByOrder<Act::kElu>(a, run);
    case Act::kSelu: return ByOrder<Act::kSelu>(a, run);
    case Act::kSoftplus: return ByOrder<Act::kSoftplus>(a, run);
    case Act::kSwish: return ByOrder<Act::kSwish>(a, run);
  }
  return "FusedBiasAct: unknown activation";
}

template <typename T>
const char* LaunchFusedBiasAct(const FusedBiasActArgs<T>& a, void* stream) {
  return Dispatch(a, [&](const auto& element) { return LaunchElementwise(element, a.size, stream); });
}

template <typename T>
const char* EmulateFusedBiasAct(const FusedBiasActArgs<T>& a) {
  return Dispatch(a, [&](const auto& element) { return EmulateElementwise(element, a.size); });
}

#define SG2_INSTANTIATE(T)                                                              \
  template const char* LaunchFusedBiasAct<T>(const FusedBiasActArgs<T>&, void*);        \
  template const char* EmulateFusedBiasAct<T>(const FusedBiasActArgs<T>&);
SG2_INSTANTIATE(float)
SG2_INSTANTIATE(double)
SG2_INSTANTIATE(half_t)
#undef SG2_INSTANTIATE

}  // namespace sg2
