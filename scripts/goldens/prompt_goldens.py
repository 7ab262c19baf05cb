"""Prompt clean-up goldens (`Tests/Fixtures/prompts/`).

`prompt_clean.json`: diffusers' WanPipeline `prompt_clean` WITHOUT ftfy (html.unescape twice, whitespace
runs collapsed, ends stripped; diffusers skips ftfy when it is not installed, as in the reference
environment; when it is importable it is switched off for this file) and a single `html.unescape`, on

- every HTML5 named reference, with and without its semicolon, inside text;
- numeric references: decimal and hex, huge, zero, surrogates, the cp1252 block, invalid code points,
  missing digits or semicolons;
- semicolon-less names followed by letters (longest-prefix rule), 32-character limit, excluded characters,
  double-escaped text (`&amp;lt;`), whitespace variety, CJK and emoji.

`ftfy_clean.json`: ftfy 6.3.1's `fix_text(t)` and the official Wan clean (wan/modules/tokenizers.py:
whitespace_clean(basic_clean(t)) = ftfy.fix_text, html.unescape twice, strip, whitespace runs collapsed;
checked equal to diffusers' `prompt_clean` with ftfy installed) on curly quotes, ligatures, fullwidth and
halfwidth forms, CJK, emoji, line breaks, C0/C1 controls, terminal escapes, surrogate pairs, NBSP, HTML in
ftfy's "auto" mode, upper-cased entity names, combining accents and random mixes. Cases that ftfy's
mojibake repair (fix_encoding and its sub-steps, not reproduced by Kinema) changes are left out: a case is
kept only when fix_text gives the same with those steps switched off. ftfy is not in the reference
environment; this family refuses to run without it:

    /opt/refenv/bin/pip install --target /tmp/ftfy-site ftfy==6.3.1
    PYTHONPATH=/tmp/ftfy-site /opt/refenv/bin/python scripts/goldens/make_goldens.py --only prompts
"""
from __future__ import annotations

import html
import html.entities
import json
import random
import re

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


FTFY_VERSION = "6.3.1"
# fix_text with the mojibake repair family off: what Kinema's TextFixer reproduces.
NO_MOJIBAKE_REPAIR = dict(fix_encoding=False, restore_byte_a0=False, replace_lossy_sequences=False,
                          decode_inconsistent_utf8=False)


def require_ftfy():
    try:
        import ftfy
    except ImportError:
        raise SystemExit("prompts: ftfy is not importable, so the ftfy goldens cannot be made. Install it beside the "
                         "reference environment and put it on the path:\n"
                         f"    /opt/refenv/bin/pip install --target /tmp/ftfy-site ftfy=={FTFY_VERSION}\n"
                         "    PYTHONPATH=/tmp/ftfy-site /opt/refenv/bin/python scripts/goldens/make_goldens.py --only prompts")
    if ftfy.__version__ != FTFY_VERSION:
        raise SystemExit(f"prompts: ftfy {ftfy.__version__} found, the goldens are for ftfy {FTFY_VERSION}")
    return ftfy


