"""Hostile inputs: every attack class of issue 11, each in a child process with a memory limit and a
timeout (tests/security/harness.py).

Each case asserts the outcome (refused with a clear protoviz error matching a reason, or handled), that
no sentinel file appeared (nothing ran), that the child's peak memory grew by less than a bound, that it
answered in time, and that the message quotes nothing secret and no traceback.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.security import harness, targets
from tests.security import payloads as p

MAX_GROWTH_MB = 400.0


@dataclass(frozen=True)
class Case:
    """attack class, name, builder(folder, sentinel) -> target argument, expected error class ('' = loads
    fine), regex the message must match, the target, and the peak-memory bound."""

    attack: str
    name: str
    build: Callable[[Path, Path], Any]
    error: str
    match: str
    target: Callable[..., Any] = targets.load_checkpoint
    growth_mb: float = MAX_GROWTH_MB
    extra: tuple[Any, ...] = ()


CK, IM, DS = "CheckpointError", "ImageError", "DatasetError"
CASES = [
    # code execution through pickles
    *(Case("code execution", f"{name} ({fmt})", partial(p.code_payload, global_name=name, fmt=fmt), CK,
           re.escape(name)) for name, fmt in (("posix.system", "zip"), ("builtins.eval", "legacy"),
                                               ("subprocess.Popen", "pickle"), ("builtins.exec", "zip"),
                                               ("importlib.import_module", "legacy"),
                                               ("torch.serialization.load", "pickle"))),
    Case("code execution", "payload in a nested storage stream", p.nested_storage, CK, "posix.system"),
    Case("code execution", "protocol-0 os.system", p.protocol0, CK, "protocol 0/1"),
    Case("code execution", "__setstate__ planted by BUILD", p.setstate_smuggle, CK, "attribute name"),
    Case("code execution", "STACK_GLOBAL builtins.getattr", p.stack_global_getattr, CK, "builtins.getattr"),
    Case("code execution", "module persistent id of a non-module", p.module_pid_not_module, CK, "not a module"),
    # allow-listed classes called to allocate
    *(Case("allocation by calling a class", what, partial(p.call_class, what=what), CK, regex)
      for what, regex in (("bytearray", "builtins.bytearray"), ("linear", "refused to call .*Linear"),
                          ("vgg", "refused to call .*VGG|Sequential"), ("conv", "refused to call .*Conv2d"))),
    Case("allocation by calling a class", "NEWOBJ_EX with arguments", p.newobj_with_arguments, CK, "with arguments"),
    Case("allocation by calling a class", "INST with arguments", p.inst_with_arguments, CK, "with arguments"),
    # zip containers
    Case("zip container", "DEFLATE bomb (64 MB in 64 kB)", p.zip_bomb, CK, "compressed"),
    Case("zip container", "central directory claims 2 GiB", p.zip_forged_sizes, CK, "more bytes than the archive"),
    Case("zip container", "storage claims 1e9 floats over 16 bytes", p.zip_claims_more, CK, "claims"),
    Case("zip container", "TorchScript archive", p.torchscript, CK, "TorchScript"),
    Case("zip container", "truncated zip", p.truncated_zip, CK, "corrupt|truncated|zip"),
    # tensor layouts
    Case("tensor layout", "stride-0 4e8 prototypes (zip)", partial(p.stride_zero, fmt="zip"), CK, "stride-0"),
    Case("tensor layout", "stride-0 4e8 prototypes (legacy)", partial(p.stride_zero, fmt="legacy"), CK, "stride-0"),
    Case("tensor layout", "overlapping strides claim 4e8", p.overlapping, CK, "elements over a storage"),
    *(Case("tensor layout", f"{kind} tensor", partial(p.special_tensor, kind=kind), CK, "refused")
      for kind in ("meta", "sparse", "quantized", "nested")),
    Case("tensor layout", "legacy storage claims 1e12 floats", p.legacy_claims_terabytes, CK, "more bytes than"),
    Case("tensor layout", "BUILD on a tensor (set_ to stride 0)", p.build_on_tensor, CK, "set the state"),
    Case("tensor layout", "SETITEM on a tensor", p.setitem_on_tensor, CK, "SETITEM"),
    # sizes claimed by research files
    Case("model size (research file)", "layer1.99999 keys", p.many_blocks, CK, "beyond 512", extra=("protopnet",)),
    Case("model size (research file)", "img_size=30000", partial(p.whole_ppnet, change="img_size"), CK, "img_size"),
    Case("model size (research file)", "4096-wide conv at 1024 px", partial(p.whole_ppnet, change="wide"), CK,
         "one 1024x1024 image"),
    Case("model size (research file)", "zero classes", p.zero_classes, CK, "empty dimension",
         extra=("protopnet",)),
    Case("model size (research file)", "200,000 prototypes", p.too_many_prototypes, CK, "prototypes",
         extra=("protopnet",)),
    Case("model size (research file)", "NaN weights", partial(p.whole_ppnet, change="nan"), CK, "NaN"),
    Case("model size (research file)", "cyclic ProtoTree", partial(p.prototree, change="cycle"), CK,
         "cyclic|unique _index"),
    Case("model size (research file)", "ProtoTree DAG of 2^40 paths", partial(p.prototree, change="dag"), CK,
         "cyclic|deeper"),
    Case("model size (research file)", "ProtoTree map out of range", partial(p.prototree, change="index"), CK,
         "outside"),
    Case("model size (research file)", "ProtoTree 20k prototypes x 20k classes", partial(p.prototree, change="pairs"),
         CK, "prototype-class pairs"),
    Case("code execution", "20,000 distinct research classes", p.many_classes, CK, "more than 10000 research"),
    # native safetensors
    *(Case("native checkpoint", change, partial(p.native, change=change), CK, regex) for change, regex in (
        ("per_class", "prototypes_per_class"), ("dim", "prototype_dim"), ("slots", "num_slots"),
        ("vgg", "backbone descriptor"), ("wide_vgg", "does not match the model its config describes"),
        ("img_size", "input height"), ("std0", "standard deviation"), ("nan_mean", "non-finite"),
        ("no_classes", "number of classes"), ("classes_int", "malformed"), ("tree_cycle", "reached twice"),
        ("tree_index", "prototype of node"), ("nan_weights", "NaN or infinite"), ("not_json", "not valid JSON"),
        ("deep_json", "not valid JSON"), ("extra_list", "extra"), ("bad_source", "prototype source 0"))),
    *(Case("native checkpoint", f"container: {change}", partial(p.native_raw, change=change), CK, regex)
      for change, regex in (("header_length", "header length"), ("offsets", "claims bytes"),
                            ("dtype", "supported dtype"))),
    # files that are not checkpoint files
    Case("file kind", "/dev/zero", lambda folder, sentinel: "/dev/zero", CK, "not a regular file"),
    Case("file kind", "FIFO (would block)", p.fifo, CK, "not a regular file"),
    Case("file kind", "symlink loop", p.symlink_loop, CK, "cannot be opened|no such"),
    Case("file kind", "5000-character path", lambda folder, sentinel: "x" * 5000, CK, "longer than"),
    Case("file kind", "text file with a secret", p.secret_text, CK, "neither a torch.save file"),
    Case("file kind", "empty file", lambda folder, sentinel: p.write(folder, "empty.pth", b""), CK, "neither"),
    Case("file kind", "2.2M-opcode pickle", p.opcode_bomb, CK, "opcodes"),
    Case("file kind", "folder without a checkpoint", lambda folder, sentinel: str(folder), CK,
         "checkpoint-like files"),
    # the command line on the same inputs
    Case("command line", "protoviz info /dev/zero", lambda folder, sentinel: "/dev/zero", "", r"^\(2, 'protoviz info",
         target=partial(targets.cli, "info")),
    Case("command line", "protoviz info FIFO", p.fifo, "", r"^\(2, 'protoviz info", target=partial(targets.cli, "info")),
    Case("command line", "protoviz info zip bomb", p.zip_bomb, "", r"^\(2, .*compressed",
         target=partial(targets.cli, "info")),
    # images
    Case("image", "EPS (would start Ghostscript)", p.eps, IM, "accepted format", target=targets.decode_image),
    Case("image", "16-bit 8000x8000 PNG", partial(p.encoded, kind="deep16"), "", "RGB 8000x8000",
         target=targets.decode_image, growth_mb=700.0),
    Case("image", "1-bit 20000x20000 PNG", partial(p.encoded, kind="huge1bit"), IM, "too large",
         target=targets.decode_image),
    Case("image", "TIFF claiming 100000x100000", partial(p.encoded, kind="tiff_dims"), IM,
         "megapixels|too large", target=targets.decode_image),
    Case("image", "JPEG claiming 65000x65000", partial(p.encoded, kind="jpeg_dims"), IM, "megapixels|too large",
         target=targets.decode_image),
    Case("image", "GIF of 300 frames", partial(p.encoded, kind="gif_frames"), "", r"RGB 8x8 first pixel \(0, 0, 0\)",
         target=targets.decode_image),
    Case("image", "PNG with a 32 MB zTXt bomb", partial(p.encoded, kind="ztxt"), IM, "truncated or corrupt",
         target=targets.decode_image),
    *(Case("image", f"{kind} file", partial(p.encoded, kind=kind), IM, "accepted format",
           target=targets.decode_image) for kind in ("ICO", "SGI", "PSD", "TGA", "PCX")),
    Case("image", "/dev/zero as an image", lambda folder, sentinel: "/dev/zero", IM, "not a regular file",
         target=targets.decode_image),
    # datasets
    *(Case("dataset", f"CUB {change}", partial(p.cub, change=change), DS, regex, target=targets.read_dataset)
      for change, regex in (("dotdot", "leaves the dataset folder"), ("absolute", "absolute"),
                            ("symlink", "leads out of the dataset folder"), ("box", "lies outside"),
                            ("images_link", "leads out of the dataset folder"), ("classes_link", "leads out"),
                            ("eps_image", "accepted format"), ("parts", "at most 256"),
                            ("part_lines", "no line for part"), ("fifo", "no image files"),
                            ("binary", "not UTF-8"), ("secret", "images.txt, line 2"))),
    Case("dataset", "CUB mask symlink out", partial(p.cub, change="mask_symlink"), DS, "leads out",
         target=targets.read_dataset, extra=("auto", "all", True, True)),
    Case("dataset", "ImageFolder class folder linked out", p.imagefolder_symlink, DS, "leads out",
         target=targets.read_dataset),
    *(Case("dataset", f"Stanford Cars {change}", partial(p.cars, change=change), DS, regex,
           target=targets.read_dataset, extra=("auto", "train")) for change, regex in (
        ("zlib_bomb", "inflate to more than"), ("cell_dims", "claims"), ("v4", "not a MATLAB 5"),
        ("dotdot", "leaves the dataset folder"))),
    Case("dataset", "Stanford Dogs billion laughs", p.dogs_xml, DS, "DOCTYPE", target=targets.read_dataset,
         extra=("auto", "test")),
]
FORBIDDEN = ("Traceback", p.SECRET, "sk-THIS", "hunter2", "root:x:0")


@pytest.mark.parametrize("case", CASES, ids=[f"{c.attack}: {c.name}" for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    argument = case.build(tmp_path, sentinel)
    outcome = harness.run_case(case.target, str(argument), *case.extra)
    label = "refused (exit status 2, a message)" if case.target.__class__ is partial and outcome.status == "ok" \
        and outcome.message.startswith("(2,") else outcome.label()
    harness.RESULTS.append((case.attack, case.name, label, outcome.growth_mb, outcome.seconds))
    detail = f"{outcome.status} {outcome.error}: {outcome.message[:600]}"
    assert outcome.status not in ("hang", "crash"), detail
    assert not sentinel.exists(), "the payload ran"
    if case.error:
        assert outcome.status == "error" and outcome.error == case.error, detail
    else:
        assert outcome.status == "ok", detail
    assert re.search(case.match, outcome.message), detail
    assert not any(text in outcome.message for text in FORBIDDEN), detail
    assert outcome.growth_mb < case.growth_mb, f"peak memory grew {outcome.growth_mb:.0f} MB: {detail}"
