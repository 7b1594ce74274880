// Doubtful input to `unet score` and `unet export --format bioimageio` (issue 25, item 6): each is
// refused with one line naming the file or the flag, and nothing is written.
//
// score: a truth whose channels differ, a folder with two images of one stem, `--instances` on a
// binary mask. export: a license that is not an SPDX identifier, repeated or empty class names,
// control characters in the package's texts, an author with a slash.
#include "test_support.h"

#include "unet/data/image_io.h"
#include "unet/infer/bioimageio.h"
#include "unet/infer/spdx_licenses.h"
#include "unet/model/checkpoint.h"
#include "unet/runtime/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

using namespace unet;
using unet::test::expect_one_line_error;
using unet::test::run_unet;
using unet::test::snapshot;
using unet::test::TempDir;

// ---- score ----

namespace {

/// A 64 x 64 truth (255 cells, a boundary cross of 0) and a matching 8-bit cell map.
at::Tensor cells_and_boundaries() {
  at::Tensor truth = at::full({64, 64}, 255, at::kByte);
  truth.select(0, 20).fill_(0);
  truth.select(1, 30).fill_(0);
  return truth;
}

/// Runs `score` with `arguments` and `-o dir/scores.json`; expects one line holding `expected`,
/// exit 1, no scores file and `dir` as it was.
void expect_score_refused(const TempDir& dir, const std::string& arguments, const std::string& expected) {
  const auto before = snapshot(dir.path());
  const auto r = run_unet("score " + arguments + " -o " + dir.file("scores.json"));
  expect_one_line_error(r, expected);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.file("scores.json")));
  EXPECT_EQ(snapshot(dir.path()), before);
}

}  // namespace

