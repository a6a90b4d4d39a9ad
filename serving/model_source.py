"""Where the service's ONNX file comes from: the BentoML model store (`eeg2arm:latest`), or $EEG2ARM_ONNX.

`eeg2arm export --bentoml` puts the exported file into the store (under $BENTOML_HOME, default ~/bentoml);
`bentoml build` then packs that model into the bento. For a quick local run without the store, point
EEG2ARM_ONNX at an exported file before `bentoml serve`.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eeg2arm.config import EEGConfig
from eeg2arm.errors import UserInputError
from export.step import step_path

if TYPE_CHECKING:
    import bentoml

MODEL_NAME = "eeg2arm"
ONNX_FILE = "model.onnx"
ENV_ONNX = "EEG2ARM_ONNX"


def store_home() -> str:
    return os.environ.get("BENTOML_HOME", "~/bentoml")


def save_to_store(onnx_path: str | Path, config: EEGConfig, version: str) -> str:
    """Copy an exported ONNX file (and its step graph) into the BentoML model store as `eeg2arm`; return the tag.

    Metadata values must be basic types, so the config goes in as one JSON string.
    """
    import bentoml

    metadata = {"config": config.to_json(), "version": version, "n_classes": config.n_classes,
                "input": f"x (B, {config.n_electrodes}, {config.n_bands}, T>={config.min_frames})"}
    step = step_path(onnx_path)
    try:  # a failure inside create() removes the half-made model from the store
        with bentoml.models.create(MODEL_NAME, metadata=metadata, labels={"format": "onnx"}) as model:
            shutil.copyfile(onnx_path, model.path_of(ONNX_FILE))
            if step.is_file():  # the streaming step graph, when the model can stream
                shutil.copyfile(step, step_path(model.path_of(ONNX_FILE)))
    except (OSError, bentoml.exceptions.BentoMLException) as e:
        raise UserInputError(f"cannot save to the BentoML model store at {store_home()} ({type(e).__name__}: {e}): "
                             f"make it writable or set BENTOML_HOME") from None
    return str(model.tag)


def store_model() -> "bentoml.models.BentoModel | None":
    """The store model a service declares (so `bentoml build` packs it), or None when $EEG2ARM_ONNX is set.

    Declaring it makes `bentoml serve` insist that it exists, hence nothing is declared for a local file.
    """
    if os.environ.get(ENV_ONNX):
        return None
    import bentoml

    return bentoml.models.BentoModel(f"{MODEL_NAME}:latest")


def resolve_onnx(model: "bentoml.models.BentoModel | bentoml.Model | None") -> Path:
    """The ONNX file to serve: $EEG2ARM_ONNX when set, else the file of the declared store model (the declaration
    itself, or the stored model a service instance sees through it)."""
    if model is None:
        path = Path(os.environ[ENV_ONNX])
        if not path.is_file():
            raise UserInputError(f"{ENV_ONNX}={path} is not a file: point it at a model exported with "
                                 f"`eeg2arm export`, or unset it to serve {MODEL_NAME}:latest from the model store")
        return path
    if hasattr(model, "path_of"):  # the stored model itself
        return Path(model.path_of(ONNX_FILE))
    if model.stored is None:  # (resolve() would say only that it found no model, nor a cloud to fetch it from)
        raise UserInputError(f"no model {MODEL_NAME} in the BentoML model store at {store_home()}: put one there "
                             f"with `eeg2arm export --ckpt CKPT --out model.onnx --bentoml` (make demo's store: "
                             f"BENTOML_HOME=out/bentoml), or serve a file: {ENV_ONNX}=model.onnx bentoml serve")
    return Path(model.resolve().path_of(ONNX_FILE))


def check_model(path: Path) -> EEGConfig:
    """Load the model as the service will, on CPU, run it once, and return its config; UserInputError with the
    reason when it cannot be served (not ONNX, the step graph itself, external data ONNX Runtime refuses, a graph
    that does not run on windows of its metadata's shape, a step graph from another export, ...).

    The service calls this when its module is imported, so a bad model stops `bentoml serve` in its first process
    with that reason; found in a worker's __init__, it would restart the worker forever.
    """
    from export.metadata import check_batch_graph, read_onnx_metadata
    from export.session import make_session
    from export.step import step_beside

    config, meta = read_onnx_metadata(path)
    check_batch_graph(meta, path)
    check_external_data(path)
    check_graph_runs(make_session(path, "cpu"), config, path)
    step_beside(path, "cpu")
    return config


def check_graph_runs(session: Any, config: EEGConfig, path: Path) -> None:
    """UserInputError unless the graph answers two windows of its metadata's shape (2, C, F, min_T) with finite
    probabilities (2, K): a graph from another model than its metadata would start, then answer every request 500."""
    from export.session import ORT_ERRORS, RUN_ERRORS

    shape = (2, config.n_electrodes, config.n_bands, config.min_frames)
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    problem = None
    try:
        probs = session.run(["probs"], {"x": x})[0]
    except (*ORT_ERRORS, *RUN_ERRORS) as e:
        problem = str(e).strip().splitlines()[0][:160]
    else:
        if probs.shape != (2, config.n_classes) or not np.isfinite(probs).all():
            problem = f"probabilities of shape {probs.shape}, not (2, {config.n_classes}) finite values"
    if problem is not None:
        raise UserInputError(f"{path}: its graph does not answer windows of its metadata's shape {shape} ({problem}): "
                             f"the graph and its metadata belong to different models; export the model again")


def model_identity(path: Path, model: "bentoml.Model | None", export_id: str) -> dict[str, str]:
    """What /metadata says the model is, never where it lies: the store's name and version (for a file: its name
    and the export's id) and the SHA-256 of its content (model.onnx and any external data files, in name order)."""
    import onnx

    digest = hashlib.sha256(path.read_bytes())
    proto = onnx.load(path, load_external_data=False)
    locations = {e.value for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
                 for e in t.external_data if e.key == "location"}
    for location in sorted(locations):
        digest.update((path.parent / location).read_bytes())
    if model is None:
        return {"name": path.name, "version": export_id, "sha256": digest.hexdigest(), "source": "file"}
    return {"name": model.tag.name, "version": model.tag.version, "sha256": digest.hexdigest(), "source": "store"}


def check_external_data(path: Path) -> None:
    """UserInputError when a tensor's external data file lies outside the model's folder (or is missing)."""
    import onnx

    folder = path.resolve().parent
    proto = onnx.load(path, load_external_data=False)
    for tensor in proto.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = next(e.value for e in tensor.external_data if e.key == "location")
        data = (folder / location).resolve()
        if not data.is_relative_to(folder) or not data.is_file():
            where = "outside the model's folder" if not data.is_relative_to(folder) else "missing"
            raise UserInputError(f"{path}: the external data of tensor {tensor.name[:80]!r} is {where} "
                                 f"({location[:80]!r}); keep a model's data files beside it, as `eeg2arm export` "
                                 f"writes them")
