"""``cli.wrapping.fill``: 80 columns, broken only where nothing a reader copies is split."""

from __future__ import annotations

import pytest

from mnv3cli.cli.wrapping import fill

LAYERS = (
    "kept in float: 16 of 61 layers: stages.0.0.depthwise.conv, stem.conv, stages.3.0.se (Mul), "
    "stages.4.2.project.conv, stages.2.1.se (Mul), stages.2.0.depthwise.conv, pre_logits.0, "
    "stages.2.1.se (ReduceMean), stages.2.2.se (Mul), stages.3.1.project.conv, stages.2.0.se (Mul)"
)
STEP = (
    "step 6, 16 of 61 layers in float (+ stages.3.0.expand.conv): int8 top-1 75.6 % vs fp32 76.4 %, "
    "drop 0.80 ± 0.98 points, 18.52 ms, 6.4 MB, input [batch, 3, 224, 224]"
)


@pytest.mark.parametrize("text", [LAYERS, STEP])
@pytest.mark.parametrize("shift", range(1, 40, 3))  # every unit lands at the edge for some shift
def test_lines_fit_and_nothing_copied_is_split(text, shift):
    text = "x" * shift + " " + text
    lines = fill(text).splitlines()
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines)
    assert all(line.startswith("  ") for line in lines[1:])
    assert " ".join(line.strip() for line in lines) == text  # only spaces became line breaks
    for line in lines:
        assert not line.rstrip().endswith(("±", "(+")) and not line.lstrip().startswith(
            ("%", "ms", "MB", "point", "±", "(Mul)", "(ReduceMean)", "3,", "224")
        )


def test_a_word_longer_than_the_line_overflows_rather_than_splits():
    path = "/very/long/" + "directory/" * 10 + "model.xml"
    assert fill(f"wrote {path} (OpenVINO IR)").splitlines() == ["wrote", f"  {path}", "  (OpenVINO IR)"]


def test_a_path_named_whole_keeps_its_spaces_on_one_line():
    path = "/data/my photos/a folder with spaces/and more spaces/model 1.onnx"
    lines = fill(f"wrote {path} (ONNX opset 17, 10.2 MB): mobilenetv3_small_100", whole=(path,)).splitlines()
    assert any(path in line for line in lines) and all(len(line) <= 80 for line in lines)
    text = f"wrote {path} (ONNX opset 17, 10.2 MB): mobilenetv3_small_100"
    assert path not in fill(text, first="x" * 20)  # without whole=, the path's spaces may break
