"""Sampler goldens: diffusers' flow-matching schedulers (and LightX2V's
step-distill update, written out in plain torch) run on a tiny latent with a
deterministic synthetic "model".

Writes Tests/Fixtures/schedulers/schedulers.safetensors and
Tests/Fixtures/schedulers/schedulers.json. For every case `<c>`:

  <c>.timesteps      [N]       model timesteps, float32 (what the DiT receives)
  <c>.sigmas         [N+1]     the scheduler's sigma table, float32 (last is 0)
  <c>.model_outputs  [N, *S]   every model output fed to `step` (float32)
  <c>.samples        [N+1, *S] the initial latent, then the sample after each step

S = [1, 4, 2, 3, 5]. Swift replays `model_outputs` (it does not need the
synthetic model) and compares every intermediate sample.

The synthetic model is v(x, t) = cos(t / 300) * a + 0.25 * x + 0.1 * (t / 1000) * b
for fixed random a, b: it depends on both the timestep and the sample, so a
wrong timestep or a wrong sample shows up in the next output.
"""

from __future__ import annotations

import math

import torch

from _common import FIXTURES, randn, rel, reset_dir, save_tensors, write_json

OUT_DIR = FIXTURES / "schedulers"
SEED = 4000
SHAPE = [1, 4, 2, 3, 5]

# (name, kind, steps, shift, denoising_step_list); kind "unipc_wan" is UniPC on the official Wan σ grid.
CASES = [
    ("unipc_10_shift5", "unipc", 10, 5.0, None),
    ("unipc_50_shift5", "unipc", 50, 5.0, None),
    ("unipc_10_shift3", "unipc", 10, 3.0, None),
    ("unipc_50_shift3", "unipc", 50, 3.0, None),
    # shift 1 keeps σ0 = 1 before diffusers' `sigmas[0] -= 1e-6` guard; 2 and 1 steps hit
    # the warm-up / lower-order-final interplay.
    ("unipc_4_shift1", "unipc", 4, 1.0, None),
    ("unipc_2_shift5", "unipc", 2, 5.0, None),
    ("unipc_1_shift5", "unipc", 1, 5.0, None),
    ("unipc_wan_10_shift5", "unipc_wan", 10, 5.0, None),
    ("unipc_wan_50_shift3", "unipc_wan", 50, 3.0, None),
    ("unipc_wan_4_shift1", "unipc_wan", 4, 1.0, None),
    ("dpmpp_10_shift5", "dpmpp", 10, 5.0, None),
    ("dpmpp_20_shift3", "dpmpp", 20, 3.0, None),
    ("euler_8_shift5", "euler", 8, 5.0, None),
    ("euler_30_shift3", "euler", 30, 3.0, None),
    ("distill_4_shift5", "stepDistill", 4, 5.0, [1000, 750, 500, 250]),
    ("distill_3_shift8", "stepDistill", 3, 8.0, [999, 620, 301]),
]


