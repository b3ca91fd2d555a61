#!/usr/bin/env python3
"""Reference ids for the Swift CLIP tokenizer, produced by open_clip's own tokenizer.

Writes fixtures/tokenizer/open_clip_tokenize.jsonl: one JSON object per line,
  {"text": ..., "clean": <open_clip _clean_lower(text)>, "ids": <open_clip.tokenize(text)[0], 77 ids, pad 0>}
plus a few rows with "context_length" (16) for the short-context path.

Strings are generated deterministically (random.Random(SEED)) across: ASCII captions, mixed case,
punctuation runs, digits, HTML entities (named, numeric, legacy without ';', double-escaped,
invalid code points), curly quotes, ligatures, full/half width, NFC/NFD accents, combining marks,
CJK/Hangul/Cyrillic/Greek/Arabic/Hebrew/Indic/Thai, emoji (ZWJ, flags, skin tones, keycaps),
control characters and ANSI escapes, all kinds of whitespace, contractions, the special-token
strings, Python lower() special cases, and long texts that get truncated.

Strings on which ftfy's mojibake repair (fix_encoding) changes the result are *excluded* (the
Swift port documents that it does not reproduce it); they are counted in the header line.

Run: HF_HUB_OFFLINE=1 /work/main/.pyref/bin/python tools/make_tokenizer_fixtures.py
"""
import json
import os
import random
import unicodedata

import ftfy
import open_clip
from open_clip.tokenizer import _clean_lower, SimpleTokenizer

SEED = 20240617
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tokenizer", "open_clip_tokenize.jsonl")

WORDS = ("a photo of an astronaut riding horse on mars cat dog sitting the beach sunset over mountains "
         "portrait woman man wearing red hat blue sky city street at night painting style van gogh "
         "digital art highly detailed 4k render trending artstation close-up shot macro lens bokeh "
         "two people walking in park with umbrella rain reflection old wooden house snowy forest "
         "bowl of fruit on table vintage car parked near river bridge crowd market colorful balloons "
         "coffee cup laptop desk office neon sign cyberpunk robot dragon castle fantasy landscape "
         "don't it's we're they've I'm you'll he'd SHOULDN'T O'Neill rock'n'roll").split()
CAPTIONS = [
    "a photo of an astronaut riding a horse on mars",
    "Apple CoreML developer tools on a Macbook Air are fast",
    "a photograph of an astronaut riding a horse",
    "A photo of a cat",
    "don't  stop\u2014it's 3.14 &amp; caf\u00e9 <3",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8",
    "", " ", "\t\n", "a", "A", "!", "0", "12345", "3.14159", "1,000,000", "$9.99", "50% off!",
    "hello world", "Hello, World!", "HELLO WORLD", "hello   world", "  leading and trailing  ",
    "e-mail: someone@example.com", "https://example.com/path?q=1&r=2#frag", "C++ and C# and F#",
    "x^2 + y^2 = z^2", "(parenthesis) [brackets] {braces} <angles>", "...", "?!?!", "--->", ":-)", "¯\\_(ツ)_/¯",
    "<start_of_text>", "<end_of_text>", "<start_of_text>a cat<end_of_text>", "<START_OF_TEXT>", "x<end_of_text>y",
    "<|startoftext|>a cat<|endoftext|>", "!<start_of_text>", "it'\u017f", "IT'S", "'s 't 're 've 'm 'll 'd",
    "'S 'T 'RE 'VE 'M 'LL 'D", "''s", "rock'n'roll", "'tis the season", "y'all'll've",
    "\u0130stanbul", "\u0049\u0307", "stra\u00dfe STRASSE", "\u03a3\u039f\u03a6\u039f\u03a3 \u039f\u0394\u039f\u03a3", "\u03a3", "A\u03a3", "\u03a3A", "A\u03a3.",
    "A\u03a3\u0301 b", "\u212a elvin \u212b ngstrom", "\u01c5 \u01c8 \u01cb \u01f2", "\u1e9e", "\u0345", "\u2160\u2161\u2162",
]
ENTITIES = ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&#x27;", "&nbsp;", "&amp;amp;", "&amp;lt;", "&copy;",
            "&copy", "&not", "&notit;", "&notin;", "&eacute;", "&EACUTE;", "&Eacute;", "&eacute", "&hellip;",
            "&mdash;", "&ndash;", "&rsquo;", "&ldquo;", "&rdquo;", "&#8217;", "&#x2019;", "&#128512;",
            "&#x1F600;", "&#0;", "&#x110000;", "&#xD800;", "&#150;", "&#x80;", "&#13;", "&#59;", "&#1;",
            "&#x7F;", "&#xFFFE;", "&#65;", "&#x41", "&#65", "&#;", "&#x;", "&#xZZ;", "&bogus;", "&ampx;",
            "&AMP;", "&AMP", "&LT", "&fjlig;", "&NotEqualTilde;", "&ThickSpace;", "&zwj;", "&shy;",
            "&nbsp", "&amp;#39;", "&amp;quot;", "&lt;b&gt;bold&lt;/b&gt;", "&#0000065;", "&#x00041;",
            "&Ntilde;", "&NTILDE;", "&ntilde;", "&SZLIG;", "&szlig;", "&euro;", "&pound;", "&frac12;",
            "&alpha;&beta;&gamma;", "&ALPHA;", "&Alpha;", "&aacute;&AACUTE;", "&amp", "&&amp;&", "&;",
            "&" + "a" * 40 + ";", "&#" + "9" * 30 + ";", "&xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx&amp;"]
