#pragma once
// The model a fork server holds (model_runner.hpp, ModelRunner::preload), and how a worker reads
// a TorchScript module from it. Internal to the worker; includes libtorch.
#include <torch/script.h>

#include <optional>
#include <string>

#include "model_runner.hpp"

namespace respawn::worker {

struct HostModel {
  std::string path;
  std::string bytes;                         // the file, for a worker that loads onto cuda
  std::optional<torch::jit::Module> module;  // loaded on cpu, for a cpu worker
  std::string spec;                          // the module's respawn.json
  int threads = 0;  // libtorch's default intra-op threads, which a forked worker goes back to
};

// A TorchScript module as torch::jit::load reads it onto `device`: from the bytes a fork server
// holds, else from the file.
torch::jit::Module read_torchscript(const std::string& path, const HostModel* host,
                                    torch::Device device, torch::jit::ExtraFilesMap& extra);

}  // namespace respawn::worker