def synthetic_model(x: torch.Tensor, t: float, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (math.cos(t / 300.0) * a + 0.25 * x + 0.1 * (t / 1000.0) * b).to(torch.float32)


def make_scheduler(kind: str, shift: float):
    from diffusers import DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if kind == "unipc":
        # Wan2.1 diffusers checkpoints' scheduler/scheduler_config.json (flow_shift per model).
        return UniPCMultistepScheduler(
            num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=shift, solver_order=2, solver_type="bh2", predict_x0=True, lower_order_final=True,
            final_sigmas_type="zero", disable_corrector=[], timestep_spacing="linspace")
    if kind == "dpmpp":
        # As the diffusers Wan docs configure it.
        return DPMSolverMultistepScheduler(
            num_train_timesteps=1000, prediction_type="flow_prediction", use_flow_sigmas=True,
            flow_shift=shift, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
            lower_order_final=True, final_sigmas_type="zero")
    if kind == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    raise ValueError(kind)


def wan_original_sigmas(steps: int, shift: float):
    """The σ grid of the official Wan2.1 `FlowUniPCMultistepScheduler` (wan/utils/fm_solvers_unipc.py),
    transcribed: constructed with shift=1, so its float32 table is 1 - linspace(1, 1/1000, 1000)[::-1];
    set_timesteps(N, shift=s) spaces linspace(sigma_max, sigma_min, N+1)[:-1] in float64 from that
    table's float32 ends (sigma_max = float32(0.999), sigma_min = 0), shifts in float64, truncates
    sigma*1000 to int64 timesteps and appends a final 0."""
    import numpy as np

    alphas = np.linspace(1, 1 / 1000, 1000)[::-1].copy()
    table = torch.from_numpy(1.0 - alphas).to(torch.float32)
    sigma_max, sigma_min = table[0].item(), table[-1].item()
    sigmas = np.linspace(sigma_max, sigma_min, steps + 1).copy()[:-1]
    shifted = shift * sigmas / (1 + (shift - 1) * sigmas)
    timesteps = torch.from_numpy(shifted * 1000).to(torch.int64)
    return sigmas, torch.from_numpy(np.concatenate([shifted, [0]]).astype(np.float32)), timesteps


def run_diffusers(kind: str, steps: int, shift: float, x0: torch.Tensor, a, b):
    if kind == "unipc_wan":
        # Wan's FlowUniPCMultistepScheduler is diffusers' UniPC code (v0.31) with its own σ grid. Feeding
        # diffusers' UniPC that grid as custom (unshifted) sigmas reproduces it: diffusers applies the same
        # float64 shift and int64 truncation, and its σ0 = 1 guard does not fire (σ0 < 0.9999).
        raw, wan_sigmas, wan_timesteps = wan_original_sigmas(steps, shift)
        sched = make_scheduler("unipc", shift)
        sched.set_timesteps(sigmas=raw.copy())  # an ndarray: diffusers does array math on it
        assert torch.equal(sched.sigmas, wan_sigmas), (sched.sigmas, wan_sigmas)
        assert torch.equal(sched.timesteps, wan_timesteps), (sched.timesteps, wan_timesteps)
    else:
        sched = make_scheduler(kind, shift)
        sched.set_timesteps(steps)
    timesteps = sched.timesteps.clone()
    sigmas = sched.sigmas.clone().to(torch.float32)
    x = x0.clone()
    outs, samples = [], [x.clone()]
    for t in timesteps:
        v = synthetic_model(x, float(t), a, b)
        outs.append(v.clone())
        x = sched.step(v, t, x, return_dict=False)[0]
        samples.append(x.clone())
    return timesteps.to(torch.float32), sigmas, outs, samples


def run_step_distill(step_list: list[int], shift: float, x0: torch.Tensor, a, b):
    """LightX2V WanStepDistillScheduler, following Kinema's reference notes
    (shared/reference/lightx2v.md §4.8) literally, in float32 torch."""
    num_train_timesteps = 1000
    sigma_max, sigma_min = 1.0, 0.0
    grid = torch.linspace(sigma_max, sigma_min, num_train_timesteps + 1)[:-1]  # float32, 1000 entries
    grid = shift * grid / (1 + (shift - 1) * grid)
    all_timesteps = grid * num_train_timesteps
    index = torch.tensor([num_train_timesteps - t for t in step_list], dtype=torch.long)
    timesteps = all_timesteps[index]
    sigmas = torch.cat([grid[index], torch.zeros(1)])
    x = x0.clone()
    outs, samples = [], [x.clone()]
    n = len(step_list)
    for i in range(n):
        v = synthetic_model(x, float(timesteps[i]), a, b)
        outs.append(v.clone())
        x0_pred = x - sigmas[i] * v
        if i < n - 1:
            x = x0_pred + sigmas[i + 1] * v
        else:
            x = x0_pred
        samples.append(x.clone())
    return timesteps.to(torch.float32), sigmas, outs, samples


def run(versions: dict) -> list[str]:
    reset_dir(OUT_DIR)
    a = randn(SHAPE, SEED + 1)
    b = randn(SHAPE, SEED + 2)
    x_init = randn(SHAPE, SEED + 3)
    tensors: dict[str, torch.Tensor] = {}
    cases = []
    for name, kind, steps, shift, step_list in CASES:
        if kind == "stepDistill":
            ts, sigmas, outs, samples = run_step_distill(step_list, shift, x_init, a, b)
        else:
            ts, sigmas, outs, samples = run_diffusers(kind, steps, shift, x_init, a, b)
        assert len(outs) == steps, (name, len(outs))
        tensors[f"{name}.timesteps"] = ts
        tensors[f"{name}.sigmas"] = sigmas
        tensors[f"{name}.model_outputs"] = torch.stack(outs)
        tensors[f"{name}.samples"] = torch.stack(samples)
        cases.append({
            "name": name, "kind": "unipc" if kind == "unipc_wan" else kind,
            "sigma_schedule": "wan" if kind == "unipc_wan" else "diffusers", "steps": steps, "shift": shift,
            "denoising_step_list": step_list,
            "timesteps": [float(t) for t in ts],
        })
    save_tensors(OUT_DIR / "schedulers.safetensors", tensors, metadata={"producer": "scheduler_goldens.py"})
    write_json(OUT_DIR / "schedulers.json", {
        "versions": versions,
        "shape": SHAPE,
        "model": "v(x, t) = cos(t/300)*a + 0.25*x + 0.1*(t/1000)*b, a/b fixed N(0,1) (seeds 4001/4002), x0 seed 4003",
        "configs": {
            "unipc_wan": "the unipc configuration driven with custom sigmas = the official Wan FlowUniPCMultistepScheduler grid "
                         "(linspace(float32(0.999), 0, N+1)[:-1], shifted); checked equal to a transcription of Wan's set_timesteps",
            "unipc": "UniPCMultistepScheduler(prediction_type=flow_prediction, use_flow_sigmas=True, flow_shift=shift, "
                     "solver_order=2, solver_type=bh2, predict_x0=True, lower_order_final=True, final_sigmas_type=zero)",
            "dpmpp": "DPMSolverMultistepScheduler(prediction_type=flow_prediction, use_flow_sigmas=True, flow_shift=shift, "
                     "algorithm_type=dpmsolver++, solver_order=2, solver_type=midpoint, lower_order_final=True, final_sigmas_type=zero)",
            "euler": "FlowMatchEulerDiscreteScheduler(shift=shift)",
            "stepDistill": "LightX2V WanStepDistillScheduler per lightx2v.md 4.8, plain float32 torch",
        },
        "cases": cases,
    })
    size = sum(p.stat().st_size for p in OUT_DIR.iterdir())
    return [f"schedulers: {len(cases)} cases -> {rel(OUT_DIR)} ({size / 1e3:.1f} kB)"]