def ftfy_cases(rng: random.Random) -> list[str]:
    from ftfy import chardata

    texts = []
    quotes = "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u02bc\u2032\u2033\u00ab\u00bb\u301d\u301e\uff02\uff07\u0060\u00b4"
    texts += [f"{q}quoted{q} text" for q in quotes]
    texts += ["\u201cHere\u2019s a \u2018test\u2019,\u201d she said \u201ein German\u201c \u201atoo\u2018",
              "l\u2019homme, \u02bcokina, rock \u2019n\u2019 roll"]
    texts += [f"{chr(c)}ne {chr(c)}x" for c in sorted(chardata.LIGATURES)]
    texts += ["\ufb01nal \ufb02ow o\ufb03ce ba\ufb04e \ufb00 \ufb05 \ufb06", "\ufb13\ufb14 \u00e6 \u0153 \ua732 \u1d6b"]
    texts += ["".join(chr(c) for c in range(start, min(start + 16, 0xFFF0))) for start in range(0xFF01, 0xFFF0, 16)]
    texts += ["\uff2c\uff2f\uff35\uff24\u3000\uff2e\uff2f\uff29\uff33\uff25\uff33", "\uff35\uff80\uff70\uff9d",
              "\uff76\uff9e\uff77\uff9e\uff8a\uff9f\uff8b\uff9f \uff73\uff9e", "\uffa1\uffc2\uffa4 \uffe0\uffe1\uffe5\uffe8"]
    texts += ["\u4e1c\u4eac\u7684\u732b\u5728\u96e8\u4e2d\u8d70\u3002", "\u8272\u8c03\u8273\u4e3d\uff0c\u8fc7\u66dd\uff0c\u9759\u6001",
              "\u65e5\u672c\u8a9e\u306e\u6587\u7ae0\u3001\u30ab\u30bf\u30ab\u30ca\u3068\u3072\u3089\u304c\u306a",
              "\ud55c\uad6d\uc5b4 \ubb38\uc7a5", "\u3010\u6a19\u984c\u3011\u300c\u5f15\u7528\u300d\u300e\u4e8c\u91cd\u300f"]
    texts += ["\U0001f3ac \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1ef\U0001f1f5 \u2764\ufe0f",
              "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f Wales", "\u0031\ufe0f\u20e3 keycap"]
    texts += ["one\r\ntwo\rthree\nfour", "a\u2028b\u2029c", "a\x85b", "a\x0bb\x0cc", "a\x1cb\x1dc\x1ed\x1ff",
              "line\r\n\r\nblank", "\r\r\n\n\r"]
    texts += [f"a{chr(c)}b" for c in list(range(0x00, 0x20)) + [0x7F]]
    texts += [f"a{chr(c)}b" for c in range(0x80, 0xA0)]
    texts += ["caf\u00e9 \x80 10", "\x93quoted\x94 \x96 dash", "\u206a\u206f x \ufeff bom \ufff9\ufffa\ufffb\ufffc\ufffd",
              "\u200b\u200c\u200d\u200e\u200f\u202a\u202e \U0001d173\U0001d17a"]
    texts += ["\x1b[36;44mblue\x1b[0m text", "\x1b[1;32mbold\x1b[m", "\x1b[K erase", "\x1b[ no letter", "\x1b[12",
              "\x1b[\u0663m arabic digit", "\x1b]0;title\x07 osc", "\x1b[;;H", "\x1b[9\uff15m fullwidth digit", "\x1b\x1b[2J"]
    texts += ["nbsp\u00a0here", "\u00a0\u00a0lead", "narrow\u202fnbsp", "figure\u2007space", "\u2003em\u2009thin\u200ahair"]
    texts += ["&lt;b&gt; no tag", "<b>&amp;</b>", "x < y &amp; z", "&amp;\n<b>&amp;\n&amp;", "&amp;amp;\n&lt;",
              "&NTILDE; &nTILDE; &SZLIG; &EACUTE; &AMP; &LT;", "&#59; &#x3b; &#12a; &#x41; &#X1F600; &#0; &#128; &#1;",
              "&CounterClockwiseContourIntegral; &DoubleLongLeftRightArrow;", "&amp &lt &copy2023 &notin &not", "&#;&#x;&#xg;",
              "&" + "a" * 24 + ";", "&" + "a" * 25 + ";", "&abcdefghijklmnopqrstuvwx;", "&amp;lt;b&amp;gt;", "&hearts;\u2665"]
    upper = sorted({"&" + k.upper() for k in html.entities.html5 if k.endswith(";")})
    texts += [" ".join(upper[i:i + 12]) for i in range(0, len(upper), 12)]
    texts += ["e\u0301", "A\u030a \u212b \u2126", "\u1100\u1161\u11a8", "q\u0307\u0323", "\u0344 \u0958",
              "n\u0303o\u0308 \u1e9b\u0323", "\u30ab\u3099 \uff76\uff9e"]
    texts += ["\U0001f600 astral \U0010fffd \U000f0000 \ue000 \ufffe \uffff \U0001ffff"]
    # NFC: astral starters with marks, Hangul LV + T, mark reordering, singletons and exclusions.
    texts += ["\U000e004b\u0341 tag + mark", "\U0001f600\u0301 \U0001d49c\u0308", "\uac00\u11a8 \uac38\uffa3 \u1100\u1161\u11a8",
              "a\u0323\u0302\u0301 a\u0302\u0323 \u0958\u093c", "\u1e9b\u0323 \u2adc\u0338 \u0f73", "\u00c5\u030a \u212b\u0301"]
    # Wan's default negative prompt (fullwidth commas).
    texts.append("\u8272\u8c03\u8273\u4e3d\uff0c\u8fc7\u66dd\uff0c\u9759\u6001\uff0c\u7ec6\u8282\u6a21\u7cca\u4e0d\u6e05\uff0c"
                 "\u5b57\u5e55\uff0c\u98ce\u683c\uff0c\u4f5c\u54c1\uff0c\u753b\u4f5c\uff0c\u753b\u9762\uff0c\u9759\u6b62\uff0c"
                 "\u6574\u4f53\u53d1\u7070\uff0c\u6700\u5dee\u8d28\u91cf\uff0c\u4f4e\u8d28\u91cf\uff0cJPEG\u538b\u7f29\u6b8b\u7559")
    pieces = (list(quotes) + [chr(c) for c in chardata.LIGATURES] + [chr(c) for c in range(0xFF01, 0xFFF0, 7)]
              + ["\r\n", "\r", "\n", "\u2028", "\x85", "\x00", "\x07", "\x1b", "\x1b[31m", "\x7f", "\x9d", "\u00a0",
                 "&amp;", "&lt;", "<", "&NTILDE;", "&#x41;", "e\u0301", "\u4e1c\u4eac", "\U0001f3ac", "\ufeff", " ", "\t",
                 "word", "caf\u00e9", "\u00c3", "\u00e2\u20ac"])
    for _ in range(400):
        texts.append("".join(rng.choice(pieces) for _ in range(rng.randint(1, 14))))
    # Random code points from the blocks the fixes and NFC touch, with some entities and escapes.
    blocks = [(0x00, 0x80), (0x80, 0x100), (0x100, 0x250), (0x300, 0x370), (0x900, 0x980), (0x1100, 0x1200),
              (0x2000, 0x2070), (0x3000, 0x3100), (0xAC00, 0xAC40), (0xFB00, 0xFB50), (0xFF00, 0x10000),
              (0x1D170, 0x1D180), (0x1F300, 0x1F700), (0xE0000, 0xE0080)]
    extras = ["&amp;", "&lt;", "<", "&#x41;", "&#59;", "&NTILDE;", "\x1b[1;2m", "\r\n", "\n", "e\u0301"]
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(1, 16)):
            low, high = rng.choice(blocks)
            parts.append(rng.choice(extras) if rng.random() < 0.2 else chr(rng.randrange(low, high)))
        texts.append("".join(parts))
    return texts


