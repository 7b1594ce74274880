// Rank assignment from the launchers' environments: torchrun / unet launch, SLURM, Open MPI.
#include "unet/dist/dist.h"
#include "unet/runtime/error.h"

#include <cstdlib>

namespace unet {
namespace {

int to_int(const EnvLookup& lookup, const std::string& name, int fallback) {
  const auto value = lookup(name);
  if (!value || value->empty()) return fallback;
  try {
    size_t used = 0;
    const int v = std::stoi(*value, &used);
    if (used == value->size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("environment variable " + name + "='" + *value + "' is not an integer");
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // First entry: up to the first comma outside brackets.
  std::string entry;
  int depth = 0;
  for (char c : nodelist) {
    if (c == '[') ++depth;
    if (c == ']') --depth;
    if (c == ',' && depth == 0) break;
    entry += c;
  }
  const size_t open = entry.find('[');
  if (open == std::string::npos) return entry;
  // "prefix[07-09,12]suffix": the first number of the range list, with its zero padding.
  const size_t close = entry.find(']', open);
  std::string inside = entry.substr(open + 1, close - open - 1);
  inside = inside.substr(0, inside.find_first_of(",-"));
  return entry.substr(0, open) + inside + (close == std::string::npos ? "" : entry.substr(close + 1));
}

DistEnv detect_environment(const EnvLookup& lookup) {
  DistEnv env;
  auto has = [&](const std::string& name) {
    const auto v = lookup(name);
    return v && !v->empty();
  };
  if (has("RANK") && has("WORLD_SIZE")) {
    env.launcher = "torchrun";
    env.rank = to_int(lookup, "RANK", 0);
    env.world_size = to_int(lookup, "WORLD_SIZE", 1);
    env.local_rank = to_int(lookup, "LOCAL_RANK", env.rank);
  } else if (has("SLURM_PROCID") && has("SLURM_NTASKS")) {
    env.launcher = "slurm";
    env.rank = to_int(lookup, "SLURM_PROCID", 0);
    env.world_size = to_int(lookup, "SLURM_NTASKS", 1);
    env.local_rank = to_int(lookup, "SLURM_LOCALID", 0);
    if (!has("MASTER_ADDR")) {
      const auto nodes = has("SLURM_STEP_NODELIST") ? lookup("SLURM_STEP_NODELIST") : lookup("SLURM_JOB_NODELIST");
      if (nodes && !nodes->empty()) env.master_addr = first_slurm_host(*nodes);
    }
  } else if (has("OMPI_COMM_WORLD_RANK") && has("OMPI_COMM_WORLD_SIZE")) {
    env.launcher = "mpi";
    env.rank = to_int(lookup, "OMPI_COMM_WORLD_RANK", 0);
    env.world_size = to_int(lookup, "OMPI_COMM_WORLD_SIZE", 1);
    env.local_rank = to_int(lookup, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    const int local_size = to_int(lookup, "OMPI_COMM_WORLD_LOCAL_SIZE", env.world_size);
    if (!has("MASTER_ADDR") && local_size != env.world_size)
      throw Error("MASTER_ADDR must be set for an mpirun job that spans several machines");
  } else {
    return env;
  }
  if (has("MASTER_ADDR")) env.master_addr = *lookup("MASTER_ADDR");
  env.master_port = to_int(lookup, "MASTER_PORT", 29500);
  if (env.world_size < 1 || env.rank < 0 || env.rank >= env.world_size || env.local_rank < 0)
    throw Error("inconsistent " + env.launcher + " environment: rank " + std::to_string(env.rank) + " of world size " +
                std::to_string(env.world_size) + ", local rank " + std::to_string(env.local_rank));
  if (env.master_port < 1 || env.master_port > 65535) throw Error("MASTER_PORT " + std::to_string(env.master_port) + " is not a port");
  return env;
}

DistEnv detect_environment() {
  return detect_environment([](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  });
}

}  // namespace unet