TEST(HostileScoreExport, ScoreTruthWithDifferingChannelsIsRefused) {
  const TempDir dir;
  const at::Tensor truth = cells_and_boundaries();
  write_png(dir.file("pred.png"), truth);
  at::Tensor rgb = at::stack({truth, truth, truth});
  write_png(dir.file("gray-as-rgb.png"), rgb);
  rgb[1].narrow(0, 40, 10).fill_(0);  // green differs: which channel is the truth?
  write_png(dir.file("colour.png"), rgb);
  expect_score_refused(dir, "--prediction " + dir.file("pred.png") + " --truth " + dir.file("colour.png"),
                       dir.file("colour.png") + ": truth masks must be single-channel (this one has 3 differing channels)");
  // Equal channels (a gray mask saved as RGB) are one channel.
  const auto r = run_unet("score --prediction " + dir.file("pred.png") + " --truth " + dir.file("gray-as-rgb.png"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(HostileScoreExport, ScorePredictionFolderWithTwoImagesOfOneStemIsRefused) {
  const TempDir dir;
  const at::Tensor truth = cells_and_boundaries();
  std::filesystem::create_directories(dir.file("pred"));
  std::filesystem::create_directories(dir.file("truth"));
  write_png(dir.file("truth/a.png"), truth);
  write_png(dir.file("pred/a.png"), truth);
  write_tiff(dir.file("pred/a.tif"), {at::zeros({64, 64})});  // scores 0 or 1 depending on the pick
  expect_score_refused(dir, "--prediction " + dir.file("pred") + " --truth " + dir.file("truth"),
                       dir.file("pred") + ": holds both a.png and a.tif");
}

TEST(HostileScoreExport, ScoreTruthFolderWithTwoImagesOfOneStemIsRefused) {
  const TempDir dir;
  const at::Tensor truth = cells_and_boundaries();
  std::filesystem::create_directories(dir.file("pred"));
  std::filesystem::create_directories(dir.file("truth"));
  write_png(dir.file("pred/a.png"), truth);
  write_png(dir.file("truth/a.png"), truth);
  write_tiff(dir.file("truth/a.tiff"), {at::zeros({64, 64}, at::kByte)});
  expect_score_refused(dir, "--prediction " + dir.file("pred") + " --truth " + dir.file("truth"),
                       dir.file("truth") + ": holds both a.png and a.tiff");
}

TEST(HostileScoreExport, ScoreInstancesOnABinaryMaskIsRefused) {
  const TempDir dir;
  const at::Tensor truth = cells_and_boundaries();
  write_png(dir.file("truth.png"), truth);
  write_png(dir.file("mask8.png"), truth);                      // 0/255
  write_png(dir.file("mask16.png"), truth.to(at::kInt) * 257);  // 0/65535
  const std::string t = " --truth " + dir.file("truth.png") + " --instances";
  expect_score_refused(dir, "--prediction " + dir.file("mask8.png") + t,
                       dir.file("mask8.png") + ": --instances expects instance labels (one value per object), but this "
                                               "mask holds only 0 and 255: a binary mask; drop --instances");
  expect_score_refused(dir, "--prediction " + dir.file("mask16.png") + t, "holds only 0 and 65535: a binary mask");
  // Instance labels (the four cells as 1..4) are scored.
  at::Tensor labels = at::zeros({64, 64}, at::kByte);
  labels.narrow(0, 0, 20).narrow(1, 0, 30).fill_(1);
  labels.narrow(0, 0, 20).narrow(1, 31, 33).fill_(2);
  labels.narrow(0, 21, 43).narrow(1, 0, 30).fill_(3);
  labels.narrow(0, 21, 43).narrow(1, 31, 33).fill_(4);
  write_png(dir.file("labels.png"), labels);
  const auto r = run_unet("score --prediction " + dir.file("labels.png") + t);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("objects: 4 true, 4 predicted"), std::string::npos) << r.out;
}

TEST(HostileScoreExport, ScoreInstanceLabelsWithDifferingChannelsAreRefused) {
  const TempDir dir;
  const at::Tensor truth = cells_and_boundaries();
  write_png(dir.file("truth.png"), truth);
  const at::Tensor labels = (truth > 0).to(at::kByte);
  write_png(dir.file("rgb.png"), at::stack({labels, labels * 2, labels}));
  expect_score_refused(dir, "--prediction " + dir.file("rgb.png") + " --truth " + dir.file("truth.png") + " --instances",
                       dir.file("rgb.png") + ": instance labels must be single-channel (this one has 3 differing channels)");
}

// ---- export ----

namespace {

/// A tiny trained-looking model folder (a checkpoint of an initialised depth-2 U-Net).
std::string tiny_model(const TempDir& dir) {
  at::manual_seed(3);
  const UNetOptions options = UNetOptions().depth(2).filters(4);
  UNet model(options);
  std::filesystem::create_directories(dir.file("model"));
  save_checkpoint(checkpoint_path(dir.file("model")), model, nullptr, CheckpointInfo{options, 60, 1});
  return dir.file("model");
}

/// Runs `export --format bioimageio` with `arguments` (shell-quoted); expects one line holding
/// `expected`, exit 1, no package and the model folder as it was; returns the run.
unet::test::RunResult expect_export_refused(const std::string& arguments, const std::string& expected) {
  const TempDir dir;
  const std::string model = tiny_model(dir);
  const auto before = snapshot(model);
  const auto r = run_unet("export --model-dir " + model + " --format bioimageio --output " + dir.file("p.zip") + " " + arguments);
  expect_one_line_error(r, expected);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.file("p.zip")));
  EXPECT_FALSE(std::filesystem::exists(model + "/unet.bioimageio.zip"));
  EXPECT_EQ(snapshot(model), before);
  return r;
}

}  // namespace

TEST(HostileScoreExport, ExportEmptyLicenseIsRefused) {
  // Refused as an empty value by the option parser, or by the package's own check.
  const auto r = expect_export_refused("--license ''", "--license");
  EXPECT_NE(r.err.find("empty"), std::string::npos) << r.err;
}

TEST(HostileScoreExport, ExportUnknownLicenseIsRefusedNamingTheNearest) {
  expect_export_refused("--license MTI", "--license 'MTI' is not an SPDX license identifier");
  expect_export_refused("--license MTI", "nearest: MIT, ");
}

TEST(HostileScoreExport, ExportLicenseInTheWrongCaseIsRefused) {
  expect_export_refused("--license cc-by-4.0", "nearest: CC-BY-4.0");
}

TEST(HostileScoreExport, ExportRepeatedClassNamesAreRefused) {
  expect_export_refused("--class-names cell,cell", "--class-names: 'cell' is given twice (names 1 and 2)");
}

TEST(HostileScoreExport, ExportBlankClassNameIsRefused) {
  expect_export_refused("--class-names ' ,cell'", "--class-names: an empty item in ' ,cell'");
}

TEST(HostileScoreExport, ExportControlCharacterInTheDescriptionIsRefused) {
  expect_export_refused("--description 'two\nlines'", "--description: the description holds the control character 0x0a");
  expect_export_refused("--description 'a\ttab'", "control character 0x09");
  expect_export_refused("--description 'del\x7f'", "control character 0x7f");
}

