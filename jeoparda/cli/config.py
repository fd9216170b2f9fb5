"""``jeoparda config get KEY``: one value of a resolved run configuration, for scripts."""
from __future__ import annotations

import argparse
import difflib
from typing import Any

from jeoparda.cli.common import add_config_args, run_config
from jeoparda.errors import JeopardaError


def add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config", help="read the resolved run configuration (config get KEY)",
        description="Questions about a run configuration, resolved as jeoparda train resolves it: the "
        "defaults, then each --config file in order, then the --set overrides, with the same checks "
        "(unknown keys and values of the wrong type are errors). `jeoparda config get KEY` prints one "
        "value, so that job scripts (slurm/common.sh) need not read YAML themselves.")
    commands = p.add_subparsers(dest="config_command", metavar="COMMAND", help="what to ask")
    get = commands.add_parser(
        "get", help="print one resolved value",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Print the value of KEY (dotted, e.g. dist.backend) in the configuration that jeoparda "
        "train would run with the same --config and --set.\nScripts ask this instead of reading YAML "
        "themselves (slurm/common.sh: which srun --mpi plugin a run needs).\n\n"
        "Output: the value alone on one line; true/false for switches, '' prints an empty line;\n"
        "a section (e.g. data.augment) prints as YAML. An unknown key or an invalid configuration\n"
        "is an error (exit status 1).\n\n"
        "  jeoparda config get dist.backend --config benchmarks/configs/resnet50.yaml --set dist.backend=horovod")
    get.add_argument("key", metavar="KEY", help="dotted key, e.g. train.batch_size")
    add_config_args(get)
    get.set_defaults(func=_run_get)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def lookup(values: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in the nested ``values``; an unknown key names its closest match."""
    node: Any = values
    done: list[str] = []
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            known = list(node) if isinstance(node, dict) else []
            close = difflib.get_close_matches(part, known, n=1)
            hint = f" (did you mean {'.'.join([*done, close[0]])}?)" if close else ""
            where = f"{'.'.join(done)} has no key {part!r}" if isinstance(node, dict) and done else \
                f"{'.'.join(done)} is a value, not a section" if done else f"no section or key {part!r}"
            raise JeopardaError(f"config get {key}: unknown key: {where}{hint}")
        node = node[part]
        done.append(part)
    return node


def format_value(value: Any) -> str:
    """How `config get` prints a value: YAML's words for switches, sections as YAML."""
    import yaml

    if isinstance(value, dict):
        return yaml.safe_dump(value, sort_keys=False).rstrip("\n")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _run_get(args: argparse.Namespace) -> int:
    from jeoparda.config import to_dict

    print(format_value(lookup(to_dict(run_config(args)), args.key)))
    return 0
