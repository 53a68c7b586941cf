// The activation functions of FusedBiasAct and their derivatives, shared by the CPU kernel
// (fused_bias_act.cc) and the CUDA kernel (cuda/fused_bias_act.cu): one definition of the math.
// Reference: stylegan2_tf/ops/fused_bias_act.py.
#ifndef SG2_BIAS_ACT_MATH_H_
#define SG2_BIAS_ACT_MATH_H_

#include <algorithm>
#include <cmath>

#ifdef __CUDACC__
#define SG2_HD __host__ __device__ inline
#else
#define SG2_HD inline
#endif

namespace sg2 {

enum class Act { kLinear, kRelu, kLrelu, kTanh, kSigmoid, kElu, kSelu, kSoftplus, kSwish };

constexpr double kSeluScale = 1.0507009873554804934193349852946;
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;

template <typename T> SG2_HD T Sigmoid(T z) { return T(1) / (T(1) + std::exp(-z)); }

// act(z), the value the clamp mask is taken on.
template <Act A, typename T> SG2_HD T Value(T z, T alpha) {
  switch (A) {
    case Act::kLinear: return z;
    // Branch-free forms (vectorise); equal to z > 0 ? z : alpha * z, NaN included.
    case Act::kRelu: return std::max(z, T(0));
    case Act::kLrelu: return std::max(z, T(0)) + alpha * std::min(z, T(0));
    case Act::kTanh: return std::tanh(z);
    case Act::kSigmoid: return Sigmoid(z);
    case Act::kElu: return z > T(0) ? z : std::expm1(z);
    case Act::kSelu: return z > T(0) ? T(kSeluScale) * z : T(kSeluScale * kSeluAlpha) * std::expm1(z);
    case Act::kSoftplus: return z > T(0) ? z + std::log1p(std::exp(-z)) : std::log1p(std::exp(z));
    case Act::kSwish: return z * Sigmoid(z);
  }
  return z;
}

// The k-th derivative of act at z (k = 1, 2, 3). At z = 0 the branch is TensorFlow's: relu and
// lrelu take the left one (their gradients test z > 0), elu and selu the right one (theirs test
// the output < 0).
template <Act A, typename T> SG2_HD T Derivative(T z, T alpha, int k) {
  switch (A) {
    case Act::kLinear: return k == 1 ? T(1) : T(0);
    case Act::kRelu: return k == 1 ? T(z > T(0)) : T(0);
    case Act::kLrelu: return k == 1 ? (z > T(0) ? T(1) : alpha) : T(0);
    case Act::kTanh: {
      const T t = std::tanh(z), d = T(1) - t * t;
      return k == 1 ? d : k == 2 ? T(-2) * t * d : d * (T(6) * t * t - T(2));
    }
    case Act::kSigmoid:
    case Act::kSoftplus: {  // softplus' = sigmoid: shift the order by one
      const int m = A == Act::kSoftplus ? k - 1 : k;
      const T s = Sigmoid(z), d = s * (T(1) - s);
      return m == 0 ? s : m == 1 ? d : m == 2 ? d * (T(1) - T(2) * s) : d * (T(1) - T(6) * s + T(6) * s * s);
    }
    case Act::kElu: return z >= T(0) ? (k == 1 ? T(1) : T(0)) : std::exp(z);
    case Act::kSelu:
      return z >= T(0) ? (k == 1 ? T(kSeluScale) : T(0)) : T(kSeluScale * kSeluAlpha) * std::exp(z);
    case Act::kSwish: {
      const T s = Sigmoid(z), p = s * (T(1) - s), q = T(1) - T(2) * s;
      if (k == 1) return s + z * p;
      if (k == 2) return p * (T(2) + z * q);
      return p * (q * (T(3) + z * q) - T(2) * z * p);
    }
  }
  return T(0);
}

}  // namespace sg2

#endif  // SG2_BIAS_ACT_MATH_H_
