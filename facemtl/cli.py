"""The ``facemtl`` command line.

Each command lives in its own module, which provides ``add_arguments(parser)`` and
``run(args) -> int``. Only the module of the command being run is imported, so a command
whose extras (torch, numba) are not installed does not break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command words, module, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("data", "show"), "facemtl.data.show", "draw a grid of dataset samples with their labels"),
    (("study", "landmark-to-pose"), "facemtl.tools.landmark_to_pose",
     "Hopenet §4.2: pose from landmarks with a mean face (points, jitter, face shape)"),
    (("study", "alpha"), "facemtl.tools.study_alpha",
     "Hopenet Table 5: short runs with multi-loss alpha 0-4 and a regression-only baseline"),
    (("study", "low-res"), "facemtl.tools.study_low_res",
     "Hopenet Fig. 8: pose MAE on images downsampled x1-x15, with/without low-res augmentation, and PnP"),
    (("study", "super-resolution"), "facemtl.tools.study_superres",
     "Super-FAN: tiny faces upsampled by bicubic and by the SR generator: PSNR, SSIM, landmark NME"),
    (("study", "compare"), "facemtl.tools.study_compare",
     "every architecture trained and scored the same way: pose, landmarks, visibility, expression, speed"),
    (("eval",), "facemtl.tools.eval", "score a model on a labelled dataset, ground-truth boxes: pose MAE, NME, ..."),
    (("export",), "facemtl.tools.export", "checkpoint -> ONNX model (fp32, and static int8 with --int8)"),
    (("predict",), "facemtl.infer.predict", "analyse every face of images: boxes, landmarks, pose, expression"),
    (("video",), "facemtl.infer.video", "track and analyse the faces of a video or camera: annotated video + CSV"),
    (("train",), "facemtl.train.cli", "train a model from a YAML config (resumable, DDP under torchrun)"),
    (("profile",), "facemtl.synth.lp",
     "turn real 300-W photos in yaw and pitch with Pose_Para-frame labels (a 300W-LP of our own)"),
    (("synth",), "facemtl.synth.cli", "render labelled synthetic faces (ICT-FaceKit head) as .jpg + .mat or .npz shards"),
]


# Optional packages -> the extra that installs them. A command that needs one which is missing
# says which extra to install instead of ending in a ModuleNotFoundError traceback.
EXTRAS = {"torch": "train", "onnx": "train", "yaml": "train", "numba": "train", "matplotlib": "train",
          "h5py": "data", "scipy": "data", "dask": "distributed", "distributed": "distributed"}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; the arguments of the command that ``argv`` names are added to it."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="facemtl", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"facemtl {_version()}")
    groups: dict[str, argparse._SubParsersAction] = {}
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    for words, module_name, help_text in COMMANDS:
        subparsers = top
        for depth, word in enumerate(words[:-1]):
            key = " ".join(words[: depth + 1])
            if key not in groups:
                group = subparsers.add_parser(word, help=f"{word} commands")
                groups[key] = group.add_subparsers(dest=f"{word}_command", metavar="COMMAND")
                groups[key].required = True
            subparsers = groups[key]
        sub = subparsers.add_parser(words[-1], help=help_text, description=help_text)
        if list(words) == argv[: len(words)]:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def _version() -> str:
    from facemtl import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser(argv).parse_args(argv)
        return int(args._run(args) or 0)
    except ModuleNotFoundError as e:
        package = (e.name or "").split(".")[0]
        if package not in EXTRAS:
            raise
        command = " ".join(w for w in argv[:2] if not w.startswith("-"))
        print(f"facemtl {command}: needs {package}, which is not installed: "
              f"pip install 'facemtl[{EXTRAS[package]}]' (from a clone: pip install -e '.[{EXTRAS[package]}]')",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
