"""ONNX `metadata_props` of an eeg2arm export: the EEGConfig as JSON, the checkpoint's version, parity figures.

All values are strings (ONNX allows nothing else); JSON where the value is structured. The same parser reads them
from an `onnx.ModelProto` (read_onnx_metadata) and from ONNX Runtime's `custom_metadata_map` (session.py).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError

PREFIX = "eeg2arm."
CONFIG_KEY = PREFIX + "config"
STEP_SUFFIX = ".step.onnx"  # model.onnx's streaming step graph is model.step.onnx beside it


def set_metadata(proto: onnx.ModelProto, config: EEGConfig, **fields: Any) -> None:
    """Write the config and `fields` (version, example_input_shape, parity, ...) into proto.metadata_props.

    Keys already there are replaced; other props (none from the exporter today) are kept.
    """
    props = {p.key: p.value for p in proto.metadata_props}
    props[CONFIG_KEY] = config.to_json()
    props[PREFIX + "n_classes"] = str(config.n_classes)
    if config.class_names is not None:
        props[PREFIX + "class_names"] = json.dumps(list(config.class_names))
    props.update({PREFIX + k: json.dumps(v) for k, v in fields.items()})
    onnx.helper.set_model_props(proto, props)


def parse_metadata(props: Mapping[str, str], source: str | Path) -> tuple[EEGConfig, dict[str, Any]]:
    """(EEGConfig, {version, example_input_shape, parity, ...}) from metadata props; UserInputError if foreign."""
    if CONFIG_KEY not in props:
        raise UserInputError(f"{source} has no eeg2arm config in its metadata: it was not written by "
                             f"`eeg2arm export`; export the model again")
    config = EEGConfig.from_json(props[CONFIG_KEY])
    meta = {}
    for key, value in props.items():
        name = key.removeprefix(PREFIX)
        if not key.startswith(PREFIX) or key == CONFIG_KEY or name in ("n_classes", "class_names"):
            continue  # n_classes and class_names are copies of the config's, for readers without EEGConfig
        try:
            meta[name] = json.loads(value)
        except json.JSONDecodeError:
            raise UserInputError(f"{source}: metadata {key!r} is not valid JSON; export the model again") from None
    if "example_input_shape" in meta:
        meta["example_input_shape"] = tuple(meta["example_input_shape"])
    return config, meta


def check_batch_graph(meta: Mapping[str, Any], source: str | Path) -> None:
    """UserInputError when the metadata `meta` of `source` are a streaming step graph's (model.step.onnx, which
    takes frames and state, not windows): the batch graph beside it is the model to predict or serve with."""
    if meta.get("graph") == "step":
        name = Path(str(source)).name
        batch = name.removesuffix(STEP_SUFFIX) + ".onnx" if name.endswith(STEP_SUFFIX) else "model.onnx"
        raise UserInputError(f"{source} is the streaming step graph of an export, which takes frames and state, "
                             f"not windows: use the batch graph {batch} written beside it")


def read_onnx_metadata(path: str | Path) -> tuple[EEGConfig, dict[str, Any]]:
    """Read an exported model's config (the same EEGConfig as in the checkpoint) and its other metadata."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(path, load_external_data=False)
    except (DecodeError, OSError, ValueError) as e:
        raise UserInputError(f"{path} is not a readable ONNX model ({type(e).__name__}); export it again") from None
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, path)
