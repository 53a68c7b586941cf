// The float64 CPU kernels of Sg2WinogradConv2D and Sg2WinogradFilterGradient (winograd_conv_2d.cc
// registers the ops and the float32 kernels): apart so that the build compiles the two
// instantiations of the algorithm in parallel.

#include "winograd_conv_2d.h"

namespace sg2 {
SG2_REGISTER_WINOGRAD(double)
}  // namespace sg2
