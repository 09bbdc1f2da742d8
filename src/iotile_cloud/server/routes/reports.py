"""Streamer reports: records (``/streamer/report/``), upload, and event uploads."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
