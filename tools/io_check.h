// What a command reads and what it writes, checked against each other before any work starts: the
// one mechanism behind "no output replaces an input" for every subcommand.
//
// Why one mechanism: a list of forbidden paths per command missed cases (`benchmark --data-dir em
// --output em/train-volume.tif` replaced the training volume with JSON). Every command now names
// all the files it reads (data files, masks, baselines, checkpoints) and all the files and folders
// it writes (results, profiles, logs, plots, predictions, packages), and `check` compares them as
// the file system sees them: through symbolic links and hard links (device and inode), not by name.
#pragma once

#include <string>
#include <vector>

namespace unet::cli {

class CommandFiles {
 public:
  /// A file the command reads. Paths that do not exist are ignored (their reader reports them); a
  /// path that cannot be resolved (a symbolic-link loop) is an error naming it.
  CommandFiles& reads(const std::string& path);
  CommandFiles& reads(const std::vector<std::string>& paths);
  /// A file the command creates, replaces or appends to (empty: none). It must not be an input,
  /// another output, a folder or a special file (a FIFO would block), nor a unet checkpoint.
  CommandFiles& writes(const std::string& path);
  CommandFiles& writes(const std::vector<std::string>& paths);
  /// The checkpoint that a training run writes: like `writes`, except that it may already hold a
  /// checkpoint (whether it may be replaced or continued is the trainer's --resume/--overwrite rule).
  CommandFiles& writes_checkpoint(const std::string& path);
  /// A folder the command creates files in: must be a folder if it exists.
  CommandFiles& writes_into(const std::string& dir);

  /// Throws `unet::Error` naming the first output that breaks a rule, and why.
  void check() const;

 private:
  struct Output {
    std::string path;
    bool checkpoint = false;
  };
  std::vector<std::string> inputs_, folders_;
  std::vector<Output> outputs_;
};

}  // namespace unet::cli
