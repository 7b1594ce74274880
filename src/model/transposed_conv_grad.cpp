// The up-sampling's gradients as a strided convolution and one matrix product per kernel tap
// (include/unet/model/transposed_conv_grad.h).
//
// The method. Output pixel (r, c) of the transposed convolution receives x(i, j) w(:, :, a, b)
// where r = 2i - p + a and c = 2j - p + b. So the filter gradient of tap (a, b) is
//   gw(:, :, a, b) = sum over n, i, j of x(n, i, j)^T g(n, 2i - p + a, 2j - p + b),
// a product [C x pixels] [pixels x O]. With g padded by p at the top and left, the rows it
// reads are 2i + a: phase a % 2 of g's rows, shifted by a / 2; likewise for the columns. Each
// phase is stored as an (H + 1) x (W + 1) grid per image, and x with a zero row and column added
// to the same grid, so that a shift by (da, db) is an offset of da (W + 1) + db rows of the
// flattened phase: the product's right operand is a contiguous slice, and the pixels a shift
// carries past an edge meet x's zero row or column. The input gradient is the forward
// convolution conv2d(g, w, stride 2, padding p), oneDNN's fast path.
#include "unet/model/transposed_conv_grad.h"

#include "unet/runtime/error.h"

#include <ATen/ATen.h>

namespace unet {

std::pair<at::Tensor, at::Tensor> transposed_conv_gradients(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w,
                                                            int64_t padding, bool input_grad, bool weight_grad) {
  const int64_t k = w.size(2);
  if (w.size(3) != k || !((k == 2 && padding == 0) || (k == 3 && padding == 1)))
    throw Error("the up-sampling's gradients take 2x2 kernels without padding or 3x3 kernels with padding 1");
  at::Tensor gx, gw;
  if (input_grad) gx = at::conv2d(g, w, /*bias=*/{}, /*stride=*/2, /*padding=*/padding);
  if (!weight_grad) return {gx, gw};
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), O = w.size(1);
  const int64_t rows = N * (H + 1) * (W + 1);  // pixels of the padded grid
  const at::TensorOptions f32 = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
  // x on the grid [N, H + 1, W + 1, C], its extra row and column zero.
  at::Tensor grid = at::empty({N, H + 1, W + 1, C}, f32);
  grid.narrow(1, 0, H).narrow(2, 0, W).copy_(x.permute({0, 2, 3, 1}));
  grid.narrow(1, H, 1).zero_();
  grid.narrow(2, W, 1).zero_();
  const at::Tensor xs = grid.view({rows, C});
  // g padded by p before and 2 - p after: 2H + 2 rows and 2W + 2 columns, so that every phase
  // has H + 1 rows and W + 1 columns.
  const at::Tensor gp =
      at::constant_pad_nd(g.permute({0, 2, 3, 1}), {0, 0, padding, 2 - padding, padding, 2 - padding});
  gw = at::empty({C, O, k, k}, f32);
  for (int64_t pa = 0; pa < 2 && pa < k; ++pa) {
    for (int64_t pb = 0; pb < 2 && pb < k; ++pb) {
      // Phase (pa, pb) flattened (gp's padding already zero), with W + 2 zero rows for the largest shift.
      at::Tensor phase = at::empty({rows + W + 2, O}, f32);
      phase.narrow(0, rows, W + 2).zero_();
      phase.narrow(0, 0, rows).view({N, H + 1, W + 1, O}).copy_(gp.slice(1, pa, 2 * H + 2 + pa, 2).slice(2, pb, 2 * W + 2 + pb, 2));
      for (int64_t a = pa; a < k; a += 2) {
        for (int64_t b = pb; b < k; b += 2) {
          const int64_t shift = (a / 2) * (W + 1) + b / 2;
          gw.select(3, b).select(2, a).copy_(at::mm(xs.t(), phase.narrow(0, shift, rows)));
        }
      }
    }
  }
  return {gx, gw};
}

}  // namespace unet
