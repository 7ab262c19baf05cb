"""UMT5-style tokenizer fixtures (Tests/Fixtures/tokenizer/).

Trains tiny SentencePiece Unigram models on a synthetic multilingual corpus
this script writes itself, converts them to HF `tokenizer.json` the way
transformers does for T5/UMT5, and records what the reference libraries emit
for ~230 awkward strings:

  * `tokenizers` (through transformers' tokenizer call, exactly as WanPipeline
    calls it: padding="max_length", truncation=True, add_special_tokens=True)
  * `sentencepiece` (SentencePieceProcessor.encode on spiece.model)

Both are recorded per string; they may legitimately differ (the T5 conversion
drops byte fallback, splits on Unicode whitespace, normalizes per grapheme).

Needs `sentencepiece`, `tokenizers`, `transformers` and `protobuf` (transformers'
SentencePiece converter parses the model proto with it).
"""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

from _common import FIXTURES, rel, reset_dir

OUT = FIXTURES / "tokenizer"

ENGLISH = (
    "the quick brown fox jumps over a lazy dog while the camera slowly pans across a misty "
    "mountain valley at sunrise with birds flying and a river flowing gently between green trees "
    "cinematic lighting high quality video of a cat playing piano in a cozy room"
).split()
ACCENTED = "café naïve résumé über straße façade garçon élève où déjà señor niño ação coração żółw łódź čeština"
ACCENTED = ACCENTED.split()
CJK = ["日本語", "テキスト", "東京", "猫", "映画", "中文", "文本", "视频", "高质量", "한국어", "고양이", "の", "は", "です", "。", "、"]
EMOJI = ["😀", "👍", "👍🏽", "🎬", "🐱", "❤️", "🇯🇵", "👨‍👩‍👧"]
FULLWIDTH = ["ＡＢＣ", "ｆｕｌｌ", "１２３", "！", "？", "（", "）", "　"]
PUNCT = list(",.;:!?()[]{}'\"-_/@#%&*+=<>")


def corpus(seed: int = 0, lines: int = 3000) -> list[str]:
    rng = random.Random(seed)
    pools = [ENGLISH] * 5 + [ACCENTED, CJK, EMOJI, FULLWIDTH]
    out = []
    for _ in range(lines):
        words = []
        for _ in range(rng.randint(3, 14)):
            r = rng.random()
            if r < 0.08:
                words.append(str(rng.randint(0, 10**rng.randint(1, 6))))
            elif r < 0.16:
                words.append(rng.choice(PUNCT))
            else:
                words.append(rng.choice(rng.choice(pools)))
        out.append(" ".join(words))
    return out


# A small custom normalization rule set (hex code points, source TAB target), compiled by sentencepiece
# into a small precompiled charsmap: multi-code-point keys (e + combining acute), one-to-many targets
# (ligature), keys that are prefixes of longer keys (A / A + ring), whitespace variants.
CUSTOM_RULES = (
    [f"{0xFF21 + k:X}\t{0x41 + k:X}" for k in range(26)]
    + [f"{0xFF41 + k:X}\t{0x61 + k:X}" for k in range(26)]
    + [f"{0xFF10 + k:X}\t{0x30 + k:X}" for k in range(10)]
    + ["3000\t20", "A0\t20", "9\t20", "2009\t20", "FB01\t66 69", "2460\t31", "2461\t32", "2462\t33",
       "65 301\tE9", "41 30A\tC5", "FF71\t30A2", "FF76\t30AB", "2122\t54 4D"]
)


def _train(buf, lines, vocab, rules, byte_fallback, user_defined) -> None:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        model_type="unigram",
        vocab_size=vocab,
        **rules,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        byte_fallback=byte_fallback,
        character_coverage=0.9995,
        num_threads=1,
        seed_sentencepiece_size=100000,
        minloglevel=2,
        user_defined_symbols=user_defined or [],
    )


def train(lines: list[str], vocab: int, rule: str, byte_fallback: bool, user_defined: list[str] | None = None) -> bytes:
    import tempfile

    buf = io.BytesIO()
    if rule == "custom":
        # sentencepiece stores the rule file's name in the model: use a fixed relative name, from a
        # scratch directory, so the file is byte-reproducible.
        with tempfile.TemporaryDirectory() as scratch:
            cwd = os.getcwd()
            os.chdir(scratch)
            try:
                Path("custom_rules.tsv").write_text("\n".join(CUSTOM_RULES) + "\n", encoding="utf-8")
                _train(buf, lines, vocab, {"normalization_rule_tsv": "custom_rules.tsv"}, byte_fallback, user_defined)
            finally:
                os.chdir(cwd)
    else:
        _train(buf, lines, vocab, {"normalization_rule_name": rule}, byte_fallback, user_defined)
    return buf.getvalue()


