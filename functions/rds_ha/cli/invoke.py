"""Run a template.yaml function's handler in this process, as `sam local invoke` would without Docker."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from ..core.errors import RdsHaError
from ..local.context import LocalContext
from ..local.template import find_template, function_handlers, load_template


def resolve_handler(function: str, template: Path | None = None) -> Any:
    path = template or find_template()
    if path is None:
        raise RdsHaError("template.yaml not found here or above; pass --template")
    handlers = function_handlers(load_template(path))
    if function not in handlers:
        raise RdsHaError(f"{path} has no function {function!r} (functions: {', '.join(sorted(handlers))})")
    module_name, _, attr = handlers[function].rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise RdsHaError(f"handler {handlers[function]} of {function} cannot be imported: {exc}") from exc


def invoke(function: str, event: Any, template: Path | None = None, timeout: float = 300) -> Any:
    handler = resolve_handler(function, template)
    return handler(event, LocalContext(function_name=function, timeout_seconds=timeout))