CURLY = ["\u2018", "\u2019", "\u201a", "\u201b", "\u201c", "\u201d", "\u201e", "\u201f", "\u02bc", "\u2032", "\u00ab", "\u00bb"]
LIGATURES = ["\ufb00", "\ufb01", "\ufb02", "\ufb03", "\ufb04", "\ufb05", "\ufb06", "\u0132", "\u0133", "\u0149",
             "\u01c4", "\u01c5", "\u01c6", "\u01c7", "\u01c9", "\u01ca", "\u01cc", "\u01f1", "\u01f2", "\u01f3", "\u00e6", "\u0153"]
SPACES = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2028", "\u2029", "\u0085", "\u1680",
          "\u2002", "\u2003", "\u2009", "\u200a", "\u202f", "\u205f", "\u001c", "\u001f", "\u000b", "\u000c",
          "\u200b", "\u180e", "\ufeff", "\u2060"]
CONTROLS = ["\u0000", "\u0001", "\u0007", "\u0008", "\u007f", "\u001b[31m", "\u001b[0m", "\u001b[1;32m",
            "\u001b[", "\u001b[12", "\u001b[\u0661\u0662m", "\u206a", "\ufff9", "\ufffc", "\ufffd", "\u200c",
            "\u200d", "\u200e", "\u202e", "\U000e0067"]
C1 = [chr(c) for c in range(0x80, 0xa0)]
SCRIPTS = {
    "cjk": "\u732b\u72ac\u5c71\u5ddd\u65e5\u6708\u706b\u6c34\u6728\u91d1\u571f\u4eba\u5927\u5c0f\u4e2d\u6587\u5b57\u7b26\u6f22\u8a9e",
    "kana": "\u3042\u3044\u3046\u3048\u304a\u30ab\u30ad\u30af\u30b1\u30b3\u30fc\u30f3\u30c6\u30ad\u30b9\u30c8\u3063\u30e3",
    "halfkana": "\uff76\uff77\uff78\uff9e\uff9f\uff70\uff71\uff72",
    "hangul": "\ud55c\uad6d\uc5b4\ud14d\uc2a4\ud2b8\uace0\uc591\uc774\uac15\uc544\uc9c0",
    "jamo": "\u1112\u1161\u11ab\u1100\u116e\u11a8",
    "cyrillic": "\u041f\u0440\u0438\u0432\u0435\u0442\u043c\u0438\u0440\u041a\u041e\u0422\u0451\u0401\u0439\u0419",
    "greek": "\u0391\u03b2\u03b3\u0394\u03b5\u03a3\u03c3\u03c2\u03a9\u03c9\u0386\u03ac",
    "arabic": "\u0645\u0631\u062d\u0628\u0627\u0628\u0627\u0644\u0639\u0627\u0644\u0645\u0660\u0661\u0662\u064b\u0651",
    "hebrew": "\u05e9\u05dc\u05d5\u05dd\u05e2\u05d5\u05dc\u05dd\u05b8\u05bc",
    "devanagari": "\u0928\u092e\u0938\u094d\u0924\u0947\u0926\u0941\u0928\u093f\u092f\u093e\u0966\u0967",
    "thai": "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e42\u0e25\u0e01\u0e51\u0e52",
    "latin_ext": "\u00e9\u00e8\u00ea\u00eb\u00e0\u00e7\u00f1\u00f6\u00fc\u00df\u00f8\u00e5\u0142\u0111\u0159\u0161\u017e\u0131\u0130\u1ec7\u01b0",
    "fullwidth": "\uff21\uff22\uff23\uff41\uff42\uff43\uff10\uff11\uff12\uff01\uff1f\uff08\uff09\uff0c\uff0e\uffe5\uffe1\uff3f",
    "math": "\u2200\u2203\u2211\u222b\u221e\u2248\u2260\u2264\u00b1\u00d7\u00f7\u221a\u03c0\u00b2\u00b3\u00bd\u2153\u2460\u2469",
    "symbols": "\u00a9\u00ae\u2122\u00a7\u00b6\u2020\u2021\u2022\u2026\u20ac\u00a3\u00a5\u00a2\u00b0\u2190\u2192\u2605\u2665\u266a",
    "digits": "0123456789\u0660\u0661\u06f1\u0966\u09e6\u0e51\uff15\u00b9\u2155\u2167\U0001d7ce",
    "combining": "\u0300\u0301\u0302\u0303\u0308\u030a\u0327\u0328\u0331\u0336\u20dd\u0489",
}
EMOJI = ["\U0001f600", "\U0001f431", "\U0001f680", "\u2764\ufe0f", "\U0001f44d\U0001f3fd",
         "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
         "\U0001f1ef\U0001f1f5", "\U0001f1fa\U0001f1f8", "1\ufe0f\u20e3", "#\ufe0f\u20e3", "\U0001f9d1\u200d\U0001f4bb",
         "\U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f", "\u263a", "\u2615", "\U0001f98a"]


