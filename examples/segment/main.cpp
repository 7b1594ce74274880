// Example: segment one image with a trained unet model from another program.
//   unet-segment MODEL IMAGE OUTPUT.png     MODEL: a checkpoint.pt or an exported module
#include <unet/data/image_io.h>
#include <unet/infer/segmenter.h>
#include <unet/runtime/error.h>

#include <ATen/ATen.h>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: unet-segment MODEL IMAGE OUTPUT.png\n";
    return 2;
  }
  try {
    const std::string model = argv[1];
    // A checkpoint and an exported module are both zip archives; try the checkpoint reader first.
    unet::Segmenter segmenter = [&] {
      try {
        return unet::Segmenter::from_checkpoint(model);
      } catch (const unet::Error&) {
        return unet::Segmenter::from_export(model);
      }
    }();
    const auto pages = unet::read_image_file(argv[2]);
    const unet::RawImage& image = pages.front();
    const unet::Segmentation result = segmenter.segment(image.pixels);
    // 255 where the model predicts class 1 (cell interior for ISBI-style models), 0 elsewhere.
    unet::write_png(argv[3], result.mask.mul(255).to(at::kByte));
    std::cout << "segmented " << argv[2] << " (" << image.width() << "x" << image.height() << ") into " << argv[3]
              << "; membrane share " << (result.mask == 0).to(at::kFloat).mean().item<float>() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "unet-segment: error: " << e.what() << "\n";
    return 1;
  }
}
