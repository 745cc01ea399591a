"""Builders of tiny hostile files: checkpoints, images and dataset folders.

Each builder writes into ``folder`` and returns the path to feed to a target. Payloads that would run
code write ``sentinel`` if they ever ran.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from scipy.io import savemat
from torch import nn

from protoviz.models.checkpoint import save_model
from tests.conftest import make_tiny_model
from tests.models.legacy import malicious as mal
from tests.models.legacy import writers as w

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


# ----- raw pickle and container writers ---------------------------------------------------------
class Pid:
    """A persistent id to write as-is (a storage reference claiming whatever we like)."""

    def __init__(self, pid: tuple[Any, ...]):
        self.pid = pid


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return obj.pid if isinstance(obj, Pid) else None


def dumps(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def tensor_reduce(pid: Pid, size: tuple[int, ...], stride: tuple[int, ...]) -> mal.Reduce:
    return mal.Reduce(torch._utils._rebuild_tensor_v2, (pid, 0, size, stride, False, OrderedDict()))


def torch_zip(path: Path, pickled: bytes, records: dict[str, bytes], compressed: tuple[str, ...] = ()) -> Path:
    """A torch.save-like zip: archive/data.pkl plus archive/data/<key> records."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", "little")
        for key, data in records.items():
            kind = zipfile.ZIP_DEFLATED if key in compressed else zipfile.ZIP_STORED
            archive.writestr(f"archive/data/{key}", data, compress_type=kind)
        archive.writestr("archive/version", "3\n")
    return path


def legacy_stream(main: bytes, keys: list[str], data: bytes = b"") -> bytes:
    """A pre-1.6 torch.save stream: magic, protocol, system info, main pickle, storage keys, storage data."""
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}
    return b"".join([pickle.dumps(LEGACY_MAGIC, 2), pickle.dumps(1001, 2), pickle.dumps(info, 2), main,
                     pickle.dumps(keys, 2), data])


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


# ----- checkpoints that try to run code -------------------------------------------------------------
def code_payload(folder: Path, sentinel: Path, global_name: str, fmt: str) -> Path:
    return mal.write(mal.payloads(sentinel)[global_name](), folder / "evil.pth", fmt)


def nested_storage(folder: Path, sentinel: Path) -> Path:
    return write(folder, "tree.pkl", mal.nested_storage_bytes(sentinel))


def protocol0(folder: Path, sentinel: Path) -> Path:
    return write(folder, "classic.pkl", mal.protocol0_os_system(sentinel))


def setstate_smuggle(folder: Path, sentinel: Path) -> Path:
    """A module whose BUILD state plants ``__setstate__`` (an allowed callable here; a second BUILD would
    then call it with any state), then the second BUILD."""
    module = b"\x80\x02ctorch.nn.modules.linear\nIdentity\n)\x81"  # NEWOBJ Identity()
    state = b"}X\x0c\x00\x00\x00__setstate__ccollections\nOrderedDict\nsb"
    code = f"open({str(sentinel)!r}, 'w').close()".encode()
    second = b"X" + struct.pack("<I", len(code)) + code + b"b."
    return write(folder, "smuggle.pkl", module + state + second)


def stack_global_getattr(folder: Path, sentinel: Path) -> Path:
    """Protocol 4 STACK_GLOBAL naming builtins.getattr (module and name pushed as strings)."""
    body = b"\x8c\x08builtins\x94\x8c\x07getattr\x94\x93\x94."
    return write(folder, "p4.pkl", b"\x80\x04" + body)


def module_pid_not_module(folder: Path, sentinel: Path) -> Path:
    """A legacy 'module' persistent id whose class is torch.Size (allowed, but not a module)."""
    main = dumps(Pid(("module", torch.Size, "x.py", "source")))
    return write(folder, "module_pid.pth", legacy_stream(main, []))


# ----- allow-listed classes called to allocate ---------------------------------------------------------
def call_class(folder: Path, sentinel: Path, what: str) -> Path:
    from torchvision.models import vgg

    payloads = {
        "bytearray": mal.Reduce(bytearray, (3 << 30,)),
        "linear": mal.Reduce(nn.Linear, (30000, 30000)),
        "vgg": [mal.Reduce(vgg.VGG, (mal.Reduce(nn.Sequential, ()),)) for _ in range(12)],
        "conv": mal.Reduce(nn.Conv2d, (1, 1, 50000)),
    }
    return mal.write(payloads[what], folder / f"{what}.pth", "zip")