def caption(rng, n=None):
    n = n or rng.randint(2, 14)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def recase(rng, s):
    mode = rng.randrange(4)
    if mode == 0:
        return s.upper()
    if mode == 1:
        return s.title()
    if mode == 2:
        return "".join(c.upper() if rng.random() < 0.3 else c for c in s)
    return s


def sprinkle(rng, s, pool, count):
    chars = list(s)
    for _ in range(count):
        chars.insert(rng.randint(0, len(chars)), rng.choice(pool))
    return "".join(chars)


def generate(rng):
    out = list(CAPTIONS)
    out += [f"{caption(rng, 3)} {e} {caption(rng, 2)}" for e in ENTITIES]
    out += ENTITIES
    for _ in range(120):                                   # plain and re-cased captions
        out.append(recase(rng, caption(rng)))
    for _ in range(60):                                    # punctuation and digits
        parts = [rng.choice(["!!!", "?", "...", "--", "—", "–", "/", "\\", "@#$%", "^&*", "()", "[]", "{}",
                             "'", '"', "`", "~", "|", "<>", ";:", ",.", "_", "+=", str(rng.randint(0, 10**9)),
                             f"{rng.random():.4f}", f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}pm"])
                 for _ in range(rng.randint(1, 8))]
        out.append(rng.choice(["", " "]).join(parts) + " " + caption(rng, 2))
    for _ in range(80):                                    # HTML entities inside text
        s = caption(rng)
        out.append(sprinkle(rng, s, ENTITIES, rng.randint(1, 4)))
    for _ in range(40):                                    # HTML plus a literal '<' (ftfy 'auto' switches off)
        lines = [sprinkle(rng, caption(rng, 4), ENTITIES, 2) for _ in range(rng.randint(1, 4))]
        lines.insert(rng.randrange(len(lines) + 1), rng.choice(["a < b &amp; c", "<b>&lt;tag&gt;</b>", "1<2"]))
        out.append("\n".join(lines))
    for _ in range(60):                                    # curly quotes, ligatures, full width
        s = caption(rng)
        s = sprinkle(rng, s, CURLY, rng.randint(1, 4))
        s = sprinkle(rng, s, LIGATURES, rng.randint(0, 3))
        s = sprinkle(rng, s, list(SCRIPTS["fullwidth"]) + ["\u3000"], rng.randint(0, 4))
        out.append(s)
    for _ in range(40):                                    # fully full-width sentences
        s = recase(rng, caption(rng, 4))
        out.append("".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in s))
    for _ in range(60):                                    # accents in NFC / NFD / NFKD, combining marks
        s = sprinkle(rng, caption(rng, 5), list(SCRIPTS["latin_ext"]), rng.randint(1, 6))
        form = rng.choice(["NFC", "NFD", "NFKD", None])
        s = unicodedata.normalize(form, s) if form else s
        if rng.random() < 0.4:
            s = sprinkle(rng, s, list(SCRIPTS["combining"]), rng.randint(1, 3))
        out.append(recase(rng, s))
    for name in ["cjk", "kana", "halfkana", "hangul", "jamo", "cyrillic", "greek", "arabic", "hebrew",
                 "devanagari", "thai", "math", "symbols", "digits"]:   # scripts
        pool = list(SCRIPTS[name])
        for _ in range(16):
            word = lambda: "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
            parts = [word() if rng.random() < 0.7 else rng.choice(WORDS) for _ in range(rng.randint(1, 7))]
            s = rng.choice([" ", "", ", ", "\u3000"]).join(parts)
            if name == "hangul" and rng.random() < 0.5:
                s = unicodedata.normalize("NFD", s)
            out.append(recase(rng, s))
    for _ in range(60):                                    # emoji
        s = sprinkle(rng, caption(rng, 5), EMOJI, rng.randint(1, 4))
        if rng.random() < 0.3:
            s = "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 6)))
        out.append(s)
    for _ in range(70):                                    # whitespace and control characters
        s = caption(rng, 6)
        s = sprinkle(rng, s, SPACES, rng.randint(1, 6))
        if rng.random() < 0.5:
            s = sprinkle(rng, s, CONTROLS, rng.randint(1, 3))
        if rng.random() < 0.2:
            s = rng.choice(SPACES) + s + rng.choice(SPACES)
        out.append(s)
    for _ in range(30):                                    # C1 controls (windows-1252 reading)
        out.append(sprinkle(rng, caption(rng, 4), C1, rng.randint(1, 3)))
    for _ in range(50):                                    # contractions and apostrophes
        s = caption(rng, 5)
        s = sprinkle(rng, s, ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", "''", "\u2019s",
                              "'\u017f", "!'s", "'x", "'"], rng.randint(1, 4))
        out.append(recase(rng, s))
    for _ in range(45):                                    # long texts: truncation
        s = " ".join(caption(rng, 14) for _ in range(rng.randint(3, 8)))
        if rng.random() < 0.5:
            s = sprinkle(rng, s, ENTITIES + EMOJI + CURLY + list(SCRIPTS["cjk"]), rng.randint(3, 10))
        out.append(recase(rng, s))
    out.append(" ".join(["a"] * 75))                        # exactly 77 with SOT/EOT
    out.append(" ".join(["a"] * 76))                        # 78: one truncated
    out.append(" ".join(["a"] * 74))
    out.append("1" * 200)
    all_pools = (list("".join(SCRIPTS.values())) + EMOJI + CURLY + LIGATURES + SPACES + CONTROLS + C1
                 + ENTITIES + list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + WORDS)
    for _ in range(150):                                   # soup of everything
        out.append("".join(rng.choice(all_pools) for _ in range(rng.randint(1, 25))))
    for _ in range(40):                                    # random code points from assigned BMP/SMP ranges
        chars = []
        while len(chars) < rng.randint(1, 12):
            c = chr(rng.choice([rng.randint(0x20, 0x2FF), rng.randint(0x370, 0x1FFF), rng.randint(0x2000, 0x33FF),
                                rng.randint(0x4E00, 0x9FFF), rng.randint(0xAC00, 0xD7A3), rng.randint(0xFB00, 0xFFEF),
                                rng.randint(0x1F300, 0x1FAFF), rng.randint(0x1D400, 0x1D7FF)]))
            if unicodedata.category(c) not in ("Cn", "Co", "Cs") and unicodedata.unidata_version:
                chars.append(c)
        out.append("".join(chars))
    return out


