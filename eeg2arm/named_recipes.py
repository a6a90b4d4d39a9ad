"""The recipes shipped with eeg2arm, by name (eeg2arm/named_recipes.toml): `eeg2arm recipes` lists them,
`eeg2arm prepare --recipe NAME` and `eeg2arm.Decoder(recipe=NAME)` use them.

A recipe is two argument lists, as a row of benchmarks/recipes.toml holds them: `prepare` (the arguments of
`eeg2arm prepare` less the files and --out) and `train` (those of `eeg2arm train` less --x --y --save --groups and
the sizes that the data give: --classes, --elec, --bands). The commands' own parsers read them.
"""
from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from importlib.resources import files

from .errors import UserInputError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


@dataclass(frozen=True)
class NamedRecipe:
    name: str
    row: str  # the row of benchmarks/recipes.toml it was measured as (docs/accuracy.md)
    groups: bool  # train splits by the groups of prepare's groups.npy (else --no-groups), as the row
    signal: str  # what the features read
    task: str  # what it decodes, and the trials it cuts
    channels: str  # the channels it needs
    prepare: tuple[str, ...]
    train: tuple[str, ...]

    def line(self) -> str:
        """One line of `eeg2arm recipes`."""
        return f"{self.name}: {self.signal}; task: {self.task}; channels: {self.channels}"

    def commands(self) -> str:
        """`eeg2arm recipes NAME`: the shell commands that prepare and train with it (the sizes from the data)."""
        from .train import validates  # torch, only for this command

        train = " ".join(shlex.quote(a) for a in ("--no-groups",) * (not self.groups) + self.train)
        split = ("leaves whole groups of DIR/groups.npy out" if self.groups else "is drawn by trial (--no-groups)") \
            if validates(self.train) else "holds no trial out (--val-split 0)"
        return (f"# {self.line()}\n"
                f"eeg2arm prepare RECORDING... --out DIR --recipe {self.name}\n"
                f"# --classes, --elec and --bands: the sizes of DIR/X.npy (N, elec, bands, T) and its classes; the "
                f"validation split {split}\n"
                f"eeg2arm train --x DIR/X.npy --y DIR/y.npy --save model.pt --classes K --elec C --bands F {train}")


@functools.cache
def named_recipes() -> dict[str, NamedRecipe]:
    """Every shipped recipe, by name, in the file's order."""
    table = tomllib.loads(files(__package__).joinpath("named_recipes.toml").read_text(encoding="utf-8"))
    return {name: NamedRecipe(name=name, row=row["row"], groups=row["groups"], signal=row["signal"],
                              task=row["task"], channels=row["channels"], prepare=tuple(row["prepare"]),
                              train=tuple(row["train"]))
            for name, row in table.items()}


def named_recipe(name: str) -> NamedRecipe:
    """The shipped recipe `name`, or UserInputError listing them."""
    known = named_recipes()
    if name not in known:
        raise UserInputError(f"no recipe is named {name!r}: use one of {', '.join(known)} (`eeg2arm recipes` says "
                             f"what each one decodes)")
    return known[name]
