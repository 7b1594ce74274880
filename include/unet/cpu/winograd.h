// Winograd's minimal filtering F(4x4, 3x3) for CPUs: the transforms, over raw float32 arrays.
//
// A 3x3 convolution (stride 1) computes each 4x4 block of its output ("tile") from the 6x6 block of
// input under it. Winograd (Lavin and Gray 2016) writes that as Y = A^T [(G g G^T) . (B^T d B)] A:
// the filter g and the input d are each transformed into 36 "points", multiplied point by point,
// and transformed back. Over channels the point-wise products become 36 independent matrix
// products, V[p] [tiles x C] times U[p] [C x O], each done by a well-kept GEMM (the caller's): 36
// multiplications per channel pair and tile instead of the direct convolution's 144.
//
// This part holds the three transforms and their plain references, nothing else: no LibTorch, no
// threads, no GEMM. Activations are channels-last (NHWC: the channels of a pixel adjacent), the
// layout LibTorch's CPU engine keeps. Each optimised transform is compiled for AVX-512, AVX2 + FMA
// and plain x86-64, and the copy for the CPU's feature flags is chosen on first use; the reference beside it is the same arithmetic written for reading, in double, which the tests
// compare with.
#pragma once

#include <cstdint>

namespace unet::cpu {

/// Output tile side (4), input tile side (6) and transformed points per tile (36) of F(4x4, 3x3).
inline constexpr int64_t kWinogradTile = 4;
inline constexpr int64_t kWinogradInput = 6;
inline constexpr int64_t kWinogradPoints = 36;

/// One convolution's geometry. Input x [batch][height][width][in_channels] (NHWC, dense); output y
/// [batch][out_height][out_width][out_channels] with out_height = height + 2 * padding - 2. Tiles
/// are numbered image by image, row by row: tile t is image t / (tiles_y * tiles_x), tile row
/// (t / tiles_x) % tiles_y, tile column t % tiles_x. Tiles past the output's ragged right and
/// bottom edges are computed from zeros and not written.
struct WinogradGeometry {
  int64_t batch = 1, height = 0, width = 0, in_channels = 0, out_channels = 0, padding = 0;

  int64_t out_height() const { return height + 2 * padding - 2; }
  int64_t out_width() const { return width + 2 * padding - 2; }
  int64_t tiles_y() const { return (out_height() + kWinogradTile - 1) / kWinogradTile; }
  int64_t tiles_x() const { return (out_width() + kWinogradTile - 1) / kWinogradTile; }
  int64_t tiles() const { return batch * tiles_y() * tiles_x(); }
};

/// U [36][in_channels][out_channels] = G g G^T for every filter g of w [out][in][3][3] (row-major,
/// LibTorch's conv2d weight), computed in double over the matrix G and rounded once (done once per
/// weight change, so it has no faster twin). Only input channels first_in .. first_in + count_in - 1
/// (all with the defaults): disjoint ranges may run on different threads.
void winograd_filter_transform(const float* w, int64_t out_channels, int64_t in_channels, float* u,
                               int64_t first_in = 0, int64_t count_in = -1);

/// V [36][count][in_channels] = B^T d B for tiles first .. first + count - 1 of x, with `plane`
/// floats from one point's matrix to the next (at least count x in_channels); pixels outside the
/// image (padding, ragged edge) read as zero.
void winograd_input_transform(const float* x, const WinogradGeometry& g, int64_t first, int64_t count, float* v,
                              int64_t plane);

/// y = A^T m A + bias, then max(0, .) when `relu`, for tiles first .. first + count - 1, from
/// M [36][count][out_channels] (`plane` floats from one point's matrix to the next); only the
/// pixels inside the output are written. `bias` may be null.
void winograd_output_transform(const float* m, int64_t plane, const float* bias, bool relu, const WinogradGeometry& g,
                               int64_t first, int64_t count, float* y);

/// The instruction set the transforms run with on this CPU: "AVX-512", "AVX2+FMA" or
/// "x86-64 (no AVX2)".
const char* winograd_isa();

/// The input and output transforms as plain loops over the matrices B^T and A^T, one channel at a
/// time, in double: the references the optimised ones are tested against.
void winograd_input_transform_reference(const float* x, const WinogradGeometry& g, int64_t first, int64_t count,
                                        float* v, int64_t plane);
void winograd_output_transform_reference(const float* m, int64_t plane, const float* bias, bool relu,
                                         const WinogradGeometry& g, int64_t first, int64_t count, float* y);

}  // namespace unet::cpu
