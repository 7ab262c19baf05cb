"""umT5 encoder and PyTorch `.pth` reader goldens.

Writes two fixture families:

* Tests/Fixtures/umt5/  — a tiny random-weight transformers `UMT5EncoderModel`:
  `transformers/` (config.json + model.safetensors), `wan/models_t5_umt5.pth`
  (the same weights under Wan's original `t5.py` names, written by torch.save),
  `io.safetensors` (inputs, stage taps, final states, Wan-style padded prompt
  embedding, the relative-position bucket table) and `manifest.json`.
* Tests/Fixtures/pth/   — torch.save files exercising the restricted
  unpickler (`good_*.pth` with a safetensors twin of their expected values) and
  hostile / corrupt archives (`bad_*.pth`) described in `pth.json`.

Expected values are computed by transformers / torch here, never by Kinema.
"""

from __future__ import annotations

import collections
import io
import math
import os
import pickle
import struct
import time
import zipfile

import torch

from _common import FIXTURES, generator, rel, reset_dir, save_tensors, shape_of, write_json

UMT5_DIR = FIXTURES / "umt5"
PTH_DIR = FIXTURES / "pth"
SEED = 5000

CONFIG = dict(
    vocab_size=128,
    d_model=32,
    d_kv=8,
    d_ff=64,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    layer_norm_epsilon=1e-6,
    dropout_rate=0.0,
    is_encoder_decoder=False,
    use_cache=False,
    tie_word_embeddings=False,
)
SEQ = 40  # longer than the 8 exact buckets and reaching the logarithmic ones
PROMPT_LEN = 512  # Wan pads prompts to 512 tokens


# ----------------------------------------------------------------------------------------------- umT5


def _hf_to_wan(key: str) -> str:
    """transformers UMT5EncoderModel key → Wan `wan/modules/t5.py` T5Encoder key."""
    if key in ("shared.weight", "encoder.embed_tokens.weight"):
        return "token_embedding.weight"
    if key == "encoder.final_layer_norm.weight":
        return "norm.weight"
    parts = key.split(".")
    assert parts[0] == "encoder" and parts[1] == "block", key
    n = parts[2]
    rest = ".".join(parts[3:])
    table = {
        "layer.0.layer_norm.weight": "norm1.weight",
        "layer.0.SelfAttention.q.weight": "attn.q.weight",
        "layer.0.SelfAttention.k.weight": "attn.k.weight",
        "layer.0.SelfAttention.v.weight": "attn.v.weight",
        "layer.0.SelfAttention.o.weight": "attn.o.weight",
        "layer.0.SelfAttention.relative_attention_bias.weight": "pos_embedding.embedding.weight",
        "layer.1.layer_norm.weight": "norm2.weight",
        # Wan's T5FeedForward: fc2(fc1(x) * gate(x)), gate = Sequential(Linear, GELU-tanh):
        # the GELU'd branch is transformers' wi_0.
        "layer.1.DenseReluDense.wi_0.weight": "ffn.gate.0.weight",
        "layer.1.DenseReluDense.wi_1.weight": "ffn.fc1.weight",
        "layer.1.DenseReluDense.wo.weight": "ffn.fc2.weight",
    }
    return f"blocks.{n}.{table[rest]}"


def _randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            g = generator(SEED + 17 * i)
            noise = torch.randn(p.shape, generator=g)
            if "layer_norm" in name:
                p.copy_(1 + 0.1 * noise)
            elif "relative_attention_bias" in name:
                p.copy_(0.5 * noise)
            elif "shared" in name or "embed_tokens" in name:
                p.copy_(noise)
            else:
                p.copy_(noise * (1.0 / math.sqrt(p.shape[1])))


def _wan_bucket(rel_pos: torch.Tensor, num_buckets: int, max_dist: int) -> torch.Tensor:
    """Wan t5.py T5RelativeEmbedding._relative_position_bucket (bidirectional)."""
    num_buckets //= 2
    buckets = (rel_pos > 0).long() * num_buckets
    rel_pos = torch.abs(rel_pos)
    max_exact = num_buckets // 2
    large = max_exact + (
        torch.log(rel_pos.float() / max_exact) / math.log(max_dist / max_exact) * (num_buckets - max_exact)
    ).long()
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return buckets + torch.where(rel_pos < max_exact, rel_pos, large)