def newobj_with_arguments(folder: Path, sentinel: Path) -> Path:
    """NEWOBJ_EX of nn.Linear with (30000, 30000): creation with arguments."""
    module, name = b"torch.nn.modules.linear", b"Linear"
    body = (b"\x8c" + bytes([len(module)]) + module + b"\x94\x8c" + bytes([len(name)]) + name
            + b"\x94\x93\x94M0uM0u\x86}\x92.")
    return write(folder, "newobj.pkl", b"\x80\x04" + body)


def inst_with_arguments(folder: Path, sentinel: Path) -> Path:
    """Protocol-2 stream using the INST opcode to call nn.Linear(30000, 30000)."""
    return write(folder, "inst.pkl", b"\x80\x02(M0uM0uitorch.nn.modules.linear\nLinear\n.")


# ----- zip containers ------------------------------------------------------------------------------
def zip_bomb(folder: Path, sentinel: Path) -> Path:
    """A state dict whose storage record is DEFLATE-compressed: 64 MB of zeros in ~64 kB."""
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 16 << 20))
    pickled = dumps(OrderedDict(w=tensor_reduce(pid, (16 << 20,), (1,))))
    return torch_zip(folder / "bomb.pth", pickled, {"0": bytes(64 << 20)}, compressed=("0",))


def zip_forged_sizes(folder: Path, sentinel: Path) -> Path:
    """A stored member whose central-directory sizes claim 2 GiB."""
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 4))
    path = torch_zip(folder / "forged.pth", dumps({"w": tensor_reduce(pid, (4,), (1,))}), {"0": bytes(16)})
    data = bytearray(path.read_bytes())
    start = data.find(b"archive/data/0", data.find(b"PK\x01\x02")) - 46  # its central-directory entry
    assert data[start:start + 4] == b"PK\x01\x02"
    data[start + 20:start + 28] = struct.pack("<II", (1 << 31) - 1, (1 << 31) - 1)
    path.write_bytes(bytes(data))
    return path


def zip_claims_more(folder: Path, sentinel: Path) -> Path:
    """A storage reference claiming 10^9 floats over a 16-byte record."""
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 10**9))
    return torch_zip(folder / "claims.pth", dumps({"w": tensor_reduce(pid, (10**9,), (1,))}), {"0": bytes(16)})


def torchscript(folder: Path, sentinel: Path) -> Path:
    path = folder / "script.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(path))
    return path


# ----- tensor layouts ---------------------------------------------------------------------------------
def _ppnet_state(**override: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
    state = OrderedDict(w.ppnet().state_dict())
    state.update(override)
    return state


def stride_zero(folder: Path, sentinel: Path, fmt: str) -> Path:
    """prototype_vectors claiming 4e8 prototypes over one stored float (stride 0)."""
    vectors = torch.zeros(1, 1, 1, 1).expand(400_000_000, 8, 1, 1)
    return w.save(_ppnet_state(prototype_vectors=vectors), folder / "stride0.pth", fmt)


def overlapping(folder: Path, sentinel: Path) -> Path:
    """A (20000, 20000) tensor with strides (1, 1) over 40,000 stored floats."""
    big = torch.zeros(40_000).as_strided((20_000, 20_000), (1, 1))
    return w.save(_ppnet_state(prototype_vectors=big), folder / "overlap.pth", "zip")


def special_tensor(folder: Path, sentinel: Path, kind: str) -> Path:
    tensors = {
        "meta": lambda: torch.empty(10**9, device="meta"),
        "sparse": lambda: torch.sparse_coo_tensor(torch.tensor([[0], [0]]), torch.tensor([1.0]), (10**6, 10**6)),
        "quantized": lambda: torch.quantize_per_tensor(torch.zeros(4), 0.1, 0, torch.qint8),
        "nested": lambda: torch.nested.nested_tensor([torch.zeros(2), torch.zeros(3)]),
    }
    return w.save(_ppnet_state(prototype_vectors=tensors[kind]()), folder / f"{kind}.pth", "zip")


def legacy_claims_terabytes(folder: Path, sentinel: Path) -> Path:
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 10**12, None))
    main = dumps({"w": tensor_reduce(pid, (10**12,), (1,))})
    return write(folder, "terabytes.pth", legacy_stream(main, ["0"]))


