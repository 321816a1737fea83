"""Commands on a trained run's frozen encoder: ``evaluate``, ``embed``, ``sample``,
``train-decoder``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from probssl.cli.common import (
    add_command,
    add_data_dir_arg,
    add_device_arg,
    add_eval_args,
    add_input_convention_args,
    add_progress_arg,
    add_seed_arg,
    device_of,
    eval_config,
    float_arg,
    input_convention,
    int_arg,
)
from probssl.errors import UserError
from probssl.runs.format import load_run, write_json_atomic
from probssl.train.trackers import log_run_evaluation
from probssl.userio import atomic_write, check_output_dir, check_output_file


def format_eval(result: dict, what: str | None = None) -> str:
    """One line of the protocol's numbers; ``what`` names an external encoder (a run's
    result names its method, seed and epoch)."""
    knn = result["knn"]
    what = what or (f"{result['method']} on {result['dataset']} (seed {result['seed']}, "
                    f"epoch {result['epoch']})")
    return (f"{what}: kNN best {100 * knn['best']:.2f}% (k={knn['best_k']}), "
            f"kNN val-k {100 * result['knn_val_k']['accuracy']:.2f}% "
            f"(k={result['knn_val_k']['k']}), linear probe "
            f"{100 * result['linear_probe']['test_accuracy']:.2f}%"
            + (f", MLP probe {100 * result['mlp_probe']['test_accuracy']:.2f}%"
               if "mlp_probe" in result else "")
            + (f", GMM accuracy {100 * result['gmm']['accuracy']:.2f}% (NMI "
               f"{result['gmm']['nmi']:.3f}, ARI {result['gmm']['ari']:.3f})"
               if "gmm" in result else "")
            + (f", RankMe {result['rankme']['rank']:.2f} of {result['dim']} (label-free)"
               if "rankme" in result else ""))


def format_extras(result: dict) -> list[str]:
    lines = []
    if "likelihood" in result:
        lk = result["likelihood"]
        lines.append(f"held-out ELBO {lk['elbo']:.2f} nats, log p̂_{lk['k']} (importance-"
                     f"weighted, K={lk['k']}) {lk['iwae']:.2f} nats per test image "
                     f"({lk['likelihood']} likelihood)")
    if "mse" in result:
        lines.append(f"reconstruction MSE {result['mse']:.5f}")
    if "fid" in result:
        f = result["fid"]
        lines.append(f"{'FID' if f['inception'] else 'Fréchet distance'} {f['value']:.3f} "
                     f"({f['n']} samples; features: {f['features']})")
    if "factors" in result:
        lines.append("style/content factors: " + ", ".join(
            f"{k} {v['metric']} {v['value']:.3f}" for k, v in result["factors"].items()))
    if "attributes" in result:
        a = result["attributes"]
        mean = sum(a["attributes"].values()) / len(a["attributes"])
        lines.append(f"attributes ({a['probe']} probe): mean accuracy over "
                     f"{len(a['attributes'])} {100 * mean:.1f}%"
                     + (f", hair colour (5 classes) {100 * a['hair_colour']:.1f}%"
                        if "hair_colour" in a else ""))
    if "pair_retrieval" in result:
        pr = result["pair_retrieval"]
        lines.append(f"held-out pair retrieval (Eq. 34): top-1 {100 * pr['top1']:.1f}% among "
                     f"{pr['batch_size']} candidates (chance {100 * pr['chance']:.1f}%)")
    return lines


def cmd_evaluate_external(args: argparse.Namespace) -> int:
    """``evaluate --encoder SPEC`` or ``--embeddings TRAIN,TEST``: anyone's encoder."""
    from probssl.evaluate.external import (  # lazy: scikit-learn
        evaluate_embedding_files,
        evaluate_encoder,
        load_encoder,
    )

    if args.run is not None:
        raise UserError("evaluate: give a run directory, or --encoder/--embeddings, not both")
    if args.encoder and args.embeddings:
        raise UserError("evaluate: --encoder and --embeddings exclude each other")
    out = check_output_file(args.out) if args.out else None
    cfg = eval_config(args)
    if args.embeddings:
        files = args.embeddings.split(",")
        if len(files) != 2:
            raise UserError("--embeddings TRAIN.npz,TEST.npz: two files")
        result = evaluate_embedding_files(*files, cfg, args.dataset, args.data_dir)
        what = f"embeddings {args.embeddings}"
    else:
        if not args.dataset:
            raise UserError("evaluate --encoder: --dataset NAME is required")
        conv = input_convention(args)
        encoder, info = load_encoder(args.encoder, args.encoder_code)
        result = evaluate_encoder(encoder, args.dataset, cfg, conv, args.data_dir,
                                  device_of(args))
        result["encoder"] = info
        what = f"{info['format']} encoder {args.encoder}"
    print(format_eval(result, f"{what} on {result['dataset']}"))
    for line in format_extras(result):
        print(line)
    print(f"input: {result['input']}")
    print(cfg.footer())
    if out is not None:
        write_json_atomic(out, result)
        print(f"wrote {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from probssl.evaluate import evaluate_run  # lazy: scikit-learn
    from probssl.evaluate.protocol import extra_evaluations

    if args.encoder or args.embeddings:
        return cmd_evaluate_external(args)
    if args.run is None:
        raise UserError("evaluate: give a run directory, --encoder SPEC or --embeddings "
                        "TRAIN,TEST")
    cfg = eval_config(args)
    device = device_of(args)
    loaded = load_run(args.run, data_dir=args.data_dir, device=device)
    result = evaluate_run(loaded, cfg, device=device)
    result.update(extra_evaluations(loaded, cfg))
    write_json_atomic(Path(args.run) / "eval.json", result)
    log_run_evaluation(loaded, result)
    print(format_eval(result))
    for line in format_extras(result):
        print(line)
    print("kNN per k: " + " ".join(f"{k}:{100 * v:.1f}" for k, v in result["knn"]["per_k"].items()))
    print(cfg.footer())
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from probssl.evaluate import run_embeddings  # lazy: scikit-learn

    out = check_output_file(args.out)
    if out.suffix != ".npz":  # np.savez would silently append it
        out = check_output_file(out.with_name(out.name + ".npz"))
    device = device_of(args)
    loaded = load_run(args.run, data_dir=args.data_dir, device=device)
    z, y = run_embeddings(loaded, args.split, device=device)
    arrays = {"z": z} if y is None else {"z": z, "labels": y}
    atomic_write(out, lambda fh: np.savez(fh, **arrays))
    print(f"wrote {out}: z {z.shape}" + ("" if y is None else f", labels {y.shape}"))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from probssl.evaluate.generate import class_conditional_samples, frozen_decoder
    from probssl.experiments.figures import sample_grid  # lazy: matplotlib

    if args.out is not None:
        check_output_file(args.out)
    loaded = load_run(args.run, data_dir=args.data_dir)
    images, labels = class_conditional_samples(loaded, args.per_class, args.seed)
    _, source = frozen_decoder(loaded)
    out = Path(args.out) if args.out else Path(args.run) / "samples.png"
    sample_grid(images, labels, args.per_class, out,
                f"{loaded.resolved.train.method} on {loaded.resolved.data.name}: z ~ N(mean_y, "
                f"Cov_y) fitted per label, decoded ({source})")
    print(f"wrote {out}: {args.per_class} samples for each of {len(set(labels))} labels")
    return 0


def cmd_train_decoder_external(args: argparse.Namespace) -> int:
    """``train-decoder --encoder SPEC --dataset NAME --out DIR``: anyone's frozen encoder."""
    from probssl.evaluate.external import load_encoder, train_external_decoder

    if args.run is not None:
        raise UserError("train-decoder: give a run directory or --encoder, not both")
    if not args.dataset or not args.out:
        raise UserError("train-decoder --encoder: --dataset NAME and --out DIR are required")
    out = check_output_dir(args.out)
    conv = input_convention(args)
    encoder, info = load_encoder(args.encoder, args.encoder_code)
    record = train_external_decoder(
        encoder, args.dataset, out, conv, args.data_dir, device_of(args), arch=args.arch,
        fid_features=args.fid_features, fid_samples=args.fid_samples, seed=args.seed,
        progress=not args.no_progress, epochs=args.epochs, lr=args.lr,
        patience=args.patience)
    record["encoder"] = info
    write_json_atomic(out / "decoder.json", record)
    print(f"decoder fitted on the frozen {info['format']} encoder {args.encoder} "
          f"({record['epochs_run']} epochs, best validation MSE {record['val_mse']:.4f}): "
          f"test reconstruction MSE {record['mse']:.5f}")
    for line in format_extras({k: v for k, v in record.items() if k == "fid"}):
        print(line)
    print(f"input: {record['input']}")
    print(f"wrote {out / 'decoder.json'}, {out / 'decoder.pt'}, {out / 'reconstructions.png'}")
    return 0


def cmd_train_decoder(args: argparse.Namespace) -> int:
    from probssl.evaluate.generate import reconstruction_mse, train_decoder  # scikit-learn

    if args.encoder:
        return cmd_train_decoder_external(args)
    if args.run is None:
        raise UserError("train-decoder: give a run directory or --encoder SPEC")
    loaded = load_run(args.run, data_dir=args.data_dir)
    info = train_decoder(loaded, epochs=args.epochs, lr=args.lr, patience=args.patience,
                         progress=not args.no_progress)
    mse = reconstruction_mse(loaded, "test")
    print(f"decoder fitted on the frozen encoder of {args.run} (epoch {info['epoch']}): "
          f"{info['epochs_run']} epochs, best validation MSE {info['val_mse']:.4f}, "
          f"test MSE {mse:.4f} -> {Path(args.run) / 'decoder.pt'}")
    return 0


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run directory")
    add_data_dir_arg(p)


def _encoder_args(g) -> None:
    """--encoder, --encoder-code, --dataset and the input convention flags."""
    g.add_argument("--encoder", default=None, metavar="SPEC",
                   help="a torch.export .pt2, a TorchScript file, a probssl export (weights "
                        "with its .py beside), or weights (.pt/.safetensors) with "
                        "--encoder-code")
    g.add_argument("--encoder-code", default=None, metavar="MODULE:BUILDER",
                   help="a callable returning the nn.Module the weights load into "
                        "(module:fn or path/file.py:fn)")
    g.add_argument("--dataset", default=None, help="the dataset to evaluate on")
    add_input_convention_args(g)


def register(subparsers) -> None:
    p = add_command(subparsers, "evaluate", cmd_evaluate,
                    "the frozen-encoder protocol on a run, or on any encoder (--encoder) or "
                    "features (--embeddings)")
    p.add_argument("run", nargs="?", default=None, help="run directory")
    add_data_dir_arg(p)
    add_device_arg(p)
    add_eval_args(p)
    g = p.add_argument_group("any encoder (instead of a run directory)")
    _encoder_args(g)
    g.add_argument("--embeddings", default=None, metavar="TRAIN.npz,TEST.npz",
                   help="precomputed features: arrays z and y (or labels)")
    g.add_argument("--out", default=None, help="write the result as JSON")

    p = add_command(subparsers, "embed", cmd_embed,
                    "write a split's encoder means and labels to .npz")
    _run_args(p)
    add_device_arg(p)
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--out", required=True)

    p = add_command(subparsers, "sample", cmd_sample,
                    "class-conditional samples: a Gaussian per label, decoded")
    _run_args(p)
    p.add_argument("--per-class", type=int_arg(1, 1000), default=8)
    add_seed_arg(p)
    p.add_argument("--out", default=None, help="PNG path (default RUN/samples.png)")

    p = add_command(subparsers, "train-decoder", cmd_train_decoder,
                    "fit a decoder on a run's frozen encoder, or on any encoder (--encoder) "
                    "(MSE, early stopping)")
    p.add_argument("run", nargs="?", default=None, help="run directory")
    add_data_dir_arg(p)
    p.add_argument("--epochs", type=int_arg(1, 1_000_000), default=200)
    p.add_argument("--lr", type=float_arg(0, lo_open=True), default=1e-4)
    p.add_argument("--patience", type=int_arg(1, 1_000_000), default=10)
    add_progress_arg(p)
    g = p.add_argument_group("any encoder (instead of a run directory)")
    _encoder_args(g)
    g.add_argument("--arch", default="mlp", choices=("mlp", "resnet"),
                   help="the decoder's architecture (default mlp)")
    g.add_argument("--out", default=None, help="folder for decoder.pt, decoder.json and "
                   "reconstructions.png")
    g.add_argument("--fid-features", default="classifier",
                   help="classifier (offline, not comparable to Inception FID), "
                        "inception:PATH or none")
    g.add_argument("--fid-samples", type=int_arg(2, 1_000_000), default=5000)
    g.add_argument("--seed", type=int_arg(), default=0)
    add_device_arg(g)