TEST(HostileScoreExport, ExportControlCharacterInTheNameGetsOneLine) {
  // Refused before too, but the message printed the line break.
  expect_export_refused("--name 'Good\nname'", "--name 'Good\\x0aname': a bioimage.io name");
}

TEST(HostileScoreExport, ExportControlCharacterInAnAuthorIsRefused) {
  expect_export_refused("--authors 'Ada Lovelace,Alan\x01Turing'", "--authors: author 2 holds the control character 0x01");
}

TEST(HostileScoreExport, ExportAuthorWithASlashIsRefused) {
  expect_export_refused("--authors 'Ada/Lovelace'", "--authors: 'Ada/Lovelace' holds a slash");
}

TEST(HostileScoreExport, ExportDescriptionThatIsNotUtf8IsRefused) {
  expect_export_refused("--description $(printf 'caf\\351')", "--description: the description is not UTF-8 text");
  // A UTF-16 surrogate and an overlong form look like UTF-8 sequences but are not UTF-8.
  expect_export_refused("--description $(printf 'a\\355\\240\\200')", "--description: the description is not UTF-8 text");
  expect_export_refused("--class-names $(printf '\\340\\200\\200'),cell", "--class-names: name 1 is not UTF-8 text");
}

// ---- the license table ----

TEST(HostileScoreExport, LicenseAcceptsIdentifiersAsSpeltAndRefusesOthers) {
  for (const char* id : {"MIT", "CC-BY-4.0", "Apache-2.0", "CC0-1.0", "BSD-3-Clause", "GPL-3.0+" /* deprecated, still valid */})
    EXPECT_TRUE(is_spdx_license(id)) << id;
  // bioimageio.spec compares identifiers exactly (a pydantic Literal): case counts.
  for (const char* id : {"", "MTI", "cc-by", "mit", "CC-BY-4.0 ", "cc-by-4.0", "Apache 2.0"}) EXPECT_FALSE(is_spdx_license(id)) << id;
  const auto ids = spdx_license_ids(), deprecated = deprecated_spdx_license_ids();
  EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end()));
  EXPECT_TRUE(std::adjacent_find(ids.begin(), ids.end()) == ids.end());
  EXPECT_TRUE(std::is_sorted(deprecated.begin(), deprecated.end()));
  EXPECT_GT(ids.size(), 600u);
}

TEST(HostileScoreExport, LicenseNamesTheNearestIdentifiers) {
  EXPECT_EQ(nearest_spdx_licenses("MTI").front(), "MIT");
  EXPECT_EQ(nearest_spdx_licenses("mit").front(), "MIT");
  EXPECT_EQ(nearest_spdx_licenses("Apache 2.0").front(), "Apache-2.0");
  EXPECT_EQ(nearest_spdx_licenses("cc-by-4.0").front(), "CC-BY-4.0");
  const auto cc = nearest_spdx_licenses("cc-by");
  ASSERT_EQ(cc.size(), 3u);
  for (const std::string& id : cc) EXPECT_EQ(id.rfind("CC-BY-", 0), 0u) << id;
  EXPECT_EQ(nearest_spdx_licenses("x", 1).size(), 1u);
}

TEST(HostileScoreExport, LicenseOptionsValidateTheirTexts) {
  BioimageioOptions o;
  EXPECT_NO_THROW(o.validate());  // the defaults
  o.license = "MIT";
  o.name = "Membranes (EM) v2";
  o.authors = {"Ada Lovelace", "Jörg Müller"};
  o.class_names = {"membrane", "cell"};
  o.description = "Ünïcode is fine.";
  EXPECT_NO_THROW(o.validate());
  auto refused = [](BioimageioOptions bad, const std::string& field) {
    try {
      bad.validate();
      ADD_FAILURE() << "accepted; expected a refusal of " << field;
    } catch (const OptionError& e) {
      EXPECT_EQ(e.field(), field) << e.what();
    }
  };
  BioimageioOptions bad = o;
  bad.license = "";
  refused(bad, "license");
  bad = o;
  bad.license = "cc-by";
  refused(bad, "license");
  bad = o;
  bad.class_names = {"a", "a"};
  refused(bad, "class_names");
  bad = o;
  bad.description = std::string(1025, 'd');
  refused(bad, "description");
  bad = o;
  bad.class_names = {"a", ""};
  refused(bad, "class_names");
  bad = o;
  bad.authors = {""};
  refused(bad, "authors");
  bad = o;
  bad.authors = {"  "};
  refused(bad, "authors");
}
