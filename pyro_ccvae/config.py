"""Configurations: dataclasses whose fields are the options, saved as ``config.json``.

A training run's :class:`TrainConfig` has five sections, each a dataclass::

    model         the model family and its settings (``name`` picks the family)
    data          which data, and how to load them (plus ``info``, filled in from the loaded data)
    guide         which guide (``name``: a built-in or ``module:attr``) and its ``options``
    optimisation  supervision rate, epochs, batch size, learning rate
    run           seed and device
    execution     how training executes: numerics, compilation, noise across processes, tracking

Every field is declared once, with its help text and command-line flag in the field's metadata
(:func:`option`); the CLI generates its options from these fields, and
:meth:`TrainConfig.from_options` builds a config from the same flat option names. Field names are
unique across the sections, so a flat name (``--lr``, ``lr=``) says where it belongs.

The file format (nested, strict: an unknown or missing key is an error naming it), its legacy
flat form (version 0.1) and where the file lies are :mod:`pyro_ccvae.run_directory`'s business.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

# Names only (no torch, no Pyro): the command line is built from these classes (docs/benchmarks.md, Start-up time).
from .choices import DATASETS, NOISE_CHOICES, PRECISIONS, labels_help
from .fields import check_positive, field_types, option, option_flag, option_name  # noqa: F401  (the config's vocabulary)
from .data.label_spec import info_num_classes
from .errors import UserError
from .models.ccvae.config import PAPER as CCVAE_PAPER
from .models.registry import MODELS, config_class
from .supervision import Stage, check_epochs, format_schedule, parse_schedule

if TYPE_CHECKING:
    from .data import DataOptions


@dataclass
class DataConfig:
    """Which data to load, and how; shared by every command that trains on a data set."""

    dataset: str = option("shapes", group="data", help="The data set.", choices=DATASETS)
    data_dir: Optional[str] = option(None, group="data", help="Folder holding the data set.", path=True, resume=True)
    #: None: the data set's default (32 for the built-in and digit sets, 64 otherwise).
    image_size: Optional[int] = option(None, group="data", help="Default: 32 for shapes, digits and the MNISTs; 64 otherwise.", choices=(32, 64))
    labels: Optional[list[str]] = option(None, group="data", help=labels_help())
    uncertain: str = option("ignore", group="chexpert", help="CheXpert -1 labels: ignore, zeros, ones, or per label e.g. Edema=ones,*=zeros.")
    blank: str = option("zeros", group="chexpert", help="CheXpert blank labels.", choices=("zeros", "ignore"))
    views: str = option("frontal", group="chexpert", help="CheXpert views.", choices=("frontal", "lateral", "all"))
    center_crop: bool = option(False, group="celeba", help="CelebA: crop the face before resizing.")
    cache_dir: Optional[str] = option(None, group="data", help="Where decoded image caches go.", path=True, resume=True)
    skip_bad_images: bool = option(False, group="data", help="Skip unreadable images (counted in the log) instead of stopping.")
    num_train: Optional[int] = option(None, group="data", help="Built-in data sets: number of training images.")
    #: filled in from the loaded data: label names, image channels and size, training images.
    info: dict = option(cli=False, default_factory=dict)

    def data_options(self, seed: int) -> DataOptions:
        from .data import DataOptions, default_image_size  # the loaders import torch

        return DataOptions(
            data_dir=Path(self.data_dir) if self.data_dir else None,
            image_size=self.image_size or default_image_size(self.dataset),
            labels=tuple(self.labels) if self.labels else None,
            cache_dir=Path(self.cache_dir) if self.cache_dir else None,
            skip_bad_images=self.skip_bad_images,
            seed=seed,
            uncertain=self.uncertain,
            blank=self.blank,
            views=self.views,
            center_crop=self.center_crop,
            num_train=self.num_train,
        )

    def make_paths_absolute(self) -> None:
        """Store the path fields as absolute paths, so that a saved config does not depend on
        the folder a command ran in."""
        for f in fields(DataConfig):
            value = getattr(self, f.name)
            if f.metadata.get("path") and value:
                setattr(self, f.name, str(Path(value).expanduser().absolute()))

    def options(self) -> dict:
        """The chosen fields (not ``info``), to describe the same data elsewhere."""
        return {f.name: getattr(self, f.name) for f in fields(DataConfig) if f.metadata.get("cli", True)}


@dataclass
class RunSection:
    """Where and how reproducibly a command runs."""

    seed: int = option(0, group="run", help="Seed for every random draw (data rendering, splits, labelled subset, training).")
    device: str = option("auto", group="execution", help="auto, cpu, cuda or cuda:N.", resume=True)


@dataclass
class GuideConfig:
    """The guide ``q(z | x) q(y | z_c)``."""

    name: str = option("meanfield", flag="--guide", group="guide", help="meanfield, lowrank, fullrank, flow, or module:attr.")
    #: keyword arguments of the guide's constructor, typed from it when training starts
    #: (``pyro_ccvae.models.ccvae.guides.guide_options``): ``{"rank": 8}`` for ``--guide-option rank=8``.
    options: dict = option(
        flag="--guide-option", default_factory=dict,
        group="guide", help="NAME=VALUE, repeatable: an argument of the guide's constructor (e.g. --guide lowrank --guide-option rank=8).",
    )  # fmt: skip


@dataclass
class OptimisationConfig:
    """How the objective is optimised."""

    #: fraction of training points whose labels are used; the rest train unsupervised.
    sup_frac: float = option(1.0, group="optimisation", help="Fraction of training points whose labels are used (0 to 1).")
    #: stages whose labelled subsets shrink and nest (:mod:`pyro_ccvae.supervision`); None: ``sup_frac`` throughout.
    sup_schedule: Optional[str] = option(
        None, group="optimisation", help="FRAC:EPOCHS stages, e.g. 0.9:40,0.5:40,0.1:40: the labelled subset shrinks (nested, fixed by --seed) "
        "from stage to stage; the epochs add up to --epochs (the last stage's may be left out: until the end). "
        "Instead of --sup-frac (docs/training.md, Supervision schedules).",
    )  # fmt: skip
    epochs: int = option(20, group="optimisation", help="Epochs to train (with --resume: the new last epoch).", resume=True)
    batch_size: int = option(64, group="optimisation", help="Images per step.")
    lr: float = option(1e-3, group="optimisation", help="Adam's learning rate.")

    def __post_init__(self) -> None:
        if not 0.0 <= self.sup_frac <= 1.0:
            raise UserError(f"--sup-frac must be in [0, 1], got {self.sup_frac}")
        check_positive(self, "epochs", "batch_size", "lr")
        if self.sup_schedule is not None:
            stages = parse_schedule(self.sup_schedule)
            # sup_frac records the first stage's fraction: the points whose labels are ever used.
            if self.sup_frac not in (1.0, stages[0].sup_frac):
                raise UserError("--sup-frac and --sup-schedule cannot be used together: the schedule's stages give the fractions")
            self.sup_schedule, self.sup_frac = format_schedule(stages), stages[0].sup_frac

    def stages(self) -> Optional[tuple[Stage, ...]]:
        """The supervision schedule's stages; ``None`` without one."""
        return None if self.sup_schedule is None else parse_schedule(self.sup_schedule)


