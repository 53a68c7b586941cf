// bfloat16 storage for the CPU kernels: they read bfloat16 as float32 (exact: a bfloat16 is the
// top half of a float32), compute in float32 and round the result once, to nearest even -- the
// rounding of TensorFlow's own float32 -> bfloat16 cast. Written on the raw 16 bits so that the
// loops that use them vectorise.
#ifndef SG2_BFLOAT16_H_
#define SG2_BFLOAT16_H_

#include <cstdint>
#include <cstring>

namespace sg2 {

inline float WidenBf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

inline uint16_t NarrowBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const bool nan = (u & 0x7FFFFFFFu) > 0x7F800000u;
  return static_cast<uint16_t>(nan ? ((u >> 16) | 0x0040u) : rounded);  // a NaN stays a (quiet) NaN
}

inline void WidenBf16(const uint16_t* __restrict in, float* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = WidenBf16(in[i]);
}

inline void NarrowBf16(const float* __restrict in, uint16_t* __restrict out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = NarrowBf16(in[i]);
}

}  // namespace sg2

#endif  // SG2_BFLOAT16_H_
