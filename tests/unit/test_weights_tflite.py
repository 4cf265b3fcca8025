"""TFLite import: Google's int8 and uint8 MobileNetV3-Small files reach their accuracy bars on the
500 ImageNet dev images, the graph facts the converter relies on hold, and a TFLite file that is
not a MobileNetV3 is refused clearly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mnv3cli.errors import UserError
from mnv3cli.registry.entries import TF
from mnv3cli.weights.loader import load_model
from mnv3cli.weights.tflite import read_tflite


@pytest.fixture(scope="module")
def dev_batch(imagenet_dev):
    """The 500 dev images as one [-1, 1] tensor (shorter side 256 bilinear, centre 224) + labels."""
    from PIL import Image

    from mnv3cli.registry.imagenet import wordnet_ids

    index = {w: i for i, w in enumerate(wordnet_ids())}
    images, labels = [], []
    for path in sorted(imagenet_dev.glob("*/*")):
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = 256 / min(im.size)
            im = im.resize((max(256, round(im.width * scale)), max(256, round(im.height * scale))), Image.BILINEAR)
            left, top = (im.width - 224) // 2, (im.height - 224) // 2
            images.append(np.asarray(im.crop((left, top, left + 224, top + 224))))
        labels.append(index[path.parent.name])
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert x.shape == (500, 3, 224, 224)
    return x, torch.tensor(labels)


def accuracy(model, batch) -> tuple[float, float]:
    x, y = batch
    with torch.inference_mode():
        top5 = torch.cat([model(x[i : i + 50]).topk(5, 1).indices for i in range(0, len(x), 50)])
    return ((top5[:, 0] == y).float().mean().item() * 100, (top5 == y[:, None]).any(1).float().mean().item() * 100)


def test_int8_tflite_accuracy(int8_tflite, dev_batch):
    loaded = load_model(int8_tflite)
    assert loaded.card.model_name == "mobilenetv3_small_100"
    assert loaded.card.arch["tf_padding"] is True and loaded.card.preprocess == TF
    assert loaded.model.num_classes == 1000 and loaded.card.wordnet_ids[0] == "n01440764"
    top1, top5 = accuracy(loaded.model, dev_batch)
    print(f"int8 tflite: top-1 {top1:.1f} %, top-5 {top5:.1f} %")
    assert top1 >= 78.5 and top5 >= 93.5


def test_uint8_tflite_accuracy(uint8_tflite, dev_batch):
    loaded = load_model(uint8_tflite)
    top1, top5 = accuracy(loaded.model, dev_batch)
    print(f"uint8 tflite: top-1 {top1:.1f} %, top-5 {top5:.1f} %")
    assert top1 >= 73.5


def test_graph_facts_the_import_relies_on(int8_tflite, uint8_tflite):
    """54 kernels in model order; the int8 gate bias holds the +3, the uint8 graph adds it."""
    for path, offset in ((int8_tflite, 0.0), (uint8_tflite, 3.0)):
        kernels = read_tflite(path)
        assert len(kernels) == 54
        assert [k.stride for k in kernels].count(2) == 5
        assert kernels[0].weight.shape == (16, 3, 3, 3)  # CONV_2D [out, kh, kw, in] -> torch
        assert kernels[1].weight.shape == (16, 1, 3, 3)  # DEPTHWISE [1, kh, kw, C] -> torch
        assert kernels[-1].weight.shape[0] == 1001
        gates = [k.gate_offset for k in kernels if k.gate_offset is not None]
        assert len(gates) == 9 and all(abs(g - offset) < 0.02 for g in gates)


def _conv_tflite(path):
    """A valid TFLite model holding one 3x3 convolution: a graph, but not a MobileNetV3."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(1024)

    def vector(values, dtype):
        return b.CreateNumpyVector(np.asarray(values, dtype))

    def offsets(start, items):
        start(b, len(items))
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    data = vector(np.ones((4, 3, 3, 3), np.float32).view(np.uint8).ravel(), np.uint8)
    tflite.BufferStart(b)
    empty = tflite.BufferEnd(b)
    tflite.BufferStart(b)
    tflite.BufferAddData(b, data)
    weights = tflite.BufferEnd(b)
    tensors = []
    for name, shape, buffer in (("input", (1, 8, 8, 3), 0), ("w", (4, 3, 3, 3), 1), ("out", (1, 8, 8, 4), 0)):
        name, shape = b.CreateString(name), vector(shape, np.int32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, buffer)
        tflite.TensorAddName(b, name)
        tensors.append(tflite.TensorEnd(b))
    tflite.Conv2DOptionsStart(b)
    tflite.Conv2DOptionsAddStrideH(b, 1)
    tflite.Conv2DOptionsAddStrideW(b, 1)
    options = tflite.Conv2DOptionsEnd(b)
    inputs, outputs = vector([0, 1, -1], np.int32), vector([2], np.int32)
    tflite.OperatorStart(b)
    tflite.OperatorAddInputs(b, inputs)
    tflite.OperatorAddOutputs(b, outputs)
    tflite.OperatorAddBuiltinOptionsType(b, tflite.BuiltinOptions.Conv2DOptions)
    tflite.OperatorAddBuiltinOptions(b, options)
    op = tflite.OperatorEnd(b)
    tensor_vec = offsets(tflite.SubGraphStartTensorsVector, tensors)
    op_vec = offsets(tflite.SubGraphStartOperatorsVector, [op])
    graph_in, graph_out = vector([0], np.int32), vector([2], np.int32)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensor_vec)
    tflite.SubGraphAddOperators(b, op_vec)
    tflite.SubGraphAddInputs(b, graph_in)
    tflite.SubGraphAddOutputs(b, graph_out)
    graph = tflite.SubGraphEnd(b)
    tflite.OperatorCodeStart(b)
    tflite.OperatorCodeAddBuiltinCode(b, tflite.BuiltinOperator.CONV_2D)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(b, tflite.BuiltinOperator.CONV_2D)
    code = tflite.OperatorCodeEnd(b)
    codes = offsets(tflite.ModelStartOperatorCodesVector, [code])
    graphs = offsets(tflite.ModelStartSubgraphsVector, [graph])
    buffers = offsets(tflite.ModelStartBuffersVector, [empty, weights])
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes)
    tflite.ModelAddSubgraphs(b, graphs)
    tflite.ModelAddBuffers(b, buffers)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    path.write_bytes(b.Output())
    return path


def test_tflite_that_is_not_mobilenetv3_is_refused(tmp_path):
    path = _conv_tflite(tmp_path / "conv.tflite")
    [kernel] = read_tflite(path)  # a well-formed graph: it parses
    assert kernel.weight.shape == (4, 3, 3, 3) and kernel.gate_offset is None
    with pytest.raises(UserError, match=r"holds 1 convolution/linear weights.*another architecture"):
        load_model(path)
    with pytest.raises(UserError, match=r"has 1 convolution/dense ops but the model needs 54"):
        load_model(path, "mobilenetv3_small_100")
