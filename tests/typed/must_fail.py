"""Calls the ``jobkit.mypy`` plugin must refuse. Each refused line ends with a comment
naming mypy's error code (``# error: [code]``); tests/unit/test_typed_usage.py checks
that exactly those lines fail, with those codes."""

from __future__ import annotations

from tests.typed.usage import Greet, Ping, Resize, ResizeImage, Tag, Thumbnail


def refused() -> None:
    Resize.dispatch(url="https://x/y.png", widht=128)  # error: [call-arg]
    Resize.dispatch(url="https://x/y.png", width="128")  # error: [arg-type]
    Resize.dispatch(width=128)  # error: [call-arg]
    Resize.dispatch(url="https://x/y.png", priority="high")  # error: [arg-type]
    Thumbnail.dispatch(url=b"https://x/y.png")  # error: [arg-type]
    Greet.dispatch(whom="world")  # error: [call-arg]
    Greet.dispatch()  # error: [call-arg]
    ResizeImage.dispatch(url="https://x/y.png", width=None)  # error: [arg-type]
    ResizeImage.delay("https://x/y.png", 128, 96)  # error: [call-arg]
    ResizeImage.delay(128)  # error: [arg-type]
    Ping.dispatch(who="world")  # error: [call-arg]
    Tag.dispatch(label="new")  # error: [call-arg]