def build_on_tensor(folder: Path, sentinel: Path) -> Path:
    """A valid tensor, then BUILD with a set_ state that would make it a 1e9-element stride-0 view."""
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 1))
    tensor = dumps(tensor_reduce(pid, (1,), (1,)))[:-1]  # without STOP
    state = dumps((Pid(("storage", torch.FloatStorage, "0", "cpu", 1)), 0, (10**9,), (0,)))[2:-1]
    return torch_zip(folder / "build.pth", tensor + state + b"b.", {"0": bytes(4)})


def setitem_on_tensor(folder: Path, sentinel: Path) -> Path:
    pid = Pid(("storage", torch.FloatStorage, "0", "cpu", 1))
    tensor = dumps(tensor_reduce(pid, (1,), (1,)))[:-1]
    return torch_zip(folder / "setitem.pth", tensor + b"K\x00K\x01s.", {"0": bytes(4)})


# ----- model sizes from research files -----------------------------------------------------------------
def many_blocks(folder: Path, sentinel: Path) -> Path:
    state = OrderedDict(w.ppnet(backbone="resnet").state_dict())
    state["features.layer1.99999.conv1.weight"] = torch.zeros(1)
    return w.save(state, folder / "blocks.pth", "zip")


def whole_ppnet(folder: Path, sentinel: Path, change: str) -> Path:
    net = w.ppnet()
    if change == "img_size":
        net.img_size = 30000
    elif change == "nan":
        with torch.no_grad():
            net.prototype_vectors[0, 0] = float("nan")
    elif change == "wide":  # a 4096-channel first conv at 1024x1024: 4.3e9 values in one activation
        features = w.vgg("vgg_features", [4096, "M", 16, "M", 16, "M", 16, "M"])
        net = type(net)(features, torch.eye(3).repeat_interleave(2, 0), 8, 0)
        net.img_size = 1024
    return w.save(net, folder / f"{change}.pth", "legacy", w.research_classes(net))


def zero_classes(folder: Path, sentinel: Path) -> Path:
    return w.save(_ppnet_state(**{"last_layer.weight": torch.zeros(0, 6)}), folder / "zero.pth", "zip")


def too_many_prototypes(folder: Path, sentinel: Path) -> Path:
    state = _ppnet_state(prototype_vectors=torch.rand(200_000, 8, 1, 1))
    state["last_layer.weight"] = torch.zeros(1, 200_000)
    return w.save(state, folder / "many.pth", "zip")


def prototree(folder: Path, sentinel: Path, change: str) -> Path:
    tree = w.prototree()
    if change == "cycle":
        tree._root.l = tree._root
    elif change == "index":
        tree._out_map = {k: 999 for k in tree._out_map}
    elif change == "dag":  # both children the same subtree, 40 levels: 2^40 paths through 41 nodes
        leaf = type(tree._root.l.l)(0, 3)
        node = leaf
        for i in range(40):
            node = type(tree._root)(i, node, node)
        tree._root = node
        tree._out_map = {m: 0 for m in tree._root.modules() if m is not leaf}
    elif change == "pairs":  # 20,000 prototype rows x 20,000 classes: a 4e8-entry identity, 160 kB of weights
        with torch.no_grad():
            tree.prototype_layer.prototype_vectors = nn.Parameter(torch.rand(20_000, 1, 1, 1))
            tree._add_on[0] = nn.Conv2d(tree._add_on[0].in_channels, 1, 1, bias=False)
            for leaf in tree._root.modules():
                if hasattr(leaf, "_dist_params"):
                    leaf._dist_params = nn.Parameter(torch.rand(20_000))
    return w.save(tree, folder / f"tree_{change}.pth", "zip", w.research_classes(tree))


def many_classes(folder: Path, sentinel: Path) -> Path:
    """A plain pickle naming 20,000 distinct research classes (each would be a new stand-in class)."""
    body = b"".join(f"cmodel\nC{i}\n0".encode() for i in range(20_000))
    return write(folder, "classes.pkl", b"\x80\x02" + body + b"N.")