def main():
    rng = random.Random(SEED)
    texts, seen = [], set()
    for t in generate(rng):
        if t not in seen:
            seen.add(t)
            texts.append(t)
    tok = SimpleTokenizer()
    kept, excluded = [], []
    for t in texts:
        # Keep only strings where ftfy's mojibake repair is a no-op (not reproduced in Swift).
        if ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False):
            excluded.append(t)
        else:
            kept.append(t)
    rows = open_clip.tokenize(kept)
    assert rows.shape[1] == 77
    short = [t for t in kept if len(tok.encode(t)) > 10][:20]
    short_rows = open_clip.tokenize(short, context_length=16)
    header = {"generator": "tools/make_tokenizer_fixtures.py", "seed": SEED, "open_clip": open_clip.__version__,
              "ftfy": ftfy.__version__, "rows": len(kept) + len(short),
              "excluded_mojibake": len(excluded), "pad_id": 0}
    tmp = OUT + ".tmp"
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for t, r in zip(kept, rows.tolist()):
            f.write(json.dumps({"text": t, "clean": _clean_lower(t), "ids": r}, ensure_ascii=True) + "\n")
        for t, r in zip(short, short_rows.tolist()):
            f.write(json.dumps({"text": t, "clean": _clean_lower(t), "ids": r, "context_length": 16}, ensure_ascii=True) + "\n")
    os.replace(tmp, OUT)
    print(f"{len(kept)} rows (+{len(short)} at context 16), {len(excluded)} excluded (mojibake repair):",
          [e[:40] for e in excluded[:10]], os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
