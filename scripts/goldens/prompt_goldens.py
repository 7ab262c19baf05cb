"""Prompt clean-up goldens (`Tests/Fixtures/prompts/`): diffusers' WanPipeline `prompt_clean` (html.unescape
twice, whitespace runs collapsed, ends stripped; ftfy is not installed in the reference environment, so it
is skipped there as in Kinema) and a single `html.unescape`, on

- every HTML5 named reference, with and without its semicolon, inside text;
- numeric references: decimal and hex, huge, zero, surrogates, the cp1252 block, invalid code points,
  missing digits or semicolons;
- semicolon-less names followed by letters (longest-prefix rule), 32-character limit, excluded characters,
  double-escaped text (`&amp;lt;`), whitespace variety, CJK and emoji.
"""
from __future__ import annotations

import html
import html.entities
import json
import random

from _common import FIXTURES, reset_dir

OUT_DIR = FIXTURES / "prompts"


def cases(rng: random.Random) -> list[str]:
    texts = []
    for name in sorted(html.entities.html5):
        texts.append(f"a &{name} b")
        if name.endswith(";"):
            texts.append(f"x&{name[:-1]}y z")
    numerics = ["0", "9", "38", "60", "128", "129", "141", "150", "159", "160", "55296", "57343", "65534",
                "1114111", "1114112", "99999999999999999999", "11", "13", "127", "65039", "64976"]
    for n in numerics:
        texts += [f"&#{n};", f"&#{n}x", f"&#x{int(n):x};", f"&#X{int(n):X}q"]
    texts += ["&#;", "&#x;", "&#xg;", "&", "&&", "& amp;", "&amp", "&ampere", "&amplifier;", "&notit;", "&notin",
              "&copyright &copy2023 &COPY", "&ltfoo&gtbar", "&amp;lt;b&amp;gt;", "&amp;amp;amp;",
              "&" + "a" * 40 + ";", "&abcdefghijklmnopqrstuvwxyzabcdefgh;", "&lt\ttab", "&lt\nnl", "&Tab;&NewLine;x",
              "  a  red\t\tcircle \n\n moving\u3000right  ", "\u00a0nbsp\u2003em\u2028ls\u001c", "日本語 &hearts; 🎬 &#128512;",
              "rock &amp; roll &lt;3", "&fjlig;&ThickSpace;&nGt;", "&#x1F600&#x1F601;", "&#0000038;", "&#x000000041;"]
    names = sorted(html.entities.html5)
    pieces = ["a", " ", "&", ";", "#", "x", "1", "lt", "amp", "\t", "é", "日"]
    for _ in range(300):
        parts = [rng.choice(pieces) if rng.random() < 0.7 else "&" + rng.choice(names) for _ in range(rng.randint(1, 12))]
        texts.append("".join(parts))
    return texts


def run(versions: dict) -> list[str]:
    from diffusers.pipelines.wan.pipeline_wan import prompt_clean

    reset_dir(OUT_DIR)
    rng = random.Random(20261127)
    rows = [{"text": t, "unescaped": html.unescape(t), "cleaned": prompt_clean(t)} for t in cases(rng)]
    # Compact (one case per line): the file holds ~4,800 cases.
    body = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows)
    (OUT_DIR / "prompt_clean.json").write_text(
        '{"versions":' + json.dumps(versions, sort_keys=True) + ',"cases":[\n' + body + "\n]}\n", encoding="utf-8")
    size = (OUT_DIR / "prompt_clean.json").stat().st_size
    return [f"prompts: {len(rows)} prompt_clean cases, {size} bytes in {OUT_DIR}"]
