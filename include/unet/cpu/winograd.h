// Winograd's minimal filtering F(4x4, 3x3) and F(6x6, 3x3) for CPUs: the transforms, over raw
// float32 arrays.
//
// A 3x3 convolution (stride 1) computes each 4x4 block of its output ("tile") from the 6x6 block of
// input under it. Winograd (Lavin and Gray 2016) writes that as Y = A^T [(G g G^T) . (B^T d B)] A:
// the filter g and the input d are each transformed into 36 "points", multiplied point by point,
// and transformed back. Over channels the point-wise products become 36 independent matrix
// products, V[p] [tiles x C] times U[p] [C x O], each done by a well-kept GEMM (the caller's): 36
// multiplications per channel pair and tile instead of the direct convolution's 144.
//
// Training runs the same algorithm backwards: the output gradient's tiles are transformed by A,
// multiplied by the transposed U[p] (input gradient) or V[p] (filter gradient), and transformed
// back by B and G^T.
//
// F(6x6, 3x3) computes a 6x6 tile from an 8x8 block through 64 points (interpolation points 0,
// +-1, +-2, +-1/2, inf): 1.78 multiplications per output and channel pair instead of F(4x4)'s
// 2.25, and 64/36 instead of 36/16 floats of transformed data per output pixel, at the price of
// larger transforms and more rounding (its matrices have entries up to 32 and down to 1/90).
// Inference only: training keeps F(4x4), whose backward transforms are below.
//
// This part holds the transforms (three forward, three backward) and their plain references,
// nothing else: no LibTorch, no threads, no GEMM. Activations are channels-last (NHWC: the
// channels of a pixel adjacent), the layout LibTorch's CPU engine keeps. Each optimised transform
// is compiled for AVX-512, AVX2 + FMA and plain x86-64, and the copy for the CPU's feature flags is
// chosen on first use; the reference beside it is the same arithmetic written for reading, in
// double, which the tests compare with.
#pragma once

#include <cstdint>

namespace unet::cpu {

/// Output tile side (4), input tile side (6) and transformed points per tile (36) of F(4x4, 3x3).
inline constexpr int64_t kWinogradTile = 4;
inline constexpr int64_t kWinogradInput = 6;
inline constexpr int64_t kWinogradPoints = 36;
/// The same for F(6x6, 3x3): tiles of 6, blocks of 8, 64 points.
inline constexpr int64_t kWinograd6Tile = 6;
inline constexpr int64_t kWinograd6Points = 64;

/// Points per tile of the variant with output tiles of side `tile` (4 or 6): (tile + 2)^2.
constexpr int64_t winograd_points(int64_t tile) { return (tile + 2) * (tile + 2); }

/// One convolution's geometry. Input x [batch][height][width][in_channels] (NHWC, dense); output y
/// [batch][out_height][out_width][out_channels] with out_height = height + 2 * padding - 2. Tiles
/// of `tile` x `tile` outputs (4: F(4x4, 3x3), 6: F(6x6, 3x3)) are numbered image by image, row by
/// row: tile t is image t / (tiles_y * tiles_x), tile row (t / tiles_x) % tiles_y, tile column
/// t % tiles_x. Tiles past the output's ragged right and bottom edges are computed from zeros and
/// not written.
struct WinogradGeometry {  // an aggregate: WinogradGeometry{batch, height, width, in, out, padding, tile}
  int64_t batch = 1, height = 0, width = 0, in_channels = 0, out_channels = 0, padding = 0, tile = kWinogradTile;

  int64_t points() const { return winograd_points(tile); }
  int64_t out_height() const { return height + 2 * padding - 2; }
  int64_t out_width() const { return width + 2 * padding - 2; }
  int64_t tiles_y() const { return (out_height() + tile - 1) / tile; }
  int64_t tiles_x() const { return (out_width() + tile - 1) / tile; }
  int64_t tiles() const { return batch * tiles_y() * tiles_x(); }
};

/// U [36][in_channels][out_channels] = G g G^T for every filter g of w [out][in][3][3] (row-major,
/// LibTorch's conv2d weight). Only input channels first_in .. first_in + count_in - 1 (all with the
/// defaults): disjoint ranges may run on different threads.
void winograd_filter_transform(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                               int64_t first_in = 0, int64_t count_in = -1);

/// V [points][count][in_channels] = B^T d B for tiles first .. first + count - 1 of x, with
/// `plane` floats from one point's matrix to the next (at least count x in_channels); pixels
/// outside the image (padding, ragged edge) read as zero. F(4x4) or F(6x6) as `g.tile` says.
void winograd_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                              int64_t plane);

