// The ops Sg2WinogradConv2D and Sg2WinogradFilterGradient (winograd_conv_2d.h: the algorithm)
// and their float32 CPU kernels; the float64 kernels are in winograd_conv_2d_double.cc.

#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "winograd_conv_2d.h"

namespace sg2 {
namespace {

tensorflow::Status PadsAttr(tensorflow::shape_inference::InferenceContext* c, std::vector<int>* pads) {
  TF_RETURN_IF_ERROR(c->GetAttr("pads", pads));
  if (pads->size() != 4) return InvalidArgument("pads must be 4 amounts [top, bottom, left, right]");
  return absl::OkStatus();
}

}  // namespace

REGISTER_OP("Sg2WinogradConv2D")
    .Input("x: T")
    .Input("w: T")
    .Output("y: T")
    .Attr("T: {float, double}")
    .Attr("pads: list(int)")
    .Attr("tile: int = 2")               // outputs per tile side: F(2x2, 3x3) or F(4x4, 3x3)
    .Attr("form_forced: bool = false")  // read by the gradient (Python): the input gradient's form
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      using tensorflow::shape_inference::DimensionHandle;
      std::vector<int> pads;
      TF_RETURN_IF_ERROR(PadsAttr(c, &pads));
      auto x = c->input(0), w = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(w, 4, &w));
      DimensionHandle h, wd;
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 1), pads[0] + pads[1] - 2, &h));
      TF_RETURN_IF_ERROR(c->Add(c->Dim(x, 2), pads[2] + pads[3] - 2, &wd));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, wd, c->Dim(w, 3)}));
      return absl::OkStatus();
    });

REGISTER_OP("Sg2WinogradFilterGradient")
    .Input("x: T")
    .Input("dy: T")
    .Output("dw: T")
    .Attr("T: {float, double}")
    .Attr("pads: list(int)")
    .Attr("tile: int = 2")
    .Attr("form_forced: bool = false")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* c) {
      std::vector<int> pads;
      TF_RETURN_IF_ERROR(PadsAttr(c, &pads));
      auto x = c->input(0), dy = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(dy, 4, &dy));
      c->set_output(0, c->MakeShape({3, 3, c->Dim(x, 3), c->Dim(dy, 3)}));
      return absl::OkStatus();
    });

SG2_REGISTER_WINOGRAD(float)

}  // namespace sg2