# ----- native safetensors --------------------------------------------------------------------------
def native(folder: Path, sentinel: Path, change: str) -> Path:
    """The tiny native model with one field of its config or metadata replaced."""
    model = make_tiny_model()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    config = model.config_dict()
    meta = {"format": "protoviz", "format_version": "1", "family": "protopnet", "class_names": "[]",
            "prototype_sources": "[]", "extra": "{}"}
    edits: dict[str, Any] = {
        "per_class": {"prototypes_per_class": 10**8}, "dim": {"prototype_dim": 10**9},
        "vgg": {"backbone": "vgg:cfg=" + ",".join(["20000"] * 8) + ";bn=0"},
        "wide_vgg": {"backbone": "vgg:cfg=4096,4096,4096;bn=0"}, "img_size": {"input": {**config["input"],
                                                                                        "image_size": [30000, 30000]}},
        "std0": {"input": {**config["input"], "std": [0.0, 0.2, 0.2]}},
        "nan_mean": {"input": {**config["input"], "mean": [float("nan"), 0.4, 0.4]}},
        "no_classes": {"class_names": []}, "classes_int": {"class_names": 5},
    }
    family = "protopnet"
    if change in edits:
        config.update(edits[change])
    elif change == "slots":
        family, config = "protopool", {**_example("protopool"), "num_slots": 10**9}
    elif change in ("tree_cycle", "tree_index"):
        family, config = "prototree", _example("prototree")
        nodes = [dict(n) for n in config["tree"]]
        if change == "tree_cycle":
            nodes[2]["right"] = 0
        else:
            nodes[0]["prototype"] = 10**6
        config["tree"] = nodes
    elif change == "nan_weights":
        tensors["prototype_vectors"] = torch.full_like(tensors["prototype_vectors"], float("inf"))
    meta["family"] = family
    meta["config"] = json.dumps(config)
    if change == "not_json":
        meta["config"] = "{not json"
    elif change == "deep_json":
        meta["config"] = "[" * 100_000 + "]" * 100_000
    elif change == "extra_list":
        meta["extra"] = "[1, 2]"
    elif change == "bad_source":
        meta["prototype_sources"] = json.dumps([{"image_id": "x", "box": [10**18, 0, 0, 0]}] + [None] * 5)
    path = folder / f"{change}.safetensors"
    save_file(tensors, str(path), metadata=meta)
    return path


def _example(family: str) -> dict[str, Any]:
    from protoviz.models.registry import FAMILIES

    return FAMILIES.get(family).example_config()


def native_raw(folder: Path, sentinel: Path, change: str) -> Path:
    """safetensors bytes broken at the container level."""
    good = save_model(make_tiny_model(), folder / "good.safetensors").read_bytes()
    length = int.from_bytes(good[:8], "little")
    header = json.loads(good[8:8 + length])
    if change == "header_length":
        data = (2**40).to_bytes(8, "little") + b"{}"
    elif change == "offsets":
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"] = [0, 2**40]
        text = json.dumps(header).encode()
        data = len(text).to_bytes(8, "little") + text + good[8 + length:]
    else:  # unknown dtype
        name = next(k for k in header if k != "__metadata__")
        header[name]["dtype"] = "F8_E4M3"
        text = json.dumps(header).encode()
        data = len(text).to_bytes(8, "little") + text + good[8 + length:]
    return write(folder, f"{change}.safetensors", data)


# ----- files that are not files ---------------------------------------------------------------------------
def fifo(folder: Path, sentinel: Path) -> Path:
    path = folder / "pipe.pth"
    os.mkfifo(path)
    return path


def symlink_loop(folder: Path, sentinel: Path) -> Path:
    (folder / "a.pth").symlink_to(folder / "b.pth")
    (folder / "b.pth").symlink_to(folder / "a.pth")
    return folder / "a.pth"


SECRET = "api_key=sk-THIS-IS-A-SECRET-0123456789"


def secret_text(folder: Path, sentinel: Path) -> Path:
    return write(folder, "secrets.env", f"{SECRET}\npassword=hunter2\n".encode())


def opcode_bomb(folder: Path, sentinel: Path) -> Path:
    return write(folder, "ops.pkl", b"\x80\x02" + b"N0" * 1_100_000 + b"N.")


