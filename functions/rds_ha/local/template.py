"""Read template.yaml (CloudFormation YAML with its short-form tags) for the CLI and tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {f"Fn::{suffix}" if suffix not in {"Ref", "Condition"} else suffix: value}


_CfnLoader.add_multi_constructor("!", _tag)


def find_template(start: Path | None = None) -> Path | None:
    """template.yaml in the working directory or above, else beside the source checkout."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "template.yaml").is_file():
            return folder / "template.yaml"
    checkout = Path(__file__).resolve().parents[3] / "template.yaml"
    return checkout if checkout.is_file() else None


def load_template(path: Path) -> dict[str, Any]:
    # _CfnLoader is a SafeLoader subclass: it builds no Python objects from tags.
    data = yaml.load(path.read_text(), Loader=_CfnLoader)  # noqa: S506 # nosec B506
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a CloudFormation template")
    return data


def function_handlers(template: dict[str, Any]) -> dict[str, str]:
    """Logical id -> Handler of every AWS::Serverless::Function (Globals applied)."""
    default = template.get("Globals", {}).get("Function", {}).get("Handler")
    out = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") == "AWS::Serverless::Function":
            handler = resource.get("Properties", {}).get("Handler", default)
            if handler:
                out[logical_id] = handler
    return out