def _wan_forward(sd: dict, ids: torch.Tensor, mask: torch.Tensor, cfg: dict) -> torch.Tensor:
    """Plain-torch forward following Wan's t5.py T5Encoder on the Wan-named weights (a cross-check
    that the key mapping and the gate/fc1 assignment are right)."""

    def norm(x, w):
        x = x * torch.rsqrt(x.float().pow(2).mean(dim=-1, keepdim=True) + cfg["layer_norm_epsilon"])
        return w * x

    def gelu(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    b, s = ids.shape
    n, c = cfg["num_heads"], cfg["d_kv"]
    x = sd["token_embedding.weight"][ids]
    pos = torch.arange(s)
    rel_pos = pos.unsqueeze(0) - pos.unsqueeze(1)  # [q, k] = k - q
    buckets = _wan_bucket(rel_pos, cfg["relative_attention_num_buckets"], cfg["relative_attention_max_distance"])
    for i in range(cfg["num_layers"]):
        p = f"blocks.{i}."
        bias = sd[p + "pos_embedding.embedding.weight"][buckets].permute(2, 0, 1).unsqueeze(0)
        bias = bias.repeat(b, 1, 1, 1).clone()
        bias.masked_fill_(mask.view(b, 1, 1, -1) == 0, torch.finfo(x.dtype).min)
        h = norm(x, sd[p + "norm1.weight"])
        q = (h @ sd[p + "attn.q.weight"].T).view(b, s, n, c)
        k = (h @ sd[p + "attn.k.weight"].T).view(b, s, n, c)
        v = (h @ sd[p + "attn.v.weight"].T).view(b, s, n, c)
        attn = torch.einsum("binc,bjnc->bnij", q, k) + bias
        attn = torch.softmax(attn.float(), dim=-1)
        o = torch.einsum("bnij,bjnc->binc", attn, v).reshape(b, s, n * c)
        x = x + o @ sd[p + "attn.o.weight"].T
        h = norm(x, sd[p + "norm2.weight"])
        f = (h @ sd[p + "ffn.fc1.weight"].T) * gelu(h @ sd[p + "ffn.gate.0.weight"].T)
        x = x + f @ sd[p + "ffn.fc2.weight"].T
    return norm(x, sd["norm.weight"])


def _umt5(versions: dict) -> list[str]:
    import transformers
    from transformers import UMT5Config, UMT5EncoderModel

    reset_dir(UMT5_DIR)
    config = UMT5Config(**CONFIG)
    model = UMT5EncoderModel(config).eval()
    _randomize(model)

    # A padded batch: sample 0 fills all 40 tokens, sample 1 has 27 real tokens then padding (id 0).
    g = generator(SEED + 1)
    ids = torch.randint(2, CONFIG["vocab_size"], (2, SEQ), generator=g)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    ids[1, 27:] = 0
    mask[1, 27:] = 0
    ids[:, -1] = torch.where(mask[:, -1] > 0, torch.tensor(1), ids[:, -1])  # EOS where the row is full
    ids[1, 26] = 1

    taps: dict[str, torch.Tensor] = {}
    hooks = [
        model.encoder.embed_tokens.register_forward_hook(lambda m, i, o: taps.__setitem__("tap.embed", o.detach().clone())),
        model.encoder.block[0].register_forward_hook(
            lambda m, i, o: taps.__setitem__("tap.block0", (o[0] if isinstance(o, tuple) else o).detach().clone())),
    ]
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    for h in hooks:
        h.remove()

    # Wan-style prompt embedding, exactly as diffusers WanPipeline._get_t5_prompt_embeds: run on the
    # 512-padded ids with the mask, cut each row at its true length, pad back with zeros.
    g = generator(SEED + 2)
    true_len = 23
    p_ids = torch.zeros(1, PROMPT_LEN, dtype=torch.long)
    p_ids[0, :true_len] = torch.randint(2, CONFIG["vocab_size"], (true_len,), generator=g)
    p_ids[0, true_len - 1] = 1
    p_mask = torch.zeros(1, PROMPT_LEN, dtype=torch.long)
    p_mask[0, :true_len] = 1
    with torch.no_grad():
        embeds = model(p_ids, p_mask).last_hidden_state
    seq_lens = p_mask.gt(0).sum(dim=1).long()
    embeds = [u[:v] for u, v in zip(embeds, seq_lens)]
    prompt = torch.stack([torch.cat([u, u.new_zeros(PROMPT_LEN - u.size(0), u.size(1))]) for u in embeds], dim=0)

    # A long unpadded sequence: offsets past max_distance (128) reach the clamped last buckets.
    g = generator(SEED + 3)
    long_ids = torch.randint(2, CONFIG["vocab_size"], (1, 300), generator=g)
    with torch.no_grad():
        long_out = model(input_ids=long_ids).last_hidden_state

    # The bucket table for every relative position a 512-token prompt can produce, from transformers.
    attn0 = model.encoder.block[0].layer[0].SelfAttention
    rel_pos = torch.arange(-(PROMPT_LEN - 1), PROMPT_LEN, dtype=torch.long)
    buckets = attn0._relative_position_bucket(rel_pos)
    wan_buckets = _wan_bucket(rel_pos, CONFIG["relative_attention_num_buckets"], CONFIG["relative_attention_max_distance"])
    assert torch.equal(buckets, wan_buckets), "transformers and Wan bucket functions disagree"

    # Weights: transformers layout and Wan layout (.pth via torch.save).
    hf_dir = UMT5_DIR / "transformers"
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    sd = model.state_dict()
    wan_sd = collections.OrderedDict()
    for k in sorted(sd):
        if k == "encoder.embed_tokens.weight" and "shared.weight" in sd:
            continue  # tied to `shared`
        wan_sd[_hf_to_wan(k)] = sd[k].detach().clone()
    (UMT5_DIR / "wan").mkdir(parents=True, exist_ok=True)
    torch.save(wan_sd, str(UMT5_DIR / "wan" / "models_t5_umt5.pth"))

    # Cross-check the Wan key mapping with an independent forward following Wan's t5.py.
    with torch.no_grad():
        wan_out = _wan_forward(wan_sd, ids, mask, CONFIG)
    diff = (wan_out - out).abs().max().item()
    assert diff <= 1e-5 * max(1.0, out.abs().max().item()), f"Wan-semantics forward differs by {diff}"

    tensors = {
        "input_ids": ids,
        "attention_mask": mask,
        "tap.embed": taps["tap.embed"],
        "tap.block0": taps["tap.block0"],
        "last_hidden_state": out,
        "prompt.input_ids": p_ids,
        "prompt.attention_mask": p_mask,
        "prompt.embeds": prompt,
        "long.input_ids": long_ids,
        "long.last_hidden_state": long_out,
        "bucket.relative_position": rel_pos,
        "bucket.index": buckets.long(),
    }
    save_tensors(UMT5_DIR / "io.safetensors", tensors)
    write_json(UMT5_DIR / "manifest.json", {
        "versions": {**versions, "transformers": transformers.__version__},
        "config": CONFIG,
        "wan_vs_transformers_max_abs": diff,
        "tensors": {
            "input_ids": "[2, 40] int64; row 1 is padded (id 0) after 27 tokens",
            "attention_mask": "[2, 40] int64",
            "tap.embed": "token embedding output [2, 40, 32]",
            "tap.block0": "hidden states after encoder block 0 [2, 40, 32]",
            "last_hidden_state": "UMT5EncoderModel output (after final_layer_norm) [2, 40, 32]",
            "prompt.*": "a 23-token prompt padded to 512 and its embedding as diffusers WanPipeline._get_t5_prompt_embeds makes it",
            "long.*": "300 unpadded tokens (offsets beyond max_distance) and the encoder output [1, 300, 32]",
            "bucket.*": "transformers' bidirectional bucket (32 buckets, max distance 128) for relative positions -511..511",
        },
    })
    size = sum(p.stat().st_size for p in UMT5_DIR.rglob("*") if p.is_file())
    return [f"umt5: {rel(UMT5_DIR)} ({size / 1e3:.0f} kB), Wan-forward max diff {diff:.2e}"]


# ----------------------------------------------------------------------------------------------- .pth


class _Storage:
    """Stands for a torch storage in a hand-built pickle: written as torch.save writes it (BINPERSID
    of ('storage', <StorageClass>, key, 'cpu', numel))."""

    def __init__(self, cls, key: str, numel: int):
        self.cls, self.key, self.numel = cls, key, numel


class _Tensor:
    def __init__(self, storage: _Storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2,
                (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict()))


class _TorchLikePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", obj.cls, obj.key, "cpu", obj.numel)
        return None


def _torch_like_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _TorchLikePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _write_archive(path, pkl: bytes, storages: dict[str, bytes], prefix: str = "archive",
                   compress_pickle: bool = False) -> None:
    """A torch-style zip: data.pkl, byteorder, data/<key>, version (STORED unless asked)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo(f"{prefix}/data.pkl"), pkl,
                   compress_type=zipfile.ZIP_DEFLATED if compress_pickle else zipfile.ZIP_STORED)
        z.writestr(zipfile.ZipInfo(f"{prefix}/byteorder"), b"little")
        for key, data in storages.items():
            z.writestr(zipfile.ZipInfo(f"{prefix}/data/{key}"), data)
        z.writestr(zipfile.ZipInfo(f"{prefix}/version"), b"3\n")


class _Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def _zip64_archive(records: list[tuple[str, bytes]]) -> bytes:
    """A STORED zip where every size and offset is moved into zip64 extra fields (32-bit fields
    0xFFFFFFFF), as torch's writer does past 4 GiB, with data padded to 64-byte offsets like torch."""
    out = bytearray()
    central = bytearray()
    for name, data in records:
        raw = name.encode()
        offset = len(out)
        z64 = struct.pack("<HHQQ", 1, 16, len(data), len(data))
        pad = (-(offset + 30 + len(raw) + len(z64) + 4)) % 64
        extra = z64 + struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding record, as torch writes
        crc = zipfile.crc32(data)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(raw), len(extra))
        out += raw + extra + data
        cz64 = struct.pack("<HHQQQ", 1, 24, len(data), len(data), offset)
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 0, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                               len(raw), len(cz64), 0, 0, 0, 0, 0xFFFFFFFF)
        central += raw + cz64
    cd_offset = len(out)
    out += central
    eocd64 = len(out)
    n = len(records)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(central), cd_offset)
    out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def _pth(versions: dict) -> list[str]:
    reset_dir(PTH_DIR)
    g = generator(SEED + 100)

    # ---- good files: what real checkpoints contain.
    base = torch.randn(24, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["bf16"] = torch.randn(2, 5, generator=g).to(torch.bfloat16)
    sd["f16"] = torch.randn(7, generator=g).to(torch.float16)
    sd["f8e4m3"] = torch.randn(2, 3, generator=g).to(torch.float8_e4m3fn)
    sd["f8e5m2"] = torch.randn(2, 3, generator=g).to(torch.float8_e5m2)
    sd["i64"] = torch.arange(-3, 5, dtype=torch.int64).view(2, 4)
    sd["i32"] = torch.arange(6, dtype=torch.int32)
    sd["i8"] = torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(2.5)
    sd["transposed"] = torch.randn(4, 5, generator=g).t()  # non-contiguous view, strides (1, 5)
    sd["shared.a"] = base[2:14].view(3, 4)  # two views of one storage, with offsets
    sd["shared.b"] = base[5:23:3]  # strided, offset 5
    sd["param"] = torch.nn.Parameter(torch.randn(3, generator=g))
    sd["empty"] = torch.zeros(0, 4)
    nested = {"inner": {"deep": torch.randn(2, 2, generator=g)}, "leaf": torch.randn(2, generator=g)}
    good = {"state_dict": sd, "nested": nested}
    torch.save({"state_dict": {**sd, "nested": nested}}, str(PTH_DIR / "good_state_dict.pth"))
    twin = {k: v.detach().clone().contiguous() for k, v in sd.items()}
    twin["nested.inner.deep"] = nested["inner"]["deep"].clone()
    twin["nested.leaf"] = nested["leaf"].clone()
    save_tensors(PTH_DIR / "good_state_dict.expected.safetensors", twin)
    del good
    # A plain OrderedDict state dict (no wrapper), as Wan writes its encoders, with a {"model": ...} twin.
    plain = collections.OrderedDict((k, sd[k]) for k in ("f32", "bf16", "transposed"))
    torch.save(plain, str(PTH_DIR / "good_plain.pth"))
    torch.save({"model": plain}, str(PTH_DIR / "good_model_wrapper.pth"))
    # Protocol 4 (FRAME, MEMOIZE, SHORT_BINUNICODE, STACK_GLOBAL), as `pickle_protocol=4` writes it.
    torch.save(plain, str(PTH_DIR / "good_protocol4.pth"), pickle_protocol=4)
    # The same archive re-packed with zip64 extra fields everywhere (what a >4 GiB torch file needs).
    with zipfile.ZipFile(PTH_DIR / "good_plain.pth") as z:
        records = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    packed = _zip64_archive(records)
    (PTH_DIR / "good_zip64.pth").write_bytes(packed)
    with zipfile.ZipFile(io.BytesIO(packed)) as z:  # Python's reader must agree it is a valid zip
        assert z.testzip() is None and [(i.filename, z.read(i.filename)) for i in z.infolist()] == records
    reloaded = torch.load(io.BytesIO(packed), weights_only=True)
    assert all(torch.equal(reloaded[k], plain[k]) for k in plain)

    # ---- hostile / corrupt files. Each entry: file → what the reader must report (a substring).
    bad: dict[str, str] = {}
    marker = "/tmp/kinema_pth_pwned"

    def evil(name, obj, expect):
        _write_archive(PTH_DIR / name, pickle.dumps(obj, protocol=2), {})
        bad[name] = expect

    evil("bad_os_system.pth", {"x": _Evil(os.system, f"touch {marker}")}, "posix.system")
    # Protocol 2 writes Python 3's builtins under their Python 2 module name.
    evil("bad_builtins_eval.pth", {"x": _Evil(eval, f"open('{marker}','w')")}, "__builtin__.eval")
    evil("bad_builtins_exec.pth", _Evil(exec, f"open('{marker}','w')"), "__builtin__.exec")

    def raw(name, pkl: bytes, expect, storages=None):
        _write_archive(PTH_DIR / name, pkl, storages or {})
        bad[name] = expect

    raw("bad_subprocess_popen.pth", b"\x80\x02csubprocess\nPopen\n(X\x05\x00\x00\x00touch\x85R.", "subprocess.Popen")
    raw("bad_inst.pth", b"(S'touch'\nios\nsystem\n.", "INST")
    raw("bad_stack_global.pth",
        b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x94\x8c\x04eval\x94\x93.", "builtins.eval")
    raw("bad_deep_nesting.pth", b"\x80\x02" + b"(" * 20_000 + b".", "depth")
    raw("bad_deep_lists.pth", b"\x80\x02" + b"]" * 20_000 + b".", "depth")
    raw("bad_huge_memo.pth", b"\x80\x02}r\xff\xff\xff\x7f.", "memo")
    raw("bad_memo_get.pth", b"\x80\x02j\x00\x00\x01\x00.", "memo")
    raw("bad_huge_string.pth", b"\x80\x02X\xff\xff\xff\x7fabc.", "string")
    raw("bad_unknown_opcode.pth", b"\x80\x02\xff.", "opcode")
    raw("bad_no_stop.pth", b"\x80\x02}", "end")
    raw("bad_empty_pickle.pth", b"", "end")
    raw("bad_not_a_dict.pth", b"\x80\x02K\x05.", "dict")

    # Storage/tensor inconsistencies with hand-built torch-like pickles.
    data12 = struct.pack("<12f", *range(12))

    def tensor_file(name, storage_numel, offset, size, stride, data, expect, cls=torch.FloatStorage):
        st = _Storage(cls, "0", storage_numel)
        raw(name, _torch_like_pickle({"t": _Tensor(st, offset, size, stride)}), expect, {"0": data})

    tensor_file("bad_storage_short.pth", 12, 0, (3, 4), (4, 1), data12[:40], "storage")
    tensor_file("bad_offset_beyond.pth", 12, 10, (3, 4), (4, 1), data12, "storage")
    tensor_file("bad_negative_stride.pth", 12, 0, (3, 4), (-4, 1), data12, "stride")
    tensor_file("bad_huge_shape.pth", 12, 0, (2**40, 2**40), (1, 1), data12, "storage")
    tensor_file("bad_missing_storage.pth", 12, 0, (3, 4), (4, 1), b"", "storage")
    # Well-formed archive without the data/0 record at all.
    st = _Storage(torch.FloatStorage, "7", 12)
    raw("bad_storage_key_absent.pth", _torch_like_pickle({"t": _Tensor(st, 0, (3,), (1,))}), "data/7", {"0": data12})
    st = _Storage(torch.FloatStorage, "0", 12)
    raw("bad_rank_mismatch.pth", _torch_like_pickle({"t": _Tensor(st, 0, (3, 4), (1,))}), "stride", {"0": data12})

    # Zip-level damage on a good file.
    good_bytes = (PTH_DIR / "good_plain.pth").read_bytes()
    eocd = good_bytes.rfind(b"PK\x05\x06")
    (PTH_DIR / "bad_truncated_central_directory.pth").write_bytes(good_bytes[: eocd - 30])
    bad["bad_truncated_central_directory.pth"] = "zip"
    (PTH_DIR / "bad_truncated_half.pth").write_bytes(good_bytes[: len(good_bytes) // 2])
    bad["bad_truncated_half.pth"] = "zip"
    # Central directory says the first entry's local header lies far beyond the file.
    cd = bytearray(good_bytes)
    first = cd.find(b"PK\x01\x02")
    cd[first + 42: first + 46] = struct.pack("<I", 0x7FFF0000)
    (PTH_DIR / "bad_local_offset.pth").write_bytes(bytes(cd))
    bad["bad_local_offset.pth"] = "local header"
    # Entry size larger than the file.
    cd = bytearray(good_bytes)
    cd[first + 20: first + 24] = struct.pack("<I", 0x7FFF0000)
    cd[first + 24: first + 28] = struct.pack("<I", 0x7FFF0000)
    (PTH_DIR / "bad_entry_size.pth").write_bytes(bytes(cd))
    bad["bad_entry_size.pth"] = "zip"
    # The pickle DEFLATE-compressed (torch never writes this).
    _write_archive(PTH_DIR / "bad_deflate.pth", pickle.dumps({}, protocol=2), {}, compress_pickle=True)
    bad["bad_deflate.pth"] = "compress"
    (PTH_DIR / "bad_not_zip.pth").write_bytes(b"\x80\x02}q\x00." + b"\x00" * 64)
    bad["bad_not_zip.pth"] = "zip"
    # Big-endian archives are refused (tensors would need byte swapping).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(zipfile.ZipInfo("archive/data.pkl"), pickle.dumps({}, protocol=2))
        z.writestr(zipfile.ZipInfo("archive/byteorder"), b"big")
        z.writestr(zipfile.ZipInfo("archive/version"), b"3\n")
    (PTH_DIR / "bad_big_endian.pth").write_bytes(buf.getvalue())
    bad["bad_big_endian.pth"] = "big"

    # A well-formed checkpoint of a dtype Kinema has no DType for.
    torch.save({"x": torch.zeros(2, dtype=torch.float64)}, str(PTH_DIR / "bad_float64.pth"))
    bad["bad_float64.pth"] = "DoubleStorage"

    assert not os.path.exists(marker), "a hostile pickle ran while being written?"
    write_json(PTH_DIR / "pth.json", {
        "versions": versions,
        "good": {
            "good_state_dict.pth": "{'state_dict': {...every dtype, transposed view, shared storage, Parameter, nested}} → good_state_dict.expected.safetensors",
            "good_plain.pth": "OrderedDict(f32, bf16, transposed) as a bare state dict",
            "good_model_wrapper.pth": "{'model': the same OrderedDict}",
            "good_protocol4.pth": "good_plain.pth's dict saved with pickle_protocol=4",
            "good_zip64.pth": "good_plain.pth re-packed with zip64 extra fields for every size and offset",
        },
        "bad": bad,
        "marker": marker,
    })
    size = sum(p.stat().st_size for p in PTH_DIR.rglob("*") if p.is_file())
    return [f"pth: {rel(PTH_DIR)} ({size / 1e3:.0f} kB), {len(bad)} hostile files"]


def run(versions: dict) -> list[str]:
    t0 = time.time()
    lines = _umt5(versions) + _pth(versions)
    lines.append(f"umt5/pth goldens took {time.time() - t0:.1f}s")
    return lines