def cases(rng_seed: int = 1) -> list[str]:
    rng = random.Random(rng_seed)
    fixed = [
        "",
        " ",
        "   ",
        "\t",
        "\n",
        "a",
        "Hello world",
        "Hello  world",
        "  leading spaces",
        "trailing spaces   ",
        "tabs\tand\nnewlines\r\nhere",
        "nbsp\u00a0between\u00a0words",
        "thin\u2009space and ideographic\u3000space",
        "zero\u200bwidth space",
        "control\u0001chars\u0007and\u007fdel",
        "A cat playing piano.",
        "café naïve résumé",
        "cafe\u0301 (combining acute)",
        "A\u030angstr\u00f6m \uff21\u030a \uff21\u030a\u0301 e\u0301\u0301",
        "Ｆｕｌｌ ｗｉｄｔｈ ＡＢＣ １２３！",
        "ｶﾀｶﾅ half-width katakana",
        "日本語のテキストです。",
        "中文文本视频高质量",
        "한국어 고양이",
        "emoji 😀👍🏽",
        "family 👨‍👩‍👧 zwj",
        "flag 🇯🇵 and heart ❤️",
        "digits 0123456789 and ①②③",
        "ﬁ ligature and ™ ㎏ ½",
        "</s>",
        "<pad>",
        "<unk>",
        "a</s>b",
        "text </s> more <pad> end",
        "<pad><pad></s>",
        "</s </s> s>",
        "a <mask> b",
        "x<sep>y \u2605\u2605 z <sep>",
        "a<mask>b  <mask>  end",
        "concatenate cat cat's cat_x xcat cat1 cat",
        "dog dogma hotdog  dog",
        "é cat日本 cat. the cat",
        "<extra_id_0> sentinel <extra_id_2>",
        "<0x41> literal byte piece",
        "Привет мир",
        "مرحبا بالعالم",
        "שלום",
        "Ελληνικά",
        "ไทย",
        "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math 𝟙𝟚𝟛",
        "\u2581 literal metaspace \u2581\u2581",
        "x" * 40,
        "Mixed: the 猫 said «bonjour» — 😀!",
        "   \t  ",
        "end with newline\n",
        "\ufeffBOM at start",
        "soft\u00adhyphen",
        "line\u2028separator",
    ]
    pools = [ENGLISH, ACCENTED, CJK, EMOJI, FULLWIDTH, PUNCT, ["Привет", "мир", "ñ", "Ω", "ß", "İ", "ǅ"]]
    seps = [" ", " ", " ", "  ", "\t", "\u00a0", "", "\n", "\u3000"]
    out = list(fixed)
    while len(out) < 220:
        n = rng.randint(1, 12)
        s = ""
        for _ in range(n):
            s += rng.choice(rng.choice(pools)) + rng.choice(seps)
        if rng.random() < 0.2:
            s = rng.choice(seps) + s
        if rng.random() < 0.1:
            s += rng.choice(["</s>", "<pad>", "<unk>"])
        out.append(s)
    # inputs longer than 512 tokens (truncation keeps </s> last)
    out.append(" ".join(rng.choice(ENGLISH) for _ in range(530)))
    out.append("".join(rng.choice(CJK) for _ in range(300)))
    out.append(" ".join(rng.choice(ACCENTED + EMOJI) for _ in range(560)))
    return out


def hf_tokenizer(folder: Path):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def record_hf(tok, texts: list[str]) -> dict:
    plain, t16, t512, dec = [], [], [], []
    for text in texts:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        plain.append(ids)
        enc = tok(text, padding="max_length", max_length=16, truncation=True, add_special_tokens=True, return_attention_mask=True)
        t16.append([enc["input_ids"], enc["attention_mask"]])
        enc = tok(text, padding="max_length", max_length=512, truncation=True, add_special_tokens=True, return_attention_mask=True)
        kept = sum(enc["attention_mask"])
        # stored without the padding: check that padding is exactly pad ids with mask 0 on the right
        assert enc["input_ids"][kept:] == [tok.pad_token_id] * (512 - kept)
        assert enc["attention_mask"] == [1] * kept + [0] * (512 - kept)
        # null when identical to the unpadded ids (all but the > 512-token inputs): keeps cases.json small
        t512.append(None if enc["input_ids"][:kept] == ids else enc["input_ids"][:kept])
        dec.append(tok.decode(ids, skip_special_tokens=True))
    return {"ids": plain, "pad16": t16, "pad512": t512, "decode": dec}


