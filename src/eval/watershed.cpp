// Boundary thinning for the ISBI 2012 scores: a watershed of the proposal's boundary mask.
//
// The challenge (Fiji's Trainable_Segmentation metrics, `getMaximalVRandAfterThinning` and
// `getMaximalVInfoAfterThinning`) thins a proposal's boundaries to one pixel before scoring it:
// the binarised proposal (boundary 255, cell 0) is flooded by a watershed transform with 4-connected
// neighbours, which splits every boundary band between the cells it separates and leaves a
// one-pixel watershed line where two cells meet. The algorithm is Vincent and Soille's flooding
// (IEEE PAMI 13(6), 1991): pixels are processed level by level in ascending order; at each level,
// pixels next to labelled basins are queued and the labels spread breadth-first; pixels reached
// from two different basins become watershed (0); the pixels left over start new basins.
//
// Where the lines land depends on the order of equal pixels. This implementation visits pixels in
// Fiji's order (a stable sort by value of a column-major scan: x outer, y inner) and neighbours in
// Fiji's order (left, up, right, down), so that it reproduces Fiji's lines pixel for pixel, as the
// challenge's scores need.
#include "unet/eval/isbi.h"

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <deque>
#include <vector>

namespace unet {
namespace {

constexpr int32_t kWatershed = 0, kInit = -1, kMask = -2, kInQueue = -3;

struct Grid {
  int64_t h, w;
  /// In-bounds 4-neighbours of pixel `i` (row-major index) in Fiji's order: left, up, right, down.
  int neighbours(int64_t i, std::array<int64_t, 4>& out) const {
    const int64_t y = i / w, x = i % w;
    int n = 0;
    if (x > 0) out[n++] = i - 1;
    if (y > 0) out[n++] = i - w;
    if (x + 1 < w) out[n++] = i + 1;
    if (y + 1 < h) out[n++] = i + w;
    return n;
  }
};

/// Spreads basin labels from the queued pixels of one level (Vincent-Soille's propagation step).
void propagate(const Grid& g, std::vector<int32_t>& label, std::deque<int64_t>& fifo, bool& flag) {
  std::array<int64_t, 4> nb{};
  while (!fifo.empty()) {
    const int64_t p = fifo.front();
    fifo.pop_front();
    const int n = g.neighbours(p, nb);
    for (int k = 0; k < n; ++k) {
      const int64_t q = nb[k];
      if (label[q] > 0) {  // q belongs to a basin
        if (label[p] == kInQueue || (label[p] == kWatershed && flag)) {
          label[p] = label[q];
        } else if (label[p] > 0 && label[p] != label[q]) {
          label[p] = kWatershed;
          flag = false;
        }
      } else if (label[q] == kWatershed) {
        if (label[p] == kInQueue) {
          label[p] = kWatershed;
          flag = true;
        }
      } else if (label[q] == kMask) {
        label[q] = kInQueue;
        fifo.push_back(q);
      }
    }
  }
}

}  // namespace

at::Tensor thin_boundaries(const at::Tensor& foreground_in) {
  const at::Tensor foreground = foreground_in.to(at::kBool).cpu().contiguous();
  const Grid g{foreground.size(0), foreground.size(1)};
  const bool* f = foreground.data_ptr<bool>();
  const int64_t n = g.h * g.w;
  // The levels (cell 0, boundary 255), each in column-major scan order.
  std::array<std::vector<int64_t>, 2> levels;
  for (int64_t x = 0; x < g.w; ++x)
    for (int64_t y = 0; y < g.h; ++y) levels[f[y * g.w + x] ? 0 : 1].push_back(y * g.w + x);

  std::vector<int32_t> label(static_cast<size_t>(n), kInit);
  std::deque<int64_t> fifo;
  std::array<int64_t, 4> nb{};
  bool flag = false;
  int32_t basins = 0;
  for (const std::vector<int64_t>& level : levels) {
    // Mask the level; queue its pixels that touch a basin or a watershed pixel.
    for (const int64_t p : level) {
      label[p] = kMask;
      const int k_end = g.neighbours(p, nb);
      for (int k = 0; k < k_end; ++k)
        if (label[nb[k]] >= kWatershed) {
          fifo.push_back(p);
          label[p] = kInQueue;
          break;
        }
    }
    propagate(g, label, fifo, flag);
    // What is still masked starts new basins (flood fill).
    for (const int64_t p : level) {
      if (label[p] != kMask) continue;
      label[p] = ++basins;
      fifo.push_back(p);
      while (!fifo.empty()) {
        const int64_t q = fifo.front();
        fifo.pop_front();
        const int k_end = g.neighbours(q, nb);
        for (int k = 0; k < k_end; ++k)
          if (label[nb[k]] == kMask) {
            label[nb[k]] = basins;
            fifo.push_back(nb[k]);
          }
      }
    }
  }
  at::Tensor out = at::empty({g.h, g.w}, at::kLong);
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) o[i] = label[i] == kInit ? 0 : label[i];
  return out;
}

}  // namespace unet