def wan_clean(ftfy, text: str) -> str:
    """Official Wan's prompt clean (wan/modules/tokenizers.py): whitespace_clean(basic_clean(text))."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return re.sub(r"\s+", " ", text).strip()


def write_cases(path, versions: dict, rows: list[dict]) -> int:
    # Compact (one case per line).
    body = ",\n".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in rows)
    path.write_text('{"versions":' + json.dumps(versions, sort_keys=True) + ',"cases":[\n' + body + "\n]}\n",
                    encoding="utf-8")
    return path.stat().st_size


def run(versions: dict) -> list[str]:
    ftfy = require_ftfy()
    from diffusers.pipelines.wan import pipeline_wan

    reset_dir(OUT_DIR)
    lines = []
    # Part 1, diffusers without ftfy: its basic_clean asks is_ftfy_available() at each call.
    real_is_ftfy_available = pipeline_wan.is_ftfy_available
    pipeline_wan.is_ftfy_available = lambda: False
    try:
        rng = random.Random(20261127)
        rows = [{"text": t, "unescaped": html.unescape(t), "cleaned": pipeline_wan.prompt_clean(t)} for t in cases(rng)]
    finally:
        pipeline_wan.is_ftfy_available = real_is_ftfy_available
    size = write_cases(OUT_DIR / "prompt_clean.json", versions, rows)
    lines.append(f"prompts: {len(rows)} prompt_clean (no ftfy) cases, {size} bytes")

    # Part 2, ftfy.fix_text and the official Wan clean.
    assert pipeline_wan.is_ftfy_available(), "diffusers does not see ftfy"
    rows, excluded, seen = [], [], set()
    for text in ftfy_cases(random.Random(20261128)):
        if text in seen:
            continue
        seen.add(text)
        fixed = ftfy.fix_text(text)
        if fixed != ftfy.fix_text(text, **NO_MOJIBAKE_REPAIR):
            excluded.append(text)
            continue
        cleaned = wan_clean(ftfy, text)
        assert cleaned == pipeline_wan.prompt_clean(text), f"diffusers' prompt_clean with ftfy differs on {text!r}"
        rows.append({"text": text, "fixed": fixed, "cleaned": cleaned})
    # Surrogate pairs: a Swift string cannot hold surrogates, so the fixture keeps the combined character;
    # check that ftfy makes the same of the UTF-16 pair (fix_surrogates) as of the character.
    for text in ["\U0001f600 smile", "a\U00010348b", "\U0001f3ac\U0001f3a5"]:
        split = "".join(chr(u) for u in memoryview(text.encode("utf-16-le")).cast("H"))
        assert split != text and ftfy.fix_text(split) == ftfy.fix_text(text), text
    # The pipeline goldens' prompts were cleaned without ftfy: check that ftfy changes none of them.
    import i2v_goldens
    import pipeline_goldens

    prompts = [p for case in list(pipeline_goldens.CASES.values()) + list(i2v_goldens.CASES.values())
               for p in (case["prompt"], case["negative_prompt"] or "")]
    for prompt in prompts:
        no_ftfy = re.sub(r"\s+", " ", html.unescape(html.unescape(prompt)).strip()).strip()
        assert wan_clean(ftfy, prompt) == no_ftfy, f"ftfy changes the pipeline golden prompt {prompt!r}"
    lines.append(f"prompts: ftfy leaves the {len(prompts)} pipeline golden prompts' cleaning unchanged")
    size = write_cases(OUT_DIR / "ftfy_clean.json", versions | {"ftfy": ftfy.__version__}, rows)
    lines.append(f"prompts: {len(rows)} ftfy fix_text / Wan clean cases ({len(excluded)} left out: mojibake repair "
                 f"changes them), {size} bytes in {OUT_DIR}")
    for text in excluded:
        lines.append(f"  left out: {text!r} -> {ftfy.fix_text(text)!r}")
    return lines