def record_spm(model: bytes, texts: list[str]) -> dict:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    ids = [sp.encode(t) for t in texts]
    return {"ids": ids, "decode": [sp.decode(i) for i in ids], "vocab_size": sp.get_piece_size()}


def convert_t5(folder: Path, extra_ids: int) -> None:
    """transformers' own conversion of spiece.model (T5Tokenizer, the class Wan/diffusers folders name)."""
    from transformers import T5Tokenizer

    tok = T5Tokenizer.from_pretrained(str(folder), extra_ids=extra_ids)
    tok.save_pretrained(str(folder))
    for junk in ("special_tokens_map.json",):
        p = folder / junk
        if p.exists():
            p.unlink()


def run(versions: dict) -> list[str]:
    import sentencepiece
    import tokenizers
    import transformers
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers

    reset_dir(OUT)
    lines = corpus()
    texts = cases()
    result = {
        "versions": dict(versions, sentencepiece=sentencepiece.__version__, tokenizers=tokenizers.__version__, transformers=transformers.__version__),
        "texts": texts,
        "models": {},
    }

    # bf: nmt_nfkc (precompiled charsmap), byte fallback on; spiece.model + transformers' T5 conversion
    bf = train(lines, 1000, "nmt_nfkc", True)
    (OUT / "bf").mkdir()
    (OUT / "bf" / "spiece.model").write_bytes(bf)
    convert_t5(OUT / "bf", 3)
    # plain: identity normalization (no charsmap), no byte fallback, two USER_DEFINED pieces
    plain = train(lines, 700, "identity", False, user_defined=["<sep>", "\u2605"])
    (OUT / "plain").mkdir()
    (OUT / "plain" / "spiece.model").write_bytes(plain)
    convert_t5(OUT / "plain", 2)
    # generic: a model with a small custom rule set (small charsmap) and byte fallback, converted with
    # transformers' model-agnostic SentencePiece conversion (keeps byte fallback; regex Replace
    # normalizers, Metaspace split=False, decoder Sequence)
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    custom = train(lines, 800, "custom", True)
    proto = import_protobuf().ModelProto()
    proto.ParseFromString(custom)
    vocab = [(p.piece, p.score) for p in proto.pieces]
    generic = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab)
    # control pieces as special added tokens, as transformers registers them when it loads the file
    generic.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<pad>", "</s>", "<unk>")])
    (OUT / "generic").mkdir()
    (OUT / "generic" / "spiece.model").write_bytes(custom)
    generic.save(str(OUT / "generic" / "tokenizer.json"), pretty=False)
    # first: the same generic conversion, non-legacy (Metaspace prepend_scheme "first"), of the plain model
    proto_plain = import_protobuf().ModelProto()
    proto_plain.ParseFromString(plain)
    first = SpmConverter.build_tokenizer_from_spm_proto(proto_plain, [(p.piece, p.score) for p in proto_plain.pieces], legacy=False)
    first.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in ("<pad>", "</s>", "<unk>")])
    (OUT / "first").mkdir()
    first.save(str(OUT / "first" / "tokenizer.json"), pretty=False)
    # legacy: the older T5 conversion layout (Strip right + Replace(" {2,}" -> "▁") + bare Metaspace)
    legacy = Tokenizer.from_file(str(OUT / "plain" / "tokenizer.json"))
    legacy.normalizer = normalizers.Sequence([normalizers.Strip(left=False, right=True), normalizers.Replace(Regex(" {2,}"), "\u2581")])
    legacy.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    # added-token options T5 files do not use but tokenizer.json allows: lstrip/rstrip, single_word, normalized
    legacy.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=True, special=True, normalized=False)])
    legacy.add_tokens([AddedToken("cat", single_word=True, normalized=False), AddedToken("dog", normalized=True)])
    (OUT / "legacy").mkdir()
    legacy.save(str(OUT / "legacy" / "tokenizer.json"), pretty=False)

    for name in ("bf", "plain", "generic", "first", "legacy"):
        entry = {"hf": record_hf(hf_tokenizer(OUT / name), texts)}
        model = {"bf": bf, "plain": plain, "generic": custom}.get(name)
        if model is not None:
            entry["spm"] = record_spm(model, texts)
        result["models"][name] = entry

    with open(OUT / "cases.json", "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        f.write("\n")

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    lines_out = [f"tokenizer: {len(texts)} strings x 5 tokenizer.json variants + 3 spiece.model -> {rel(OUT)} ({total / 1e6:.2f} MB)"]
    return lines_out
