"""The web console at `/ui`: every page of it, as one router for `create_app`."""

from __future__ import annotations

from fastapi import APIRouter

from taskrunner.ui import flows, login, tasks

router = APIRouter(include_in_schema=False)
router.include_router(tasks.router)
router.include_router(flows.router)
router.include_router(login.router)