@dataclass
class ExecutionConfig:
    """How training executes on the hardware, and what it records beside the run directory's own
    files. Except ``noise``, these may change when a run is resumed (as ``--device`` may): they
    change how fast a step runs, not what it estimates (bf16 within a measured tolerance)."""

    precision: str = option(
        "fp32", choices=PRECISIONS, resume=True,
        group="execution", help="bf16: the conv encoder and decoder run under bf16 autocast, the ELBO in fp32; stops if the ELBO moves "
        "more than 0.1% from fp32's (docs/training.md, A fast single-GPU path).",
    )  # fmt: skip
    compile: bool = option(False, resume=True, group="execution", help="torch.compile the conv encoder and decoder.")
    noise: str = option(
        "global", choices=NOISE_CHOICES,
        group="execution", help="keyed: the latents' noise is keyed by (seed, epoch, batch, point), so N processes compute one process's "
        "gradient (docs/training.md, Training on several GPUs); global: each process's own RNG stream.",
    )  # fmt: skip
    tensorboard: bool = option(False, resume=True, group="execution", help="Also write TensorBoard events to RUN/tensorboard (needs the tensorboard package).")


#: the sections of a training run's config, in the order of ``config.json``.
SECTIONS = ("model", "data", "guide", "optimisation", "run", "execution")
#: sections added after config version 2 was first written: a config without one ran with its defaults.
ADDED_SECTIONS = ("execution",)


