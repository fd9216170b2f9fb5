"""Optimisers (Adam, AdamW, SGD, LARS, LAMB) and the learning-rate schedule of the recipes."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from jeoparda.config import TrainConfig


class LARS(torch.optim.SGD):
    """SGD with momentum and layer-wise adaptive rate scaling (You et al. 2017): each weight
    matrix's step is scaled by trust * ||w|| / ||g + wd w||. Biases and norms are not adapted."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, trust: float = 0.001):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=0.0)
        self.wd, self.trust = weight_decay, trust

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or p.ndim <= 1:
                    continue
                g = p.grad.add(p, alpha=self.wd)
                w_norm, g_norm = p.norm(), g.norm()
                ratio = torch.where((w_norm > 0) & (g_norm > 0), self.trust * w_norm / g_norm, torch.ones_like(w_norm))
                p.grad.copy_(g * ratio)
        return super().step(closure)


class LAMB(torch.optim.Optimizer):
    """Adam whose per-layer update is scaled by ||w|| / ||update|| (You et al. 2019).

    Written out (moments, bias correction, trust ratio) in tensor operations: no copy of the
    parameters and no host synchronisation per parameter, so it costs what Adam costs. The trust
    ratio compares ||w|| with the norm of the direction (Adam step + weight decay), without the
    learning rate, which would cancel out. Biases and norms (1-D parameters) take plain Adam steps
    without weight decay."""

    def __init__(self, params: Any, lr: float, weight_decay: float = 0.0, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-6) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            b1, b2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = float(state["step"])  # a CPU scalar: no device synchronisation
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(b1).add_(p.grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                denom = (v / (1 - b2 ** t)).sqrt_().add_(group["eps"])
                direction = (m / (1 - b1 ** t)).div_(denom)
                if p.ndim > 1:
                    direction.add_(p, alpha=group["weight_decay"])
                    w_norm, d_norm = p.norm(), direction.norm()
                    ratio = torch.where((w_norm > 0) & (d_norm > 0), w_norm / d_norm, torch.ones_like(w_norm))
                    p.sub_(direction * (ratio * group["lr"]))
                else:
                    p.sub_(direction, alpha=group["lr"])
        return loss


def base_lr(cfg: TrainConfig, global_batch: int) -> float:
    """The recipe's learning rate: scaled linearly with the global batch if asked."""
    return cfg.lr * global_batch / cfg.lr_base_batch if cfg.lr_scaling == "linear" else cfg.lr


def build_optimizer(cfg: TrainConfig, model: nn.Module, global_batch: int) -> torch.optim.Optimizer:
    lr, params = base_lr(cfg, global_batch), model.parameters()
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "lars":
        return LARS(params, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return LAMB(params, lr=lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, epoch_float: float) -> float:
    """Multiplier of the base rate at a (fractional) epoch: warm-up from 1/10, then the schedule."""
    if epoch_float < cfg.warmup_epochs:
        return 0.1 + 0.9 * epoch_float / cfg.warmup_epochs
    if cfg.schedule == "step":
        return cfg.step_gamma ** int(epoch_float // cfg.step_epochs)
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch_float - cfg.warmup_epochs) / span)))
    return 1.0


#: One-cycle (Smith & Topin): start at peak/25, end at start/1e4; warm-up share when none is given.
ONECYCLE_START_DIV, ONECYCLE_END_DIV, ONECYCLE_WARMUP = 25.0, 1e4, 0.3


def build_schedule(cfg: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> Any:
    """Per-step schedule: LambdaLR following :func:`lr_factor`, or Smith's one-cycle, whose peak
    is the (scaled) learning rate: warm-up over ``warmup_epochs`` (30 % of the run when 0) from
    peak/25 to the peak, cosine annealing to peak/25/10^4, momentum (SGD, LARS) or Adam's beta1
    (Adam, AdamW, LAMB) cycled inversely between 0.95 and 0.85."""
    if cfg.schedule != "onecycle":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step / steps_per_epoch))
    total = max(cfg.epochs * steps_per_epoch, 2)
    share = cfg.warmup_epochs / cfg.epochs if cfg.warmup_epochs else ONECYCLE_WARMUP
    defaults = getattr(optimizer, "defaults", {})
    cycle = bool(defaults.get("momentum")) or "betas" in defaults
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
        pct_start=min(max(share, 1 / total), 0.99), anneal_strategy="cos", cycle_momentum=cycle,
        base_momentum=0.85, max_momentum=0.95, div_factor=ONECYCLE_START_DIV, final_div_factor=ONECYCLE_END_DIV)