def truncated_zip(folder: Path, sentinel: Path) -> Path:
    net = w.ppnet()
    data = w.save(net, folder / "whole.pth", "zip", w.research_classes(net)).read_bytes()
    return write(folder, "cut.pth", data[: len(data) // 2])


# ----- images ------------------------------------------------------------------------------------------
def eps(folder: Path, sentinel: Path) -> Path:
    text = (f"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n({sentinel}) (w) file closefile\n"
            "0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    return write(folder, "upload.png", text.encode())


def encoded(folder: Path, sentinel: Path, kind: str) -> Path:
    buffer = io.BytesIO()
    if kind == "deep16":  # 8000 x 8000 16-bit: 128 MB decoded, a float64 copy would be 512 MB
        Image.new("I;16", (8000, 8000)).save(buffer, format="PNG")
    elif kind == "huge1bit":
        Image.new("1", (20000, 20000)).save(buffer, format="PNG", optimize=True)
    elif kind == "gif_frames":
        frames = [Image.new("RGB", (8, 8), (i % 256, 0, 0)) for i in range(300)]
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    elif kind == "ztxt":
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("bomb", "0" * (32 << 20), zip=True)
        Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    elif kind in ("ICO", "SGI", "PSD", "TGA", "PCX"):
        image = Image.new("RGB", (16, 16), (1, 2, 3))
        image.save(buffer, format=kind if kind != "PSD" else "TIFF")
        if kind == "PSD":  # Pillow cannot write PSD: a minimal PSD header with claimed 30000 x 30000
            buffer = io.BytesIO(b"8BPS\x00\x01" + bytes(6) + struct.pack(">HIIHH", 3, 30000, 30000, 8, 3)
                                + bytes(64))
    elif kind == "tiff_dims":  # a TIFF header claiming 100000 x 100000 pixels with 8 bytes of data
        entries = [(256, 4, 1, 100000), (257, 4, 1, 100000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                   (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 100000), (279, 4, 1, 8)]
        ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + bytes(4)
        buffer = io.BytesIO(b"II*\x00" + struct.pack("<I", 16) + bytes(8) + ifd)
    elif kind == "jpeg_dims":  # a JPEG frame header claiming 65000 x 65000
        Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
        data = bytearray(buffer.getvalue())
        sof = data.find(b"\xff\xc0")
        data[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
        buffer = io.BytesIO(bytes(data))
    return write(folder, f"{kind}.img", buffer.getvalue())


# ----- datasets ------------------------------------------------------------------------------------------
def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def cub(folder: Path, sentinel: Path, change: str) -> Path:
    """A two-image CUB folder with one hostile change."""
    root = folder / "cub"
    for i in (1, 2):
        (root / "images" / "001.a").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30), (i, 0, 0)).save(root / "images" / "001.a" / f"{i}.png")
    images = ["1 001.a/1.png", "2 001.a/2.png"]
    boxes = ["1 1 1 20 20", "2 1 1 20 20"]
    outside = folder / "outside"
    outside.mkdir(exist_ok=True)
    Image.new("RGB", (8, 8)).save(outside / "secret.png")
    (outside / "passwd").write_text("root:x:0:0\n")
    if change == "dotdot":
        images[1] = "2 ../../outside/secret.png"
    elif change == "absolute":
        images[1] = f"2 {outside / 'secret.png'}"
    elif change == "symlink":
        (root / "images" / "001.a" / "2.png").unlink()
        (root / "images" / "001.a" / "2.png").symlink_to(outside / "secret.png")
    elif change == "box":
        boxes[1] = "2 0 0 60000 60000"
    elif change == "eps_image":
        eps(root / "images" / "001.a", sentinel).rename(root / "images" / "001.a" / "2.png")
    elif change == "images_link":  # the whole images/ folder is a link to elsewhere
        (outside / "pool" / "001.a").mkdir(parents=True)
        for i in (1, 2):
            (root / "images" / "001.a" / f"{i}.png").rename(outside / "pool" / "001.a" / f"{i}.png")
        (root / "images" / "001.a").rmdir()
        (root / "images").rmdir()
        (root / "images").symlink_to(outside / "pool")
    elif change == "classes_link":  # classes.txt is a link to a private file: its lines would become names
        (outside / "private.txt").write_text(f"1 {SECRET}\n")
        (root / "classes.txt").symlink_to(outside / "private.txt")
    elif change == "mask_symlink":
        (root / "masks" / "001.a").mkdir(parents=True)
        Image.new("L", (40, 30)).save(root / "masks" / "001.a" / "1.png")
        (root / "masks" / "001.a" / "2.png").symlink_to(outside / "secret.png")
    _lines(root / "images.txt", images)
    _lines(root / "image_class_labels.txt", ["1 1", "2 1"])
    _lines(root / "bounding_boxes.txt", boxes)
    if change == "parts":
        _lines(root / "parts" / "parts.txt", [f"{k} part{k}" for k in range(1, 200_001)])
        _lines(root / "parts" / "part_locs.txt", ["1 1 1 1 1"])
    elif change == "part_lines":  # 256 parts x 2 images needs 512 lines; 3 are given
        _lines(root / "parts" / "parts.txt", [f"{k} part{k}" for k in range(1, 257)])
        _lines(root / "parts" / "part_locs.txt", ["1 1 1 1 1", "1 2 1 1 1", "2 1 1 1 1"])
    elif change == "fifo":
        (root / "images.txt").unlink()
        os.mkfifo(root / "images.txt")
    elif change == "binary":
        (root / "images.txt").write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    elif change == "secret":
        _lines(root / "images.txt", ["1 001.a/1.png", SECRET])
    return root


def imagefolder_symlink(folder: Path, sentinel: Path) -> Path:
    root = folder / "imagefolder"
    (root / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "a" / "x.png")
    outside = folder / "elsewhere"
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "private.png")
    (root / "b").symlink_to(outside)
    return root


def cars(folder: Path, sentinel: Path, change: str) -> Path:
    root = folder / "cars"
    (root / "cars_train").mkdir(parents=True)
    (root / "devkit").mkdir()
    Image.new("RGB", (30, 20)).save(root / "cars_train" / "00001.jpg")
    savemat(root / "devkit" / "cars_meta.mat", {"class_names": np.array(["Audi", "BMW"], dtype=object)})
    annos = root / "devkit" / "cars_train_annos.mat"
    fname = "../../outside.jpg" if change == "dotdot" else "00001.jpg"
    savemat(annos, {"annotations": np.array([(2.0, 3.0, 12.0, 13.0, 2, fname)], dtype=[
        ("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"), ("bbox_y2", "O"), ("class", "O"), ("fname", "O")])})
    header = annos.read_bytes()[:128]
    if change == "zlib_bomb":  # one compressed element inflating to 512 MB of a numeric array
        packer = zlib.compressobj(9)
        tag = struct.pack("<II", 14, 512 << 20)
        chunks = [packer.compress(tag + bytes(1 << 20))] + [packer.compress(bytes(1 << 20)) for _ in range(511)]
        body = b"".join(chunks) + packer.flush()
        annos.write_bytes(header + struct.pack("<II", 15, len(body)) + body)
    elif change == "cell_dims":  # a cell array claiming 100000 x 100000 cells
        name = b"annotations\x00\x00\x00\x00\x00"
        matrix = (struct.pack("<II", 6, 8) + struct.pack("<II", 1, 0) + struct.pack("<II", 5, 8)
                  + struct.pack("<ii", 100000, 100000) + struct.pack("<II", 1, 11) + name)
        annos.write_bytes(header + struct.pack("<II", 14, len(matrix)) + matrix)
    elif change == "v4":
        annos.write_bytes(struct.pack("<iiiii", 0, 100000, 100000, 0, 2) + b"a\x00")
    return root


def dogs_xml(folder: Path, sentinel: Path) -> Path:
    root = folder / "dogs"
    (root / "Images" / "n01-Pug").mkdir(parents=True)
    (root / "Annotation" / "n01-Pug").mkdir(parents=True)
    (root / "lists").mkdir()
    Image.new("RGB", (30, 20)).save(root / "Images" / "n01-Pug" / "a.jpg")
    laughs = "".join(f'<!ENTITY l{i} "{"&l" + str(i - 1) + ";" * 1}{("&l" + str(i - 1) + ";") * 9}">'
                     for i in range(1, 10))
    (root / "Annotation" / "n01-Pug" / "a").write_text(
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY l0 "lol">{laughs}]><annotation>&l9;</annotation>')
    savemat(root / "lists" / "test_list.mat", {"file_list": np.array(["n01-Pug/a.jpg"], dtype=object),
                                               "labels": np.array([1])})
    return root
