"""Inference throughput of the land-cover U-Net and the change detector, in megapixels per second.

Model-only: a synthetic uint16 batch already on the device, scaled there and run
(bf16 autocast and channels-last on CUDA). End to end: read a Zarr composite, predict
tile by tile (uint16 upload, on-device scaling), write the result to Zarr. On CUDA the
GPU busy time of the model (torch.cuda.Event) is reported against wall time.

    .venv/bin/python bench/inference_bench.py --size 512 --width 32 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench._sizes import add_size_flags, apply_size_flags
from memories.ai.change import ChangeDetector, predict_change
from memories.ai.land_cover import LandCoverUNet, predict_land_cover
from memories.ai.tiling import dn_scaling, upload_reflectance


def model_only(fn, model, batch: np.ndarray, device: torch.device, repeats: int) -> tuple[float, float | None]:
    """(seconds per run, GPU busy seconds per run or None) of ``fn`` on a batch already on the device."""
    scale, offset = dn_scaling(None, None, batch.shape[1], device)
    x = torch.from_numpy(batch).to(device)
    cuda = device.type == "cuda"
    busy = 0.0
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=cuda):
        fn(upload_reflectance(batch[:1], device, scale=scale, offset=offset))  # warm-up
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            ev0, ev1 = (
                (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) if cuda else (None, None)
            )
            if ev0 is not None:
                ev0.record()
            refl = (x.float() * scale + offset).masked_fill(x == 0, float("nan"))
            if cuda:
                refl = refl.contiguous(memory_format=torch.channels_last)
            fn(refl)
            if ev1 is not None and ev0 is not None:
                ev1.record()
                torch.cuda.synchronize()
                busy += ev0.elapsed_time(ev1) / 1000
    wall = (time.perf_counter() - start) / repeats
    return wall, (busy / repeats if cuda else None)


QUICK = {"size": 128, "width": 16, "batch": 2, "repeats": 1}
FULL = {"size": 2048, "width": 32, "repeats": 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="scene side, pixels")
    ap.add_argument("--width", type=int, default=32, help="U-Net width")
    ap.add_argument("--batch", type=int, default=4, help="tiles per batch (model-only)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    add_size_flags(ap)
    args = apply_size_flags(ap.parse_args(), QUICK, FULL)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    lc = LandCoverUNet(6, width=args.width).to(device).eval()
    cd = ChangeDetector(6, width=args.width).to(device).eval()
    if device.type == "cuda":
        lc.to(memory_format=torch.channels_last)
        cd.to(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    side = args.size
    dn = rng.integers(1, 6000, (6, side, side), dtype=np.uint16)
    dn2 = rng.integers(1, 6000, (6, side, side), dtype=np.uint16)
    tile = min(side, 512)
    mpx_batch = args.batch * tile * tile / 1e6
    print(f"device={device} size={side} width={args.width} tiles/batch={args.batch} ({torch.__version__})")
    results = {}
    for name, model, fn, ch in (
        ("land_cover", lc, lc.class_probabilities, 6),
        ("change", cd, cd.change_probability, 12),
    ):
        batch = rng.integers(1, 6000, (args.batch, ch, tile, tile), dtype=np.uint16)
        wall, busy = model_only(fn, model, batch, device, args.repeats)
        results[name] = mpx_batch / wall
        print(
            f"{name:<11} model-only   {mpx_batch / wall:8.2f} Mpx/s" + (f"  GPU busy {busy / wall:.0%}" if busy else "")
        )
    summary: dict[str, object] = {"device": str(device), "size": side, "width": args.width}
    summary.update({f"{k}_model_only_mpx_s": round(v, 2) for k, v in results.items()})
    with tempfile.TemporaryDirectory() as tmp:
        group = zarr.open_group(f"{tmp}/bench.zarr", mode="w", zarr_format=3)
        group.create_array("before", data=dn, chunks=(1, 256, 256))
        group.create_array("after", data=dn2, chunks=(1, 256, 256))
        mpx = side * side / 1e6
        for name in ("land_cover", "change"):
            start = time.perf_counter()
            for _ in range(args.repeats):
                a = group["after"][...]
                if name == "land_cover":
                    classes, conf = predict_land_cover(lc, a, scale=1e-4, tiles_per_batch=args.batch)
                    group.create_array("land_cover", data=classes, chunks=(256, 256), overwrite=True)
                else:
                    b = group["before"][...]
                    prob = predict_change(cd, b, a, scale=1e-4, tiles_per_batch=args.batch)
                    group.create_array("change", data=prob, chunks=(256, 256), overwrite=True)
            wall = (time.perf_counter() - start) / args.repeats
            e2e = mpx / wall
            print(f"{name:<11} end-to-end   {e2e:8.2f} Mpx/s  (Zarr -> Zarr; {e2e / results[name]:.2f} of model-only)")
            summary[f"{name}_end_to_end_mpx_s"] = round(e2e, 2)
            summary[f"{name}_ratio_end_to_end_vs_model_only"] = round(e2e / results[name], 3)
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