@dataclass
class TrainConfig:
    """Everything that defines a training run; ``config.json`` holds it, one object per section."""

    model: Any = field(default_factory=lambda: config_class("ccvae")())
    data: DataConfig = field(default_factory=DataConfig)
    guide: GuideConfig = field(default_factory=GuideConfig)
    optimisation: OptimisationConfig = field(default_factory=OptimisationConfig)
    run: RunSection = field(default_factory=RunSection)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)

    @staticmethod
    def section_classes(model: str = "ccvae") -> dict[str, type]:
        """Section name -> dataclass, with the ``model`` section of the family ``model``."""
        return {"model": config_class(model), "data": DataConfig, "guide": GuideConfig,
                "optimisation": OptimisationConfig, "run": RunSection, "execution": ExecutionConfig}  # fmt: skip

    @classmethod
    def option_names(cls, model: str = "ccvae") -> set[str]:
        """The flat option names of a run of the family ``model``."""
        return {option_name(f) for kind in cls.section_classes(model).values() for f in fields(kind)}

    @classmethod
    def from_options(cls, **options) -> "TrainConfig":
        """A config from flat option names (those of the command line: ``lr=1e-3, guide="lowrank"``);
        options not given keep their defaults. An unknown name is a one-line error naming it."""
        classes = cls.section_classes(options.get("model", "ccvae"))
        values: dict[str, dict] = {name: {} for name in classes}
        where = {option_name(f): (section, f.name) for section, kind in classes.items() for f in fields(kind)}
        for key, value in options.items():
            if key not in where:
                raise UserError(f"unknown option {key!r}")
            section, name = where[key]
            values[section][name] = value
        config = cls(**{section: classes[section](**values[section]) for section in classes})
        stages = config.optimisation.stages()
        if stages is not None:  # here, not in the section: a resumed run's --epochs may outgrow its schedule
            check_epochs(stages, config.optimisation.epochs)
        return config

    def fields_by_option(self) -> dict[str, tuple[Any, dataclasses.Field]]:
        """Flat option name -> (the section object that holds it, the field)."""
        return {option_name(f): (getattr(self, s), f) for s in SECTIONS for f in fields(getattr(self, s))}

    def to_dict(self) -> dict:
        """The nested form written to ``config.json`` (without its version key)."""
        return {section: dataclasses.asdict(getattr(self, section)) for section in SECTIONS}

    #: keys added since the nested format (version 2) was first written, with the value a file
    #: without one ran with (a run from before guide options had none; before the classifier tied
    #: to the prior, every run had the linear one and a weight with gradients; before supervision
    #: schedules, every run kept one labelled subset).
    ADDED_KEYS = {
        ("guide", "options"): {},
        ("model", "label_classifier"): "linear",
        ("model", "detach_weight"): False,
        ("optimisation", "sup_schedule"): None,
    }

    @classmethod
    def from_dict(cls, raw: dict) -> "TrainConfig":
        """The config of a nested ``raw`` object, strictly: every section and key must be there
        (but the :data:`ADDED_KEYS`, which older files lack), and nothing else. ``ValueError``
        names the first key that is unknown or missing."""
        if not isinstance(raw, dict):
            raise ValueError("the config is not a JSON object")
        raw = {**{section: {} for section in ADDED_SECTIONS if section not in raw}, **raw}
        for section in SECTIONS:
            if not isinstance(raw.get(section), dict):
                raise ValueError(f"section {section!r} is missing")
        unknown = sorted(set(raw) - set(SECTIONS))
        if unknown:
            raise ValueError(f"unknown section {unknown[0]!r}")
        model = raw["model"].get("name")
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} in section 'model'; known: {', '.join(MODELS)}")
        sections = {}
        for section, kind in cls.section_classes(model).items():
            names = {f.name for f in fields(kind)}
            given = raw[section]
            added = {key for sec, key in cls.ADDED_KEYS if sec == section}
            extra, missing = sorted(set(given) - names), sorted(names - set(given) - added)
            if extra:
                raise ValueError(f"unknown key {section}.{extra[0]}")
            if missing and not (section in ADDED_SECTIONS and not given):
                raise ValueError(f"missing key {section}.{missing[0]}")
            absent = {key: cls.ADDED_KEYS[section, key] for key in added & names if key not in given}
            sections[section] = kind(**{**copy.deepcopy(absent), **given})
        return cls(**sections)

    #: what runs written before these options existed (version 0.1) trained with: the paper's objective.
    LEGACY_DEFAULTS = {
        name: getattr(CCVAE_PAPER, name)
        for name in ("detach_weight_denominator", "classifier_weight", "prior_lr_factor", "label_classifier", "detach_weight", "z_char_dim", "z_style_dim")
    }  # fmt: skip
    #: version 0.1's flat keys whose name changed.
    LEGACY_RENAMES = {"data_info": "info"}

    @classmethod
    def from_legacy(cls, raw: dict) -> "TrainConfig":
        """The config of a flat ``config.json`` of version 0.1 (all fields at the top level; the
        ones it lacked get :data:`LEGACY_DEFAULTS`, then the defaults). An unknown key is an error."""
        classes = cls.section_classes("ccvae")
        where = {f.name: section for section, kind in classes.items() for f in fields(kind) if f.name != "name"}
        where["guide"] = "guide"
        values: dict[str, dict] = {section: {} for section in classes}
        for key, value in {**cls.LEGACY_DEFAULTS, **raw}.items():
            key = cls.LEGACY_RENAMES.get(key, key)
            if key not in where:
                raise ValueError(f"unknown key {key!r} in a version 0.1 config")
            values[where[key]]["name" if key == "guide" else key] = value
        return cls(**{section: kind(**values[section]) for section, kind in classes.items()})

    # --- what most code reads ------------------------------------------------------------

    @property
    def label_names(self) -> list[str]:
        return list(self.data.info["label_names"])

    @property
    def num_classes(self) -> list[int]:
        """Classes per label (runs written before categorical labels: every label binary)."""
        return info_num_classes(self.data.info)

