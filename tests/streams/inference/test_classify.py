"""Classification of output rows: softmax for logits, validation for probabilities, outcome."""

from __future__ import annotations

import math

import numpy as np
import pytest

from defectline.config.models import ModelConfig
from defectline.schemas.verdicts import Outcome
from defectline.streams.inference.classify import classify, softmax
from defectline.streams.inference.errors import ModelOutputError


def model_config(output: str = "logits") -> ModelConfig:
    return ModelConfig.model_validate(
        {
            "class_names": ["ok", "scratch", "pit"],
            "pass_classes": ["ok"],
            "output": output,
            "preprocess": {"width_px": 8, "height_px": 8},
        }
    )


def test_logits_get_softmax_and_top_class() -> None:
    result = classify(np.array([0.0, math.log(2), math.log(3)], np.float32), model_config())

    assert result.class_name == "pit"
    assert result.class_code == 2
    assert result.confidence == pytest.approx(0.5, abs=1e-7)
    assert result.scores["ok"] == pytest.approx(1 / 6, abs=1e-7)
    assert result.scores["scratch"] == pytest.approx(2 / 6, abs=1e-7)
    assert result.outcome is Outcome.REJECT


def test_pass_class_gives_pass_outcome() -> None:
    result = classify(np.array([5.0, 1.0, 1.0]), model_config())

    assert result.class_name == "ok"
    assert result.outcome is Outcome.PASS


def test_softmax_large_logits_do_not_overflow() -> None:
    probabilities = softmax(np.array([1000.0, 1001.0], np.float32))

    expected_high = math.e / (1 + math.e)
    np.testing.assert_allclose(probabilities, [1 - expected_high, expected_high], rtol=1e-12)


def test_probabilities_pass_through_unchanged() -> None:
    result = classify(np.array([0.1, 0.7, 0.2], np.float32), model_config("probabilities"))

    assert result.class_name == "scratch"
    assert result.confidence == pytest.approx(0.7, abs=1e-7)
    assert result.scores["pit"] == pytest.approx(0.2, abs=1e-7)


def test_probabilities_float_rounding_clipped_to_one() -> None:
    result = classify(np.array([1.0000005, 0.0, 0.0]), model_config("probabilities"))

    assert result.confidence == 1.0


def test_probabilities_value_above_one_raises() -> None:
    with pytest.raises(ModelOutputError, match=r"outside \[0, 1\]") as caught:
        classify(np.array([2.5, -1.0, 0.5]), model_config("probabilities"))

    assert "2.5" in str(caught.value)
    assert "set model.output to 'logits'" in str(caught.value)


def test_probabilities_not_summing_to_one_raises() -> None:
    with pytest.raises(ModelOutputError, match="sums to 0.6"):
        classify(np.array([0.2, 0.2, 0.2]), model_config("probabilities"))


def test_nan_in_output_raises() -> None:
    with pytest.raises(ModelOutputError, match="NaN"):
        classify(np.array([0.2, np.nan, 0.2]), model_config())


def test_wrong_row_width_raises() -> None:
    with pytest.raises(ModelOutputError, match=r"shape \[4\], expected \[3\]"):
        classify(np.zeros(4), model_config())
