"""ReFrame run-only checks for jeoparda: training throughput, scaling efficiency, time to target.

One check per (model, data backend, number of ranks). Sanity: the run completed. Performance,
read from the stable `jeoparda-perf:` lines (docs/benchmarking.md): images/s per worker, epoch
time, scaling efficiency against the smallest rank count of the same model and backend (a
dependency: that run goes first), and time to target (with a target in the recipe).

    reframe -C benchmarks/reframe/config_local.py -c benchmarks/reframe/jeoparda_checks.py -r \\
        -S data_path=/scratch/shards

Parameters come from the environment, so a site picks its sweep without editing this file:
JEOPARDA_RFM_MODELS ("resnet50"), JEOPARDA_RFM_RANKS ("1 2 4 8"), JEOPARDA_RFM_BACKENDS
("torch"). Variables (-S name=value): data_path, config (default the model's recipe), epochs,
extra (more `--set` words, space separated), launcher_opts.

References: JEOPARDA_RFM_REFERENCES names a references file (or an earlier report's summary.json),
the same file `jeoparda report --baseline` reads (docs/benchmarking.md, "Baselines and regressions"):
each check takes the entry for its system (ReFrame's system name, or "*"), model and ranks, bounded
on the worse side only, so ReFrame fails where `--fail-on-regression` would. Without it, or where
no entry matches, `SITE_REFERENCES` below: {system:partition: {variable: (value, lower, upper,
unit)}} with relative tolerances, as ReFrame defines them; empty means "report, do not judge".
"""
from __future__ import annotations

import os

import reframe as rfm
import reframe.utility.sanity as sn
from reframe.core.builtins import parameter, performance_function, run_after, run_before, sanity_function, variable

RUN = r"^jeoparda-perf: run status=(\w+) images_per_s=([0-9.]+) epoch_time_s=([0-9.]+)$"
TARGET = r"^jeoparda-perf: target metric=(\w+) value=([0-9.]+) reached=(yes|no) time_to_target_s=(-?[0-9.]+)"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: What a site expects, e.g. {"cluster:gpu": {"images_per_s_per_worker": (900, -0.1, None, "images/s"),
#: "efficiency": (0.9, -0.05, None, "")}}.
SITE_REFERENCES: dict = {}


def _words(name: str, default: str) -> list[str]:
    return os.environ.get(name, default).split()


@rfm.simple_test
class JeopardaTrain(rfm.RunOnlyRegressionTest):
    descr = "jeoparda train: throughput per worker, epoch time, scaling efficiency, time to target"
    valid_systems = ["*"]
    valid_prog_environs = ["*"]
    model = parameter(_words("JEOPARDA_RFM_MODELS", "resnet50"))
    data_backend = parameter(_words("JEOPARDA_RFM_BACKENDS", "torch"))
    ranks = parameter([int(n) for n in _words("JEOPARDA_RFM_RANKS", "1 2 4 8")])
    data_path = variable(str, value="")
    config = variable(str, value="")
    epochs = variable(int, value=3)
    extra = variable(str, value="")
    executable = "jeoparda"
    reference = SITE_REFERENCES
    tags = {"jeoparda", "training"}

    def _smallest(self) -> str:
        cls = type(self)
        fewest = min(int(n) for n in _words("JEOPARDA_RFM_RANKS", "1 2 4 8"))
        num = cls.get_variant_nums(model=self.model, data_backend=self.data_backend, ranks=fewest)[0]
        return cls.variant_name(num)

    @run_after("init")
    def depend_on_the_smallest_run(self) -> None:
        if self.unique_name != self._smallest():
            self.depends_on(self._smallest())

    @run_before("run")
    def command_line(self) -> None:
        self.num_tasks = self.ranks
        recipe = self.config or os.path.join(REPO, "benchmarks", "configs", f"{self.model}.yaml")
        sets = [f"data.path={self.data_path}", f"data.backend={self.data_backend}", f"train.epochs={self.epochs}",
                "train.test=false", f"dist.backend={'ddp' if self.ranks > 1 else 'single'}", *self.extra.split()]
        self.executable_opts = ["train", "--config", recipe, "--out", "run"] + [w for s in sets for w in ("--set", s)]

    @run_before("performance")
    def references_from_file(self) -> None:
        path = os.environ.get("JEOPARDA_RFM_REFERENCES")
        if path:  # jeoparda is imported only here: the check loads without it otherwise
            from jeoparda.report.baseline_file import reframe_reference

            found = reframe_reference(path, self.current_system.name, self.model, self.ranks, self.data_backend)
            self.reference = found or SITE_REFERENCES

    @sanity_function
    def completed(self):
        return sn.assert_eq(sn.extractsingle(RUN, self.stdout, 1), "completed")

    @performance_function("images/s")
    def images_per_s_per_worker(self):
        return sn.extractsingle(RUN, self.stdout, 2, float) / self.ranks

    @performance_function("s")
    def epoch_time(self):
        return sn.extractsingle(RUN, self.stdout, 3, float)

    @performance_function("")
    def efficiency(self):
        """Weak scaling (fixed batch per worker): X(N) / (N/N0 * X(N0)), N0 the smallest run."""
        if self.unique_name == self._smallest():
            return 1.0
        base = self.getdep(self._smallest())
        n0 = base.ranks
        x0 = sn.extractsingle(RUN, os.path.join(base.stagedir, base.job.stdout), 2, float)
        x = sn.extractsingle(RUN, self.stdout, 2, float)
        return x / (self.ranks / n0 * x0)

    @performance_function("s")
    def time_to_target(self):
        """Seconds to the recipe's train.target (-1: not reached; 0: the recipe sets none)."""
        return sn.extractsingle(TARGET, self.stdout, 4, float) if sn.evaluate(
            sn.count(sn.findall(TARGET, self.stdout))) else 0.0
