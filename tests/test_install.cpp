// Installs unet into a temporary prefix and builds and runs examples/segment as an outside project would.
#include "test_support.h"

#include "unet/data/image_io.h"

#include <ATen/ATen.h>

#include <filesystem>

using unet::test::run_unet;
using unet::test::TempDir;

TEST(Install, OutsideProjectFindsAndUsesTheLibrary) {
  TempDir dir;
  const std::string log = dir.file("log");
  auto sh = [&](const std::string& command) {
    const int status = std::system((command + " >>'" + log + "' 2>&1").c_str());
    return status;
  };
  ASSERT_EQ(sh("cmake --install '" UNET_BUILD_DIR "' --prefix '" + dir.file("prefix") + "'"), 0) << unet::test::read_file(log);
  ASSERT_EQ(sh("cmake -S '" UNET_SOURCE_DIR "/examples/segment' -B '" + dir.file("build") + "' -DCMAKE_BUILD_TYPE=Release "
               "-DCMAKE_PREFIX_PATH='" + dir.file("prefix") + ";" UNET_TORCH_PREFIX "'"),
            0)
      << unet::test::read_file(log);
  ASSERT_EQ(sh("cmake --build '" + dir.file("build") + "'"), 0) << unet::test::read_file(log);
  ASSERT_EQ(run_unet("train --depth 2 --filters 4 --input-size 60 --synthetic-size 64 --max-steps 2 --quiet --model-dir " +
                     dir.file("model")).exit_code,
            0);
  ASSERT_EQ(run_unet("export --model-dir " + dir.file("model") + " --output " + dir.file("model.pt")).exit_code, 0);
  unet::write_png(dir.file("image.png"), at::randint(0, 256, {1, 70, 45}, at::kByte));
  for (const std::string model : {dir.file("model/checkpoint.pt"), dir.file("model.pt")}) {
    ASSERT_EQ(sh("'" + dir.file("build/unet-segment") + "' '" + model + "' '" + dir.file("image.png") + "' '" + dir.file("mask.png") + "'"), 0)
        << unet::test::read_file(log);
    const auto mask = unet::read_png(dir.file("mask.png"));
    EXPECT_EQ(mask.pixels.sizes(), (std::vector<int64_t>{1, 70, 45}));
    EXPECT_TRUE(((mask.pixels == 0) | (mask.pixels == 255)).all().item<bool>());
  }
}