/// y = A^T m A + bias, then max(0, .) when `relu`, for tiles first .. first + count - 1, from
/// M [points][count][out_channels] (`plane` floats from one point's matrix to the next); only the
/// pixels inside the output are written. `bias` may be null. F(4x4) or F(6x6) as `g.tile` says.
void winograd_output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                               int64_t first, int64_t count, float* y);

/// U [64][in_channels][out_channels] = G g G^T of F(6x6, 3x3); otherwise as above.
void winograd6_filter_transform(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                                int64_t first_in = 0, int64_t count_in = -1);

/// Training's backward pass (the gradients of the three transforms above), F(4x4, 3x3) only
/// (`g.tile` 4; others throw std::invalid_argument, as tiles other than 4 and 6 do above).
///
/// dM [36][count][out_channels] = A dy A^T for tiles first .. first + count - 1 of the output
/// gradient dy (NHWC, the output's shape), `plane` floats from one point's matrix to the next;
/// pixels past the output read as zero, and where `y` (the forward output) is given, dy counts
/// only where y > 0: the gradient through a ReLU. Point 7 (row 1, column 1) of a tile is the sum
/// of its 16 pixels, so summing it over the tiles gives the bias gradient.
void winograd_output_gradient_transform(const float* dy, const float* y, const WinogradGeometry& g, int64_t first,
                                        int64_t count, float* dm, int64_t plane);

/// dx += B dV B^T for tiles first .. first + count - 1: each tile's 6x6 input block receives its
/// share of the input gradient (dx NHWC, the input's shape); pixels of the padding are dropped.
/// Blocks of neighbouring tile rows overlap, so calls on tiles of adjacent rows of one image must
/// not run at the same time (tiles of one row, in one call, are added in order).
void winograd_input_gradient_transform(const float* dv, int64_t plane, const WinogradGeometry& g, int64_t first,
                                       int64_t count, float* dx);

/// dw [out][in][3][3] = G^T dU G for every channel pair of dU [36][in_channels][out_channels]:
/// the filter gradient from the products' gradient. Input channels first_in .. as above.
void winograd_filter_gradient_transform(const float* du, int64_t out_channels, int64_t in_channels, float* dw,
                                        int64_t first_in = 0, int64_t count_in = -1);

/// The instruction set the transforms run with on this CPU: "AVX-512", "AVX2+FMA" or
/// "x86-64 (no AVX2)".
const char* winograd_isa();

/// Every transform above as plain loops over the matrices B^T, G and A^T, one channel at a time,
/// in double: the references the optimised ones are tested against.
void winograd_input_transform_reference(const float* x, const WinogradGeometry& g, int64_t first, int64_t count,
                                        float* v, int64_t plane);
void winograd_output_transform_reference(const float* m, int64_t plane, const float* bias, bool relu,
                                         const WinogradGeometry& g, int64_t first, int64_t count, float* y);

void winograd_filter_transform_reference(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                                         int64_t first_in = 0, int64_t count_in = -1);
void winograd6_filter_transform_reference(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                                          int64_t first_in = 0, int64_t count_in = -1);
void winograd_output_gradient_transform_reference(const float* dy, const float* y, const WinogradGeometry& g,
                                                  int64_t first, int64_t count, float* dm, int64_t plane);
void winograd_input_gradient_transform_reference(const float* dv, int64_t plane, const WinogradGeometry& g,
                                                 int64_t first, int64_t count, float* dx);
void winograd_filter_gradient_transform_reference(const float* du, int64_t out_channels, int64_t in_channels,
                                                  float* dw, int64_t first_in = 0, int64_t count_in = -1);

}  // namespace unet::cpu
