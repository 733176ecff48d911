"""Validation of operator feedback reports before they are published."""

from __future__ import annotations

import json

import pytest

from defectline.config import load_config
from defectline.streams.feedback import FeedbackRejectedError, check_feedback, parse_feedback_body


def body(**fields: object) -> bytes:
    return json.dumps(
        {"label": "false-reject", "camera_id": "cam-1", "frame_id": "f-1"} | fields
    ).encode()


def test_valid_report_is_parsed():
    feedback = parse_feedback_body(body(class_name="scratch"))
    check_feedback(load_config(environ={}), feedback)
    assert feedback.camera_id == "cam-1"
    assert feedback.class_name == "scratch"


def test_unknown_key_is_rejected():
    with pytest.raises(FeedbackRejectedError, match=r"unknown key\(s\) \['extra'\]"):
        parse_feedback_body(body(extra=1))


def test_empty_body_is_named():
    with pytest.raises(FeedbackRejectedError, match="request body is empty"):
        parse_feedback_body(b"")


def test_unknown_class_is_rejected():
    feedback = parse_feedback_body(body(class_name="nosuchclass"))
    with pytest.raises(FeedbackRejectedError, match="class 'nosuchclass' is not a class of model"):
        check_feedback(load_config(environ={}), feedback)


def test_unknown_camera_is_rejected():
    feedback = parse_feedback_body(body(camera_id="cam-9"))
    with pytest.raises(FeedbackRejectedError, match="camera 'cam-9' is not in the plant"):
        check_feedback(load_config(environ={}), feedback)
