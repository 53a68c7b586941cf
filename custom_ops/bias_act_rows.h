// The CPU row functions of FusedBiasAct: one row of C channels of act(x + b) * gain (clamped) or of
// its k-th derivative times dy, templated on the activation so that the inner loops vectorise.
// Shared by the FusedBiasAct kernels (fused_bias_act.cc) and the synthesis-layer epilogue
// (synthesis_epilogue.cc), which feeds them its own pre-activation rows.
#ifndef SG2_BIAS_ACT_ROWS_H_
#define SG2_BIAS_ACT_ROWS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "bias_act_math.h"

namespace sg2 {

inline bool ParseAct(const std::string& name, Act* act) {
  static const struct { const char* name; Act act; } kTable[] = {
      {"linear", Act::kLinear}, {"relu", Act::kRelu},         {"lrelu", Act::kLrelu},
      {"tanh", Act::kTanh},     {"sigmoid", Act::kSigmoid},   {"elu", Act::kElu},
      {"selu", Act::kSelu},     {"softplus", Act::kSoftplus}, {"swish", Act::kSwish}};
  for (const auto& e : kTable) {
    if (name == e.name) { *act = e.act; return true; }
  }
  return false;
}

struct Params {
  double alpha, gain, clamp;  // clamp < 0: none
  int order;                 // 0: forward value; k >= 1: k-th derivative times dy
};

// One row of C channels. Templated on the activation (and the derivative's order) so that the
// inner loops carry no branch on them and vectorise.
template <Act A, typename T>
void RowValue(const T* __restrict x, const T* __restrict b, T* __restrict out, int64_t C, const Params& p) {
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  if (p.clamp >= 0) {
    for (int64_t c = 0; c < C; ++c) out[c] = std::min(std::max(Value<A, T>(x[c] + b[c], alpha) * gain, -clamp), clamp);
  } else {
    for (int64_t c = 0; c < C; ++c) out[c] = Value<A, T>(x[c] + b[c], alpha) * gain;
  }
}

template <Act A, int K, typename T>
void RowDeriv(const T* __restrict dy, const T* __restrict x, const T* __restrict b, T* __restrict out, int64_t C,
              const Params& p) {
  const T alpha = T(p.alpha), gain = T(p.gain), clamp = T(p.clamp);
  if (p.clamp >= 0) {
    for (int64_t c = 0; c < C; ++c) {
      const T z = x[c] + b[c], v = Value<A, T>(z, alpha) * gain;
      const T g = dy[c] * gain * Derivative<A, T>(z, alpha, K);
      const bool inside = (v >= -clamp) & (v <= clamp);  // no short circuit: a select, not a branch
      out[c] = inside ? g : T(0);
    }
  } else {
    if constexpr (A == Act::kLrelu && K == 1) {  // the StyleGAN2 case, spelled out so that it vectorises
      // out = z > 0 ? g : g * alpha, as a bit mask: gcc turns the conditional into a branch, and
      // a mispredicted branch per element costs 3x the memory traffic.
      using U = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
      for (int64_t c = 0; c < C; ++c) {
        const T g = dy[c] * gain, ga = g * alpha;
        const U mask = U(0) - U(x[c] + b[c] > T(0));
        U gb, gab;
        std::memcpy(&gb, &g, sizeof(T));
        std::memcpy(&gab, &ga, sizeof(T));
        const U r = (gb & mask) | (gab & ~mask);
        std::memcpy(out + c, &r, sizeof(T));
      }
    } else {
      for (int64_t c = 0; c < C; ++c) out[c] = dy[c] * gain * Derivative<A, T>(x[c] + b[c], alpha, K);
    }
  }
}

template <Act A, typename T>
void Row(const T* dy, const T* x, const T* b, T* out, int64_t C, const Params& p) {
  switch (p.order) {
    case 0: RowValue<A, T>(x, b, out, C, p); break;
    case 1: RowDeriv<A, 1, T>(dy, x, b, out, C, p); break;
    case 2: RowDeriv<A, 2, T>(dy, x, b, out, C, p); break;
    default: RowDeriv<A, 3, T>(dy, x, b, out, C, p); break;
  }
}

template <typename T>
void AnyRow(Act act, const T* dy, const T* x, const T* b, T* out, int64_t C, const Params& p) {
  switch (act) {
#define SG2_CASE(K) case Act::K: Row<Act::K, T>(dy, x, b, out, C, p); break;
    SG2_CASE(kLinear) SG2_CASE(kRelu) SG2_CASE(kLrelu) SG2_CASE(kTanh) SG2_CASE(kSigmoid)
    SG2_CASE(kElu) SG2_CASE(kSelu) SG2_CASE(kSoftplus) SG2_CASE(kSwish)
#undef SG2_CASE
  }
}

}  // namespace sg2

#endif  // SG2_BIAS_ACT_ROWS_H_
