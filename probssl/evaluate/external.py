"""Evaluate anyone's encoder: load it from a file, feed it a dataset under a stated input
convention, and run the frozen-encoder protocol (kNN, probes, GMM, RankMe; per-factor probes
on data with generative factors such as ``shapes``, attribute probes on CelebA) on its
outputs. ``probssl train-decoder --encoder SPEC`` fits a decoder to it for reconstructions
and FID.

Encoder specs (``probssl evaluate --encoder SPEC``):

* ``NAME.pt2``: a ``torch.export`` program (``torch.export.load``);
* a TorchScript archive (``torch.jit.save``; any suffix);
* a probssl export: weights (``.pt`` state_dict or ``.safetensors``) with the generated
  ``.py`` beside it (``probssl export``); its representation is the first ``LATENT_DIM``
  outputs (the posterior mean);
* weights (``.pt`` state_dict or ``.safetensors``) plus ``--encoder-code module:builder``, a
  Python callable (importable, or ``path/to/file.py:builder``) returning the ``nn.Module``.

Weights load with ``weights_only=True`` or safetensors: no file executes code by being read
(the ``--encoder-code`` module and a probssl export's ``.py`` are code you chose to run).

Input convention: the dataset's own preprocessing by default (float in [0, 1], the dataset's
size, MNIST's binarisation), then the user's ``InputConvention`` (range, resize, binarise,
normalise). What the protocol ran on is written into the result, so two encoders are only
compared under the same convention. The encoder's output is flattened to (N, d); a tuple
output counts by its first element.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from probssl.data import get_preset, load_dataset
from probssl.data.augment import preprocess
from probssl.errors import UserError, exception_line
from probssl.evaluate.protocol import EvalConfig, dataset_extras, evaluate_embeddings
from probssl.userio import read_bytes, read_npz


@dataclass(frozen=True)
class InputConvention:
    """How images reach the encoder, after the dataset's own preprocessing (``[0, 1]``
    floats): ``range`` "0-1" or "-1-1" (x ↦ 2x − 1), ``resize`` to N × N, ``binarize`` at a
    threshold ("dataset": the dataset's own, e.g. 0.5 on MNIST; None: never), ``normalize``
    (per-channel means and standard deviations, after the range)."""

    range: str = "0-1"
    resize: int | None = None
    binarize: float | str | None = "dataset"
    normalize: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        if self.range not in ("0-1", "-1-1"):
            raise UserError(f"--input-range must be 0-1 or -1-1, not {self.range!r}")
        if self.resize is not None and not 1 <= self.resize <= 4096:
            raise UserError(f"--resize must be in 1..4096, not {self.resize}")
        if self.normalize is not None:
            mean, std = self.normalize
            if len(mean) != len(std) or not all(s > 0 for s in std):
                raise UserError("--normalize MEAN,STD: as many means as standard deviations, "
                                "every standard deviation > 0")

    def apply(self, x: torch.Tensor, dataset_cfg) -> torch.Tensor:
        """uint8 or float images (N, C, H, W) -> what the encoder receives."""
        cfg = dataset_cfg
        if self.binarize != "dataset":
            cfg = replace(cfg, binarize=self.binarize)
        if self.resize is not None:
            cfg = replace(cfg, output_size=(self.resize, self.resize))
        x = preprocess(x, cfg)
        if self.range == "-1-1":
            x = 2 * x - 1
        if self.normalize is not None:
            mean, std = (torch.tensor(v, dtype=x.dtype, device=x.device) for v in self.normalize)
            if len(mean) not in (1, x.shape[1]):
                raise UserError(f"--normalize has {len(mean)} channel values; the images have "
                                f"{x.shape[1]} channels")
            x = (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
        return x


def parse_normalize(text: str | None) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """``"0.5,0.25"`` or ``"0.49:0.48:0.45,0.25:0.24:0.26"`` (per channel) -> (means, stds)."""
    if text is None:
        return None
    try:
        mean, std = text.split(",")
        return (tuple(float(v) for v in mean.split(":")),
                tuple(float(v) for v in std.split(":")))
    except ValueError:
        raise UserError(f"--normalize {text!r}: expected MEAN,STD (per channel: "
                        "m1:m2:m3,s1:s2:s3)") from None


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    data = read_bytes(path, "encoder weights")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load as load_safetensors  # an optional extra

            return load_safetensors(data)
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except ImportError:
        raise UserError(f"{path}: reading safetensors needs the safetensors package: pip "
                        "install 'probssl[safetensors]'") from None
    except Exception as exc:  # not a weights file, or one that would run code
        raise UserError(f"{path}: not a readable state_dict "
                        f"({exception_line(exc, with_type=True)})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise UserError(f"{path}: not a state_dict (a mapping of names to tensors)")
    return state


def _builder(code: str) -> tuple[Callable[[], torch.nn.Module], Any]:
    """``module:builder`` or ``path/to/file.py:builder`` -> (the callable, its module)."""
    where, sep, name = code.rpartition(":")
    if not sep or not where or not name:
        raise UserError(f"--encoder-code {code!r}: expected module:builder or file.py:builder")
    try:
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(Path(where).stem, where)
            if spec is None or spec.loader is None or not Path(where).is_file():
                raise UserError(f"--encoder-code: no Python file {where}")
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code failed to import
        raise UserError(f"--encoder-code {code!r}: cannot import {where} "
                        f"({exception_line(exc, with_type=True)})") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise UserError(f"--encoder-code {code!r}: {where} has no callable {name!r}")
    return fn, module


def load_encoder(spec: str, code: str | None = None) -> tuple[Callable, dict[str, Any]]:
    """The encoder a spec names (module docstring) as a callable, and what it was."""
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--encoder {spec}: no such file")
    if path.suffix == ".pt2":
        try:
            net = torch.export.load(path).module()
        except Exception as exc:  # noqa: BLE001 - a damaged or foreign file
            raise UserError(f"{path}: not a torch.export program "
                            f"({exception_line(exc, with_type=True)})") from None
        return net, {"format": "torch-export", "file": str(path)}
    scripted = _torchscript(path) if code is None and path.suffix != ".safetensors" else None
    if scripted is not None:
        return scripted.eval(), {"format": "torchscript", "file": str(path)}
    state = _load_weights(path)
    latent_dim = None
    if code is not None:
        (builder, _), kind = _builder(code), "state_dict+code"
    else:
        src = path.with_suffix(".py")
        if not src.is_file():
            raise UserError(f"--encoder {path}: weights without code; pass --encoder-code "
                            f"module:builder (or keep the {src.name} that probssl export wrote "
                            "beside it)")
        (builder, module), kind = _builder(f"{src}:build_encoder"), "probssl-export"
        latent_dim = getattr(module, "LATENT_DIM", None)
    try:
        net = builder()
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - the weights do not fit the network
        raise UserError(f"{path} does not fit the network {code or 'of its .py'} builds "
                        f"({exception_line(exc)})") from None
    net.eval()
    info: dict[str, Any] = {"format": kind, "file": str(path)}
    if code is not None:
        info["code"] = code
    if latent_dim is not None:
        return _first(net, int(latent_dim)), {**info, "latent_dim": int(latent_dim)}
    return net, info


def _torchscript(path: Path) -> torch.jit.ScriptModule | None:
    """The TorchScript module in ``path``, or None when it is not one (loaded once)."""
    try:
        return torch.jit.load(str(path), map_location="cpu")
    except Exception:  # noqa: BLE001 - anything else is not TorchScript
        return None


def _first(net: torch.nn.Module, n: int) -> Callable:
    def encode(x: torch.Tensor) -> torch.Tensor:
        return net(x)[:, :n]
    return encode


def _as_codes(out: Any) -> torch.Tensor:
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise UserError(f"the encoder returned {type(out).__name__}, not a tensor")
    return out.flatten(1)


def frozen_codes(encoder: Callable, x: torch.Tensor, convention: InputConvention, dataset_cfg,
                 device: str | torch.device = "cpu", batch_size: int = 512) -> np.ndarray:
    """(N, d) outputs of ``encoder`` on images ``x`` under ``convention``, checked: a first
    batch of two images says clearly if the shape or range does not fit."""
    probe = convention.apply(x[:2], dataset_cfg).to(device)
    try:
        with torch.no_grad():
            first = _as_codes(encoder(probe))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's network rejected the input
        raise UserError(f"the encoder does not accept inputs of shape {tuple(probe.shape)} "
                        f"(range {convention.range}; set --resize, --input-range or "
                        f"--normalize to its convention): {exception_line(exc)}") from None
    if first.shape[0] != len(probe):
        raise UserError(f"the encoder returned {first.shape[0]} rows for {len(probe)} images")

    parts = []
    with torch.no_grad():  # images go to the device as stored (uint8): the convention converts
        for start in range(0, len(x), batch_size):
            xb = convention.apply(x[start:start + batch_size].to(device), dataset_cfg)
            parts.append(_as_codes(encoder(xb)).float().cpu())
    z = torch.cat(parts).numpy()
    if not np.isfinite(z).all():
        raise UserError(f"the encoder's outputs are not all finite ({int((~np.isfinite(z)).sum())}"
                        " values): is the input range or normalisation the one it expects?")
    return z


def evaluate_encoder(encoder: Callable, dataset: str, cfg: EvalConfig,
                     convention: InputConvention = InputConvention(),
                     data_dir: str | None = None, device: str | torch.device = "cpu"
                     ) -> dict[str, Any]:
    """The frozen-encoder protocol on any encoder callable, over a dataset's splits."""
    data = load_dataset(dataset, data_dir)
    aug = get_preset(data.augmentation)
    z_train = frozen_codes(encoder, data.x_train, convention, aug, device)
    z_test = frozen_codes(encoder, data.x_test, convention, aug, device)
    y_train = None if data.y_train is None else data.y_train.numpy()
    y_test = None if data.y_test is None else data.y_test.numpy()
    out = evaluate_embeddings(z_train, y_train, z_test, y_test, cfg)
    out.update(dataset_extras(data, z_train, z_test, cfg))  # factors (shapes), attributes
    return {**out, "dataset": dataset, "input": _convention_record(convention, aug)}


def _convention_record(conv: InputConvention, aug) -> dict[str, Any]:
    return {"range": conv.range,
            "size": conv.resize or (list(aug.output_size) if aug.output_size else "native"),
            "binarize": aug.binarize if conv.binarize == "dataset" else conv.binarize,
            "normalize": None if conv.normalize is None else [list(v) for v in conv.normalize]}


def evaluate_embedding_files(train: str, test: str, cfg: EvalConfig,
                             dataset: str | None = None, data_dir: str | None = None
                             ) -> dict[str, Any]:
    """The protocol on precomputed features: two ``.npz`` files with ``z`` (N, d) and labels
    (``y`` or ``labels``; else the dataset's, which then must match in length)."""
    arrays = [read_npz(Path(p), f"--embeddings {p}") for p in (train, test)]
    zs, ys = [], []
    data = load_dataset(dataset, data_dir) if dataset else None
    for (name, arr), split in zip(zip((train, test), arrays, strict=True), ("train", "test"),
                                  strict=True):
        if "z" not in arr:
            raise UserError(f"--embeddings {name}: no array 'z' (N, d)")
        z = np.asarray(arr["z"], dtype=np.float32).reshape(len(arr["z"]), -1)
        y = arr.get("y", arr.get("labels"))
        if y is None and data is not None:
            y = getattr(data, f"y_{split}")
            y = None if y is None else y.numpy()
        if y is None:
            raise UserError(f"--embeddings {name}: no labels (arrays 'y' or 'labels'); pass "
                            "--dataset to take them from the dataset")
        if len(y) != len(z):
            raise UserError(f"--embeddings {name}: {len(z)} rows of z but {len(y)} labels")
        if not np.isfinite(z).all():
            raise UserError(f"--embeddings {name}: z has non-finite values")
        zs.append(z)
        ys.append(np.asarray(y).astype(np.int64))
    out = evaluate_embeddings(zs[0], ys[0], zs[1], ys[1], cfg)
    if data is not None and len(zs[0]) == len(data.x_train) and len(zs[1]) == len(data.x_test):
        out.update(dataset_extras(data, zs[0], zs[1], cfg))  # rows follow the dataset's order
    return {**out, "dataset": dataset, "input": "precomputed embeddings"}



def train_external_decoder(encoder: Callable, dataset: str, out_dir: Path,
                           convention: InputConvention = InputConvention(),
                           data_dir: str | None = None, device: str | torch.device = "cpu",
                           arch: str = "mlp", fid_features: str = "classifier",
                           fid_samples: int = 5000, seed: int = 0, progress: bool = True,
                           **fit: Any) -> dict[str, Any]:
    """A decoder fitted to a frozen external encoder (:func:`~probssl.evaluate.generate.
    fit_decoder` on its codes of the training images, the dataset's own [0, 1] images as
    targets), then its test reconstruction MSE and the Fréchet distance of images decoded
    from a Gaussian fitted to the training codes — what ``train-decoder`` and ``evaluate``
    report for a run. Writes ``OUT/decoder.pt`` and ``OUT/reconstructions.png``; returns the
    record (``train-decoder --encoder`` writes it as ``OUT/decoder.json``)."""
    from probssl.evaluate.fid import fid_record, load_feature_extractor
    from probssl.evaluate.generate import (
        decoded_gaussian_samples,
        fit_decoder,
        save_decoder_file,
    )
    from probssl.experiments.figures import reconstruction_grid  # lazy: matplotlib
    from probssl.nn import build_decoder

    data = load_dataset(dataset, data_dir)
    aug = get_preset(data.augmentation)
    z_train = frozen_codes(encoder, data.x_train, convention, aug, device)
    z_test = frozen_codes(encoder, data.x_test, convention, aug, device)
    x_train, x_test = preprocess(data.x_train, aug), preprocess(data.x_test, aug)
    torch.manual_seed(seed)
    decoder = build_decoder(arch, z_train.shape[1], tuple(x_train.shape[1:]))
    state, info = fit_decoder(decoder, torch.from_numpy(z_train), x_train, seed=seed,
                              progress=progress, **fit)
    with torch.no_grad():
        recon = torch.cat([torch.sigmoid(decoder(torch.from_numpy(z_test[i:i + 512])).float())
                           for i in range(0, len(z_test), 512)])
    record: dict[str, Any] = {"dataset": dataset, "arch": arch, **info,
                              "mse": float(torch.nn.functional.mse_loss(recon, x_test)),
                              "input": _convention_record(convention, aug)}
    if fid_features != "none" and data.y_train is not None:
        extractor = load_feature_extractor(fid_features, x_train, data.y_train,
                                           key=(data.name, data.augmentation), seed=seed)
        n = min(fid_samples, len(x_test))
        record["fid"] = fid_record(extractor, x_test[:n],
                                   decoded_gaussian_samples(decoder, z_train, n, seed))
    out_dir.mkdir(parents=True, exist_ok=True)
    save_decoder_file(out_dir / "decoder.pt", state, {"epoch": 0, **info})
    reconstruction_grid(x_test[:8], recon[:8], out_dir / "reconstructions.png",
                        f"decoder fitted to a frozen external encoder on {dataset}")
    return record
