// Objects of an image that is predicted band by band, without splitting or doubling the objects
// that cross the seams between bands.
//
// Method: the objects of band b (rows [b * band, (b + 1) * band)) are cut out of a window that
// reaches `margin` rows above and below it, and the window keeps those whose centre row (halfway
// between their top and bottom rows) lies in the band. A band's labels are then its own objects,
// then those its neighbours own that reach into it. An object comes out as the whole image gives
// it when the connected foreground region it lies in (which seeded methods flood) is no taller
// than the margin: the window then holds all of it. Taller regions are cut at the window's edge,
// and a seeded object in one may go to another band or be lost.
//
// Labels: while bands are predicted (possibly by several processes, or resumed) an object is
// named by its band and its rank in that band, `provisional_label(band, k)`; once every band is
// done, `final_labels` numbers them 1..n band after band. So the result does not depend on how
// the bands were shared out or interrupted.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

namespace unet {

/// Bits of a provisional label that hold the rank within a band: at most 2^20 - 1 objects per
/// band.
constexpr int kBandLabelBits = 20;
/// The provisional label of the k-th object (1-based) owned by band `band`.
inline int64_t provisional_label(int64_t band, int64_t k) { return (band << kBandLabelBits) | k; }

/// Throws `unet::Error` when an image of `height` rows has more bands of `band` rows than
/// provisional labels can name (2^11).
void require_band_labels_fit(int64_t height, int64_t band);

class BandObjects {
 public:
  /// Cuts objects out of maps [K, h, W] (probabilities of the window's rows): int64 labels [h, W].
  using Extract = std::function<at::Tensor(const at::Tensor& maps)>;
  /// Receives band `band`'s provisional labels, int64 [rows of the band, W], and how many objects
  /// the band owns.
  using Emit = std::function<void(int64_t band, const at::Tensor& labels, int64_t owned)>;

  /// Bands [first_band, last_band) of an image of `height` rows are emitted (last_band <= 0: all),
  /// in order. `margin` <= `band`.
  BandObjects(int64_t height, int64_t band, int64_t margin, Extract extract, Emit emit, int64_t first_band = 0,
              int64_t last_band = 0);

  /// The rows this needs: every row of [first_row(), end_row()) must be pushed, in order.
  int64_t first_row() const;
  int64_t end_row() const;
  /// Maps [K, h, W] of rows [y, y + h); rows outside [first_row(), end_row()) are ignored.
  void push(int64_t y, const at::Tensor& maps);

 private:
  struct Window {
    int64_t band = 0;
    int64_t y0 = 0;
    /// Provisional labels of the objects the band owns over the window's rows (0 elsewhere).
    at::Tensor owned;
    int64_t count = 0;
  };
  int64_t height_, band_, margin_, bands_, first_band_, last_band_;
  Extract extract_;
  Emit emit_;
  at::Tensor maps_, spare_;  // rows [maps_y_, maps_y_ + rows_) at maps_'s top
  int64_t maps_y_ = 0, rows_ = 0;
  int64_t next_window_ = 0, next_emit_ = 0;
  std::deque<Window> windows_;

  int64_t window_start(int64_t b) const;
  int64_t window_end(int64_t b) const;
  Window cut(int64_t b);
  void emit_ready();
};

/// Provisional labels (`provisional_label`, any bands') numbered 1..n: `first_label[b]` is the
/// first final label of band b's objects (the owned counts of the bands before it, plus one).
at::Tensor final_labels(const at::Tensor& labels, const std::vector<int64_t>& first_label);

}  // namespace unet
