"""Trains the demo model's tokenizer: a SentencePiece-style Unigram model in `tokenizers`' tokenizer.json
format, laid out like UMT5's (<pad> = 0, </s> = 1, <unk> = 2, Metaspace "▁" word boundaries, "$A </s>"
post-processing), on every prompt the demo world produces plus the words of common negative prompts.

    python tokenizer.py OUT_DIR        # writes OUT_DIR/tokenizer.json and a corpus id check
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

import world

SPECIALS = ["<pad>", "</s>", "<unk>"]
# Words users commonly put in negative prompts; they get their own pieces so "" is not the only thing
# the model has seen tokenized cleanly.
NEGATIVE_WORDS = "static blurry low quality worst quality distorted ugly noise artifacts still frame text watermark"


def corpus() -> list[str]:
    return world.corpus_words() + [NEGATIVE_WORDS, "0 1 2 3 4 5 6 7 8 9 , . ! ? - ' \""]


def build() -> Tokenizer:
    """A Unigram model fitted to the corpus by counting: every corpus word is one piece "▁word" scored by its
    log frequency (the maximum-likelihood unigram LM when each word is one piece), plus every single
    character of printable ASCII (and "▁" alone) at a much lower score, so unseen words still split into
    known pieces instead of <unk>. (`tokenizers`' and sentencepiece's EM trainers both collapse this tiny,
    repetitive corpus to mostly single characters, which makes the text encoder's job harder.)"""
    counts: dict[str, int] = {}
    for line in corpus():
        for word in line.split():
            counts["▁" + word] = counts.get("▁" + word, 0) + 1
    total = sum(counts.values())
    pieces = [(p, math.log(c / total)) for p, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    floor = min(score for _, score in pieces) - 5.0
    known = {p for p, _ in pieces}
    singles = ["▁"] + [chr(c) for c in range(33, 127)] + ["▁" + chr(c) for c in range(33, 127)]
    pieces += [(p, floor - (1.0 if p.startswith("▁") else 0.0)) for p in singles if p not in known]
    vocab = [(s, 0.0) for s in SPECIALS] + pieces
    tokenizer = Tokenizer(Unigram(vocab, unk_id=2, byte_fallback=False))
    # NFKC + whitespace split + Metaspace: normalizer / pre-tokenizer types that Kinema's tokenizer.json
    # reader implements (Sources/KinemaIO/Tokenizer/TextPipeline.swift).
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")])
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer.add_special_tokens(SPECIALS)
    for index, name in enumerate(SPECIALS):
        assert tokenizer.token_to_id(name) == index, (name, tokenizer.token_to_id(name))
    return tokenizer


def write(out_dir: Path) -> Tokenizer:
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build()
    tokenizer.save(str(out_dir / "tokenizer.json"))
    return tokenizer


def check_cases() -> list[str]:
    """Strings whose ids Kinema's tokenizer must reproduce: canonical prompts, paraphrases, odd input."""
    import random

    rng = random.Random(7)
    cases = ["", "a red circle moving right", "A Red Circle moving RIGHT!", "  a  blue square\tmoving up  ",
             "a purple hexagon moving sideways", "ein roter Kreis", "東京の猫", NEGATIVE_WORDS]
    specs = [world.sample_spec(rng) for _ in range(60)]
    cases += [world.prompt_for(s, rng) for s in specs]
    return cases


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/demo-tokenizer")
    tok = write(out)
    cases = check_cases()
    ids = [tok.encode(c).ids for c in cases]
    (out / "tokenizer_cases.json").write_text(json.dumps({"cases": cases, "ids": ids}, ensure_ascii=False, indent=0))
    print("vocab", tok.get_vocab_size(), "| a red circle moving right ->", tok.encode("a red circle moving right").tokens)
