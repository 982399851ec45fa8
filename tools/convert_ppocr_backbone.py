"""Convert the CNN backbone of PP-OCRv6's small text recogniser into cnnfast's own format.

Source: ``rapidocr/models/PP-OCRv6_rec_small.onnx`` in the ``rapidocr==3.10.0`` wheel (Apache-2.0;
weights by Baidu / the PaddleOCR authors, ONNX conversion by the RapidOCR authors). The graph is
cut at tensor ``p2o.pd_op.add.65.0`` (the end of the convolutional backbone, 120 channels at 1/48
of the height and 1/8 of the width), constant-folded, and written as

    cnnfast/pretrained/ppocrv6_rec_small_backbone.json   graph description (cnnfast.onnx._graph format)
    cnnfast/pretrained/ppocrv6_rec_small_backbone.npz    weights, float16 (read back as float32)
    cnnfast/pretrained/NOTICE, LICENSE-Apache-2.0.txt    attribution, licence, the source's SHA-256

which ``cnnfast.pretrained.ppocr_backbone()`` reads without the onnx package. Run from the
repository root (needs onnx and onnxruntime; downloads the wheel with pip unless --wheel is given):

    python tools/convert_ppocr_backbone.py [--wheel rapidocr-3.10.0-py3-none-any.whl]

It checks the converted backbone against ONNX Runtime on the original file before writing.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

VERSION = "3.10.0"
MEMBER = "rapidocr/models/PP-OCRv6_rec_small.onnx"
LICENSE_MEMBER = f"rapidocr-{VERSION}.dist-info/licenses/LICENSE"
CUT = "p2o.pd_op.add.65.0"
OUT = os.path.join(ROOT, "cnnfast", "pretrained")
STEM = "ppocrv6_rec_small_backbone"


def fetch_wheel(folder):
    found = glob.glob(os.path.join(folder, f"rapidocr-{VERSION}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"rapidocr=={VERSION}", "-d", folder],
            check=True,
        )
        found = glob.glob(os.path.join(folder, f"rapidocr-{VERSION}-*.whl"))
    return found[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="the rapidocr 3.10.0 wheel (default: pip download into the temp dir)")
    ap.add_argument("--out", default=OUT, help="output folder (default: cnnfast/pretrained)")
    args = ap.parse_args(argv)
    import onnx
    import onnxruntime as ort

    from cnnfast.onnx._graph import GraphModule, save_spec, simplify
    from cnnfast.onnx._import import spec_from_onnx

    wheel = args.wheel or fetch_wheel(os.path.join(tempfile.gettempdir(), "cnnfast-test-onnx-wheels"))
    with zipfile.ZipFile(wheel) as zf:
        data = zf.read(MEMBER)
        license_text = zf.read(LICENSE_MEMBER).decode("utf-8")
    sha_model = hashlib.sha256(data).hexdigest()
    with open(wheel, "rb") as f:
        sha_wheel = hashlib.sha256(f.read()).hexdigest()
    model = onnx.load_model_from_string(data)
    spec = simplify(spec_from_onnx(model, source=f"rapidocr-{VERSION}:{MEMBER}"), [CUT])
    n_params = sum(p.data.size for p in GraphModule(spec).parameters())  # BatchNorm running stats excluded

    # check: float32 and float16-rounded weights against ONNX Runtime on the original file
    rng = np.random.default_rng(0)
    x = ((rng.random((4, 3, 48, 96), dtype=np.float32)) - 0.5) / 0.5
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(CUT))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.log_severity_level = 3
    ref = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got32 = GraphModule(spec)(x)
    tmp = tempfile.mkdtemp()
    save_spec(spec, os.path.join(tmp, "g.json"), os.path.join(tmp, "g.npz"), float_dtype=np.float16)
    from cnnfast.onnx._graph import load_spec

    got16 = GraphModule(load_spec(os.path.join(tmp, "g.json"), os.path.join(tmp, "g.npz"))[0])(x)
    scale = float(np.abs(ref).max())
    e32 = float(np.abs(got32 - ref).max()) / scale
    e16 = float(np.abs(got16 - ref).max()) / scale
    print(f"backbone: {len(spec.nodes)} nodes, {n_params:,} parameters, output {ref.shape} for input {x.shape}")
    print(
        f"max error vs ONNX Runtime, relative to max |output| {scale:.3g}: float32 weights {e32:.2e}, "
        f"float16 weights {e16:.2e}"
    )
    if e32 > 1e-4 or e16 > 2e-2:
        raise SystemExit("conversion check failed: errors too large")

    meta = {
        "name": "PP-OCRv6_rec_small backbone",
        "cut_at": CUT,
        "parameters": n_params,
        "source_file": MEMBER,
        "source_wheel": os.path.basename(wheel),
        "source_sha256": sha_model,
        "wheel_sha256": sha_wheel,
        "license": "Apache-2.0",
        "storage": "float16",
        "input": "N x 3 x 48 x W float32, RGB in [0, 1] normalised as (x - 0.5) / 0.5",
        "output": "N x 120 x 1 x ceil(W / 8) feature map",
    }
    os.makedirs(args.out, exist_ok=True)
    save_spec(
        spec,
        os.path.join(args.out, STEM + ".json"),
        os.path.join(args.out, STEM + ".npz"),
        float_dtype=np.float16,
        meta=meta,
    )
    with open(os.path.join(args.out, "LICENSE-Apache-2.0.txt"), "w") as f:
        f.write(license_text)
    with open(os.path.join(args.out, "NOTICE"), "w") as f:
        f.write(
            NOTICE.format(
                version=VERSION,
                member=MEMBER,
                sha_model=sha_model,
                sha_wheel=sha_wheel,
                wheel=os.path.basename(wheel),
                cut=CUT,
                n_params=n_params,
                stem=STEM,
            )
        )
    size = os.path.getsize(os.path.join(args.out, STEM + ".npz"))
    print(f"wrote {STEM}.json, {STEM}.npz ({size / 1e6:.2f} MB), NOTICE and LICENSE-Apache-2.0.txt in {args.out}")


NOTICE = """cnnfast/pretrained: pretrained weights shipped with cnnfast
==========================================================

{stem}.json / {stem}.npz
------------------------
The convolutional backbone of PP-OCRv6_rec_small, the small text-recognition model of PP-OCRv6.

Copyright (c) Baidu Inc. and the PaddlePaddle / PaddleOCR Authors (model weights)
  https://github.com/PaddlePaddle/PaddleOCR
Copyright (c) 2021 RapidOCR Authors (ONNX conversion and distribution)
  https://github.com/RapidAI/RapidOCR

Licensed under the Apache License, Version 2.0; see LICENSE-Apache-2.0.txt in this folder (the
LICENSE file of the rapidocr {version} wheel) or https://www.apache.org/licenses/LICENSE-2.0 .
Per the rapidocr wheel's MODEL_LICENSES.md, the PP-OCRv6 model artifacts are distributed under
Apache-2.0 with copyright in the weights held by Baidu and/or the PaddleOCR rights holders.

Source: file {member}
  from the wheel {wheel} (https://pypi.org/project/rapidocr/{version}/)
  SHA-256 of the .onnx file: {sha_model}
  SHA-256 of the wheel:      {sha_wheel}

Modifications (made by tools/convert_ppocr_backbone.py in the cnnfast repository): the graph was
cut at tensor {cut} (dropping the sequence head), constant-folded, converted from ONNX to
cnnfast's own graph description (JSON) and the weights ({n_params:,} parameters) stored at float16
precision (npz). No weights were retrained.
"""

if __name__ == "__main__":
    main()
