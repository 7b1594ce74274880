// `unet launch`: start and supervise N data-parallel processes on this machine; `unet dist-info`.
#include "options.h"

#include "unet/dist/dist.h"
#include "unet/runtime/signals.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace unet::cli {
namespace {

std::vector<pid_t>* g_children = nullptr;
std::vector<std::string> g_command;  // what follows `--`

void forward_signal(int signal) {
  if (!g_children) return;
  for (pid_t pid : *g_children) ::kill(pid, signal);
}

/// Waits for every child; on the first failure stops the others. Returns the job's exit code.
int supervise(std::vector<pid_t>& children) {
  int status_code = 0;
  size_t running = children.size();
  while (running > 0) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) break;
    --running;
    int rank = -1;
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i] == pid) {
        rank = static_cast<int>(i);
        children[i] = -1;
      }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && status_code == 0) {
      status_code = code;
      std::fprintf(stderr, "unet launch: rank %d exited with %s %d; stopping the other ranks\n", rank,
                   WIFEXITED(status) ? "code" : "signal", WIFEXITED(status) ? code : WTERMSIG(status));
      for (pid_t other : children)
        if (other > 0) ::kill(other, SIGTERM);
    }
  }
  return status_code;
}

}  // namespace

int split_launch_command(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "launch") return argc;
  for (int i = 2; i < argc; ++i) {
    if (std::string(argv[i]) == "--") {
      g_command.assign(argv + i + 1, argv + argc);
      return i;
    }
  }
  return argc;
}

void register_launch(CLI::App& app) {
  auto nproc = std::make_shared<int>(1);
  auto addr = std::make_shared<std::string>("127.0.0.1");
  auto port = std::make_shared<int>(29500);
  CLI::App* cmd = app.add_subcommand("launch", "Run a command data-parallel in N processes on this machine: unet launch --nproc-per-node N -- train ...");
  cmd->add_option("--nproc-per-node,--nproc_per_node", *nproc, "Processes (one per GPU, or CPU processes)")->capture_default_str();
  cmd->add_option("--master-addr,--master_addr", *addr, "Rendezvous address")->capture_default_str();
  cmd->add_option("--master-port,--master_port", *port, "Rendezvous port")->capture_default_str();
  on_run(*cmd, [nproc, addr, port] {
    std::vector<std::string> args = g_command;
    if (args.empty()) throw Error("launch: nothing to run; usage: unet launch --nproc-per-node N -- train [options]");
    if (*nproc < 1) throw Error("--nproc-per-node must be at least 1");
    if (*nproc > max_threads_per_machine())
      throw Error("--nproc-per-node must be at most " + std::to_string(max_threads_per_machine()) +
                  " (4 per core of this machine; got " + std::to_string(*nproc) + ")");
    if (args.front() == "launch") throw Error("launch: cannot launch 'launch'");
    std::vector<pid_t> children;
    g_children = &children;
    // Signals to the launcher go to every rank (each saves and stops after its step).
    for (int s : kStopSignals) std::signal(s, forward_signal);
    std::fflush(nullptr);
    const pid_t launcher = ::getpid();
    for (int rank = 0; rank < *nproc; ++rank) {
      const pid_t pid = ::fork();
      if (pid < 0) throw Error("launch: cannot start process " + std::to_string(rank));
      if (pid == 0) {
        // The ranks die with the launcher, even when it is killed outright (no orphans training on).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != launcher) ::_exit(128 + SIGTERM);
        ::setenv("RANK", std::to_string(rank).c_str(), 1);
        ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
        ::setenv("WORLD_SIZE", std::to_string(*nproc).c_str(), 1);
        ::setenv("LOCAL_WORLD_SIZE", std::to_string(*nproc).c_str(), 1);
        ::setenv("MASTER_ADDR", addr->c_str(), 1);
        ::setenv("MASTER_PORT", std::to_string(*port).c_str(), 1);
        std::vector<char*> argv;
        std::string self = "unet";
        argv.push_back(self.data());
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv("/proc/self/exe", argv.data());
        std::perror("unet launch: exec");
        ::_exit(127);
      }
      children.push_back(pid);
    }
    const int code = supervise(children);
    g_children = nullptr;
    if (code != 0) std::exit(code);
  });
}

void register_dist_info(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("dist-info", "Print the rank assignment that the launcher's environment gives this process");
  on_run(*cmd, [] {
    const DistEnv env = detect_environment();
    std::printf("rank %d of %d, local rank %d, master %s:%d, launcher %s\n", env.rank, env.world_size, env.local_rank,
                env.master_addr.c_str(), env.master_port, env.launcher.c_str());
  });
}

}  // namespace unet::cli
