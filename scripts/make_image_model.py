#!/usr/bin/env python3
"""Builds an image model for the tensor tests and benchmarks: a torchvision network with random
weights (weights=None, after torch.manual_seed(0)), TorchScript (torch.jit.script), eval mode.

  scripts/python scripts/make_image_model.py [--arch resnet18|mobilenet_v3_small|pool_linear]
                                             [--if-missing] [OUT]
        (default --arch resnet18; default OUT: $RESPAWN_BUILD_DIR/models-generated/ARCH.pt,
         RESPAWN_BUILD_DIR defaulting to build/)

resnet18 is about 45 MB and mobilenet_v3_small about 10 MB, so neither is bundled in models/:
tests/python/test_tritonclient.py and bench/image.py make them when missing (--if-missing: a
lock next to OUT keeps two of them from making it at once; the file appears whole, by a
rename). The file carries `respawn.json` as a TorchScript extra file, as scripts/make_models.py's
models do: task `tensor`, input "image" FP32 [-1,3,224,224], output "logits" FP32 [-1,1000],
the same for every arch. Served under the file's stem (`resnet18`, `mobilenet_v3_small`). Needs
torchvision (scripts/common.sh installs it into the project's venv with the other test packages).

pool_linear is not a vision network but a stand-in for a GPU's speed: global average pooling and
a 3 -> 1000 linear layer, a forward of well under a millisecond on cpu, as an image network's is
on a GPU. With it bench/image.py measures what the server itself carries when the model is not
the bottleneck.
"""
import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_DIR = os.environ.get("RESPAWN_BUILD_DIR") or os.path.join(ROOT, "build")
ARCHS = ("resnet18", "mobilenet_v3_small", "pool_linear")


def default_out(arch: str) -> str:
    return os.path.join(BUILD_DIR, "models-generated", arch + ".pt")


DEFAULT_OUT = default_out("resnet18")

SPEC = {
    "task": "tensor",
    "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 224, 224]}],
    "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 1000]}],
}

# torch 2.11 deprecates torch.jit; respawn loads TorchScript on purpose (see make_models.py).
warnings.filterwarnings("ignore", message=r"`torch\.jit\.[a-z_]+` is deprecated",
                        category=DeprecationWarning)


def build(out: str, arch: str = "resnet18") -> None:
    import torch
    import torchvision

    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r} (one of {', '.join(ARCHS)})")
    torch.manual_seed(0)
    if arch == "pool_linear":
        model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                    torch.nn.Linear(3, 1000)).eval()
    else:
        model = getattr(torchvision.models, arch)(weights=None).eval()
    scripted = torch.jit.script(model)
    directory = os.path.dirname(os.path.abspath(out))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{arch}-", suffix=".pt", dir=directory)
    os.close(fd)
    try:
        torch.jit.save(scripted, tmp, _extra_files={"respawn.json": json.dumps(SPEC)})
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", help="default: models-generated/ARCH.pt")
    parser.add_argument("--arch", choices=ARCHS, default="resnet18",
                        help="torchvision network (default resnet18)")
    parser.add_argument("--if-missing", action="store_true",
                        help="do nothing when OUT exists (waits for another maker of it)")
    args = parser.parse_args()
    out = os.path.abspath(args.out or default_out(args.arch))
    if args.if_missing and os.path.exists(out):
        return 0
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if args.if_missing and os.path.exists(out):
            return 0
        started = time.time()
        build(out, args.arch)
    print(f"wrote {out} ({os.path.getsize(out)} bytes) in {time.time() - started:.1f}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
