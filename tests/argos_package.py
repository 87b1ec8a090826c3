"""Argos model packages for tests, made here and now with no download.

`package_dir` writes a real, tiny package: a SentencePiece model trained on a few sentences and a
CTranslate2 Transformer (one layer, width 8) with seeded random weights, saved by CTranslate2's
own spec writer, so the engine loads and runs exactly what a real package holds; its output is
deterministic word salad in the source vocabulary. It needs the `translate` extra (ctranslate2,
sentencepiece): callers skip without it. `fake_package_dir` writes the same layout with
placeholder bytes, for the checks that never load a model. `zip_dir` packs either as an
`.argosmodel` (a zip of one folder).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

SENTENCES = [
    "we propose talks without preconditions",
    "the hotline is open",
    "a launch notice for the exercise",
    "a round table or a square table",
]


def metadata(source: str = "en", target: str = "ko", **extra: Any) -> dict[str, Any]:
    return {
        "package_version": "1.1",
        "argos_version": "1.9",
        "from_code": source,
        "from_name": "English",
        "to_code": target,
        "to_name": "Korean",
        "name": "Tiny test model",
        **extra,
    }


def fake_package_dir(root: Path, meta: dict[str, Any] | None = None) -> Path:
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.bin").write_bytes(b"not a model")
    (root / "model" / "config.json").write_text("{}")
    (root / "sentencepiece.model").write_bytes(b"not a model either")
    (root / "metadata.json").write_text(json.dumps(metadata() if meta is None else meta))
    return root


def package_dir(root: Path, meta: dict[str, Any] | None = None, seed: int = 7) -> Path:
    import numpy as np
    import sentencepiece as spm
    from ctranslate2 import specs

    (root / "model").mkdir(parents=True)
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(SENTENCES * 20), model_writer=buf, vocab_size=40,
        model_type="word", hard_vocab_limit=False, minloglevel=2,
    )  # fmt: skip
    (root / "sentencepiece.model").write_bytes(buf.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    vocab = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
    d, ffn, v = 8, 16, len(vocab)
    rng = np.random.default_rng(seed)

    def w(*shape: int) -> Any:
        return (rng.standard_normal(shape) * 0.5).astype(np.float32)

    def norm(layer: Any) -> None:
        layer.gamma, layer.beta = np.ones(d, np.float32), np.zeros(d, np.float32)

    def block(layer: Any, cross: bool) -> None:
        norm(layer.self_attention.layer_norm)
        layer.self_attention.linear[0].weight = w(3 * d, d)  # fused q, k, v
        layer.self_attention.linear[1].weight = w(d, d)
        if cross:
            norm(layer.attention.layer_norm)
            layer.attention.linear[0].weight = w(d, d)
            layer.attention.linear[1].weight = w(2 * d, d)  # fused k, v over the source
            layer.attention.linear[2].weight = w(d, d)
        norm(layer.ffn.layer_norm)
        layer.ffn.linear_0.weight = w(ffn, d)
        layer.ffn.linear_1.weight = w(d, ffn)

    spec = specs.TransformerSpec.from_config(num_layers=1, num_heads=2)
    spec.encoder.embeddings[0].weight = w(v, d)
    norm(spec.encoder.layer_norm)
    block(spec.encoder.layer[0], cross=False)
    spec.decoder.embeddings.weight = w(v, d)
    norm(spec.decoder.layer_norm)
    spec.decoder.projection.weight = w(v, d)
    block(spec.decoder.layer[0], cross=True)
    spec.register_source_vocabulary(vocab)
    spec.register_target_vocabulary(vocab)
    spec.validate()
    spec.optimize(quantization=None)
    spec.save(str(root / "model"))
    (root / "metadata.json").write_text(json.dumps(metadata() if meta is None else meta))
    return root


def zip_dir(src: Path, out: Path, folder: str = "translate-en_ko-1_1") -> Path:
    """`src` packed as Argos does: every file under one top-level `folder`."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                z.write(p, f"{folder}/{p.relative_to(src).as_posix()}")
    return out
