"""A Streamlit progress bar fed by protoviz's one progress protocol (rate and time left included)."""

from __future__ import annotations

import streamlit as st

from protoviz.progress import ProgressReading, ProgressTracker


class BarProgress(ProgressTracker):
    """``progress(done, total, stage)`` drawing ``label: stage: done/total images · rate · time left``;
    :meth:`close` removes the bar."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar = st.progress(0.0, text=f"{label}: starting ...")
        super().__init__(self._show)

    def _show(self, reading: ProgressReading) -> None:
        self.bar.progress(reading.fraction or 0.0, text=f"{self.label}: {reading.describe()}")

    def close(self) -> None:
        self.bar.empty()
