"""The typed schema of every user-settable value, checked when the config is composed.

One table, :data:`SCHEMA`, maps each key (``fnmatch`` patterns over the dotted keys of the
resolved config: ``dataset.*_frac`` covers every dataset's fractions) to a :class:`Spec`: its
type (``int``, ``float``, ``bool``, ``str`` or a list of them), its allowed range or choices,
and whether ``null`` is allowed. :func:`validate` walks the composed config once, before any
data loads, and raises one :class:`~auxrun.errors.AuxrunError` naming the key, the value and
what is allowed. The lists of choices are the code's own (``weighting.meta.META_GRADS``, the
loaders' registry, the task kinds), so the schema and what it guards cannot drift apart. Keys
that name a task or a config option must name one that exists (:func:`check_task_names`,
:data:`OPTION_KEYS`). What no pattern covers is checked where it is resolved, each with one
message: names of relations, meta-paths and node types against the loaded graph, paths when
they are read, ``weighting.options`` by the torchjd class that takes them; and checks that
relate a key to the data or the model live with the code that needs them (a sampling fanout
per backbone layer).

Keys added (``+key=value``, ``++key=value``) or removed (``~key``) on the command line are
checked by :mod:`auxrun.overrides` (:func:`~auxrun.overrides.check_added_keys` once composed,
:func:`~auxrun.overrides.check_removed_keys` before): an added key nothing reads (a typo such
as ``+trainer.max_epoch=5`` would otherwise run 100 epochs in silence) and a removed key the
code reads are refused.
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .dotted import flat
from .errors import AuxrunError
from .specs import INT32_MAX, Spec
from .data import REGISTRY, loader_name
from .data.neighbors import BACKENDS
from .data.step_inputs import SAMPLING
from .models.molecular import POOLING
from .tasks import AUX_KINDS
from .train.loggers import LOGGERS
from .weighting.base import PARAM_SETS
from .weighting.gradient import AGGREGATORS
from .weighting.meta import ACTIVATIONS, META_GRADS, NORMALIZE, SIMS
from .weighting.metabalance import MODES
from .weighting.rcgrad import LEARN
from .transfer.ktn import MAPS as KTN_MAPS
from .transfer.paths import WEIGHTINGS
from .weighting.scalarize import SCALARIZERS


def _count(low: int = 1, high: int = INT32_MAX) -> Spec:
    return Spec(int, low=low, high=high)


# sizes that fit a machine's memory: wider layers, more of them or more heads than this would not
WIDTH, DEPTH, HEADS = _count(1, 1 << 16), _count(1, 64), _count(1, 256)
SEED = _count(0, 2**32 - 1)  # NumPy's legacy seeding takes 32 bits
LEARNING_RATE = Spec(float, low=0, high=10, low_open=True)  # finite and bounded: beyond 10 every step diverges
POSITIVE = Spec(float, low=0, low_open=True)
NON_NEGATIVE = Spec(float, low=0)
FRACTION = Spec(float, low=0, high=1, low_open=True, high_open=True)   # strictly between 0 and 1
PROBABILITY = Spec(float, low=0, high=1)
FLAG = Spec(bool)
FANOUT = Spec(int, low=1, high=INT32_MAX, each=True, words=(-1,))  # neighbours per hop, -1 for all
TRAIN_VAL = Spec(float, 0, 1, low_open=True, high_open=True, each=True, length=2, sum_below=1)  # test takes the rest

COMMANDS = ("mtl", "pretrain", "finetune", "zeroshot")

SCHEMA: dict[str, Spec] = {
    "command": Spec(str, choices=COMMANDS), "dataset.loader": Spec(str, choices=tuple(sorted(REGISTRY))),
    "seed": SEED,
    "rerun": FLAG,
    "device": Spec(str), "threads": Spec(int, low=1, high=4096, words=("auto",)),
    # trainer
    "trainer.max_epochs": _count(1, 10**6), "trainer.patience": _count(0), "trainer.batch_size": _count(),
    "trainer.aux_batch_size": _count(), "trainer.eval_batch_size": _count(), "trainer.pretrain_steps_per_epoch": _count(),
    "trainer.lr": LEARNING_RATE, "trainer.weight_decay": Spec(float, 0, 10), "trainer.grad_clip": Spec(float, 0, low_open=True,
                                                                                               optional=True),
    "trainer.checkpoint": FLAG, "trainer.progress": FLAG, "trainer.tuned_trials": _count(0),
    "trainer.sampling": Spec(str, choices=SAMPLING), "trainer.precision": Spec(str, choices=("32", "bf16")),
    "trainer.sampler": Spec(str, choices=BACKENDS), "trainer.task_grads": Spec(str, choices=("loop", "batched")),
    "trainer.fanout": FANOUT, "trainer.eval_fanout": replace(FANOUT, optional=True),
    # backbone
    "backbone.hidden": WIDTH, "backbone.num_layers": DEPTH, "backbone.dropout": Spec(float, 0, 1, high_open=True),
    "backbone.heads": HEADS,
    # weighting
    "weighting.lr": LEARNING_RATE, "weighting.step_size": LEARNING_RATE, "weighting.folds": _count(), "weighting.hidden": WIDTH,
    "weighting.default": NON_NEGATIVE, "weighting.weights.*": NON_NEGATIVE, "weighting.momentum": Spec(float, 0, 1, high_open=True),
    "weighting.adapt_every": _count(), "weighting.neumann_terms": _count(0, 1000), "weighting.neumann_step": POSITIVE,
    "weighting.aux_split": FRACTION, "weighting.activation": Spec(str, choices=tuple(ACTIVATIONS)),
    "weighting.meta_grad": Spec(str, choices=META_GRADS), "weighting.normalize": Spec(str, choices=NORMALIZE),
    "weighting.cos_params": Spec(str, choices=PARAM_SETS), "weighting.params": Spec(str, choices=PARAM_SETS),
    "weighting.scalarizer": Spec(str, choices=tuple(SCALARIZERS)), "weighting.aggregator": Spec(str, choices=tuple(AGGREGATORS)),
    "weighting.mode": Spec(str, choices=MODES), "weighting.relax": PROBABILITY,
    "weighting.beta": Spec(float, 0, 1, high_open=True), "weighting.alpha": NON_NEGATIVE,
    # auxiliary tasks
    "aux.tasks.*.loss_scale": POSITIVE, "aux.tasks.*.kind": Spec(str, choices=AUX_KINDS),
    "aux.tasks.*.negatives": _count(), "aux.head_dim": WIDTH, "aux.head_hidden": WIDTH,
    "aux.pair_head": Spec(str, choices=("projected", "dot", "mlp")), "aux.target_head": Spec(str, choices=("projected", "mlp")),
    "aux.eval_size": _count(1, 10**7), "aux.max_metapath_density": Spec(float, 0, 1, low_open=True),
    "aux.max_metapath_pairs": _count(1, 10**9), "aux.tasks.*.mask_rate": FRACTION, "aux.tasks.*.context_layers": DEPTH,
    "aux.tasks.*.min_count": _count(1), "backbone.attention_dropout": Spec(float, 0, 1, high_open=True),
    "backbone.num_bases": Spec(int, low=1, high=4096, optional=True),
    "backbone.aggr": Spec(str, choices=("sum", "mean", "max")), "backbone.metapath_hops": Spec(int, 1, 4),
    "backbone.max_instances": Spec(int, 1, 4096),
    "backbone.pooling": Spec(str, choices=POOLING), "backbone.norm": Spec(str, choices=("batch", "none")),
    "dataset.negatives_per_positive": _count(1, 1000), "dataset.positive_rating": Spec(float),
    "dataset.size": _count(1, 10**8), "dataset.split_seed": SEED, "dataset.subset_seed": SEED,
    "dataset.task_type": Spec(str, choices=("auto", "classification", "regression")),
    "dataset.features": FLAG, "dataset.derived_features": FLAG,
    "weighting.rc_lr": LEARNING_RATE, "weighting.sims": Spec(str, choices=SIMS),
    "weighting.learn": Spec(str, choices=LEARN),
    # datasets (every loader's keys of these kinds)
    "dataset.*_frac": FRACTION, "dataset.split_fractions": TRAIN_VAL, "dataset.link_split": TRAIN_VAL, "dataset.label_fraction": Spec(float, 0, 1, low_open=True), "dataset.homophily": PROBABILITY,
    "dataset.num_classes": _count(2, 10**6), "dataset.num_*": _count(), "dataset.feat_dim": WIDTH, "dataset.*_degree": _count(), "dataset.item_tags": _count(),
    "dataset.planted_pairs_per_node": _count(), "dataset.edge_holdout": Spec(float, 0, 1, high_open=True),
    "dataset.feature_signal": NON_NEGATIVE, "dataset.graph_seed": SEED, "dataset.negative_seed": SEED,
    "dataset.kg_min_items": _count(), "dataset.download": FLAG, "dataset.relation_names.*": _count(0),
    "dataset.split": Spec(float, 0, 1, low_open=True, high_open=True, each=True, words=("scaffold", "random"), length=2,
                          sum_below=1),
    "dataset.published.positive_rating": Spec(float), "dataset.published.quoted": FLAG, "dataset.trust_pickle": FLAG,
    "dataset.target": Spec(str, choices=("node", "link")),
    "dataset.author_transform": Spec(str, choices=("rotation", "identity")),
    # zero-shot transfer
    "transfer.lambda": NON_NEGATIVE, "transfer.hops": _count(1, 8), "transfer.disc_hidden": WIDTH,
    "transfer.alpha": PROBABILITY, "transfer.critic_lr": LEARNING_RATE, "transfer.critic_steps": _count(1, 1000),
    "transfer.gamma": NON_NEGATIVE, "transfer.layers": _count(1, 1000),
    "transfer.paths": Spec(str, each=True, words=("all",)),
    "transfer.schedule_steps": Spec(int, 0, INT32_MAX, optional=True),
    "transfer.path_weighting": Spec(str, choices=WEIGHTINGS), "transfer.maps": Spec(str, choices=KTN_MAPS),
    "zeroshot.select": Spec(str, choices=("ndcg", "mrr", "f1_micro", "f1_macro", "loss")),
    "zeroshot.source_split": TRAIN_VAL,
    "zeroshot.min_share": Spec(float, 0, 1, low_open=True), "zeroshot.label_features": Spec(str, choices=("drop", "keep")),
    # live curves
    "logger.name": Spec(str, choices=LOGGERS), "logger.flush_secs": _count(),
}


def spec_of(key: str) -> Spec | None:
    """The spec of a dotted key: its exact entry, else the first pattern that matches, else (a
    ``weighting.*`` key) the spec a registered strategy declares for it (``Weighting.keys``)."""
    if key in SCHEMA:
        return SCHEMA[key]
    found = next((s for pattern, s in SCHEMA.items() if "*" in pattern and fnmatch.fnmatchcase(key, pattern)), None)
    if found is None and key.startswith("weighting."):
        from .weighting import REGISTRY as STRATEGIES

        found = next((c.keys[key[10:]] for c in STRATEGIES.values() if key[10:] in c.keys), None)
    return found


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The config with every ``${...}`` resolved, or one message naming the key and what is
    missing (``aux=gpt`` on a dataset without ``dataset.gpt``)."""
    from omegaconf.errors import InterpolationResolutionError

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except InterpolationResolutionError as exc:
        key = getattr(exc, "full_key", "")
        hint = (f"; aux={cfg.aux.name} needs the dataset to name them under dataset.gpt (attr: a node type, "
                f"edge: a relation), as dataset=synthetic, synthetic_xl, reddit and oag_cs do"
                if "dataset.gpt" in str(exc) else "")
        raise AuxrunError(f"{key}: {str(exc).splitlines()[0]}{hint}") from None
    assert isinstance(plain, dict)
    return plain


def validate(cfg: DictConfig) -> None:
    """Every ``${...}`` resolves (:func:`resolved`) and every value :data:`SCHEMA` covers has
    its type and range, keys that name a task name one of the run's tasks
    (:func:`check_task_names`), and the search spaces ``auxrun tune`` would read are valid
    (:func:`auxrun.tuning.space.space_of`), else one error naming key, value and what is allowed. First of
    all, the dataset serves the command (:func:`check_dataset_kind`)."""
    check_dataset_kind(cfg)
    plain = resolved(cfg)
    check_no_mapping_where_a_value_goes(plain)
    for key, value in flat(plain).items():
        spec = spec_of(key)
        if spec is None or key.startswith("hydra."):
            continue
        why = spec.problem(value)
        if why:
            raise AuxrunError(f"{key}={value!r}: {why}; expected {spec.describe()}")
    check_aux_tasks(plain)
    check_task_names(plain)
    check_option_names(plain)
    check_heads(plain)
    check_weighting(plain)
    from .tuning.space import space_of

    space_of(cfg)  # a search space (trainer.search, weighting.search) is checked with the run, not only by tune


def check_no_mapping_where_a_value_goes(tree: dict[str, Any], prefix: str = "") -> None:
    """No non-empty mapping sits at a key that has a spec: a value the schema types
    (``trainer.lr``) given a mapping (``trainer.lr={a: 1}``) is refused like any other value of
    the wrong type, not passed on to the code that reads it. The tree is walked by its own keys,
    since a key may hold dots (``dataset.relation_names``' Freebase names), and its leaves'
    specs cannot tell: the pattern ``dataset.num_*`` also matches ``dataset.num_items.a``."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not name.startswith("hydra."):
            spec = spec_of(name)
            if spec is not None:
                raise AuxrunError(f"{name}={value!r}: a mapping; expected {spec.describe()}")
            check_no_mapping_where_a_value_goes(value, f"{name}.")


# the kinds of data (auxrun.data.KINDS) each command trains on
COMMAND_KINDS = {"zeroshot": ("zeroshot",), "mtl": ("graph", "molecules"), "finetune": ("graph", "molecules"),
                 "pretrain": ("graph", "molecules")}


def check_dataset_kind(cfg: DictConfig) -> None:
    """The dataset's loader serves the command (a zero-shot run needs labelled node types); checked
    before anything else, since a config of the wrong kind lacks keys the rest refers to. An
    unknown loader is left to ``dataset.loader``'s check."""
    from .data import datasets_of

    loader = REGISTRY.get(loader_name(cfg.dataset))
    kinds = COMMAND_KINDS.get(str(cfg.get("command")), ())
    if loader is None or not kinds or set(kinds) & set(loader.kinds):
        return
    fitting = sorted({d for kind in kinds for d in datasets_of(kind)})
    what = ("is not a graph with labelled node types" if kinds == ("zeroshot",)
            else "serves zero-shot transfer only")
    raise AuxrunError(f"dataset={cfg.dataset.name} {what}; {cfg.command} runs on {', '.join(fitting)}")


def check_heads(plain: dict[str, Any]) -> None:
    """An attention backbone's ``backbone.heads`` divide ``backbone.hidden`` (each head gets
    ``hidden / heads`` units); MAGNN's rotation encoder pairs the hidden units into complex
    coordinates, so its ``hidden`` is even."""
    from .models.encoders import ATTENTION

    backbone = plain.get("backbone") or {}
    if not isinstance(backbone, dict):
        return
    hidden, heads = backbone.get("hidden"), backbone.get("heads")
    if backbone.get("name") == "magnn" and isinstance(hidden, int) and hidden % 2:
        raise AuxrunError(f"backbone.hidden={hidden} is odd; backbone=magnn's rotation encoder pairs hidden units "
                          "into complex coordinates")
    if backbone.get("name") not in ATTENTION or "heads" not in backbone:
        return
    if hidden % heads:
        raise AuxrunError(f"backbone.hidden={hidden} is not divisible by backbone.heads={heads}; backbone="
                          f"{backbone['name']} gives each head hidden/heads units")


def check_weighting(plain: dict[str, Any]) -> None:
    """The strategy's own checks of its config (:meth:`~auxrun.weighting.base.Weighting.check`),
    for the class that ``weighting.strategy`` (default ``weighting.name``) names."""
    from .weighting import REGISTRY as STRATEGIES

    settings = plain.get("weighting")
    if isinstance(settings, dict):
        found = STRATEGIES.get(str(settings.get("strategy", settings.get("name"))))
        if found is not None:
            found.check(settings)


# keys whose value names an option of a config group (the automatic pre-training composes with
# them; a group's own name key is its option's)
OPTION_KEYS = {"dataset.pretrain_aux": "aux", "dataset.pretrain_dataset": "dataset", "weighting.strategy": "weighting",
               **{f"{g}.name": g for g in ("aux", "backbone", "dataset", "transfer", "weighting")}}


def check_option_names(plain: dict[str, Any]) -> None:
    """Each key of :data:`OPTION_KEYS` that is set names an option of its group."""
    from .configs import group_options

    for key, group in OPTION_KEYS.items():
        section, _, name = key.partition(".")
        holder = plain.get(section)
        if not isinstance(holder, dict) or name not in holder:
            continue
        value = holder[name]
        if value is None and key != "dataset.pretrain_dataset":  # null there: the run's own dataset
            raise AuxrunError(f"{key}=null: name an option of {group} ({', '.join(group_options(group))})")
        if value is None:
            continue
        options = group_options(group)
        if isinstance(value, (dict, list)) or str(value) not in options:
            raise AuxrunError(f"{key}={value!r}: not an option of {group}; expected one of {', '.join(options)}")


def check_aux_tasks(plain: dict[str, Any]) -> None:
    """Each ``aux.tasks.<name>`` is a mapping with a ``kind`` and the keys that kind reads
    (:data:`auxrun.tasks.SPEC_KEYS`), all of them needed and no other: a missing one would fail
    when the task is built, and a misspelt or foreign one (``mask_rat``, or ``path`` on an
    ``edge_gen`` task) would be ignored in silence. The kind's own value is the schema's."""
    from .tasks import COMMON_SPEC_KEYS, SPEC_KEYS

    aux = plain.get("aux")
    tasks = aux.get("tasks") if isinstance(aux, dict) else None
    for name, spec in (tasks.items() if isinstance(tasks, dict) else ()):
        where = f"aux.tasks.{name}"
        if not isinstance(spec, dict):
            raise AuxrunError(f"{where}={spec!r}: expected a task, a mapping with its kind, e.g. "
                              f"+{where}.kind=edge_pred; kinds: {', '.join(SPEC_KEYS)}")
        kind = spec.get("kind")
        if kind not in SPEC_KEYS:
            raise AuxrunError(f"{where} has no kind: add +{where}.kind=KIND, one of {', '.join(SPEC_KEYS)}"
                              if kind is None else f"{where}.kind={kind!r}: expected one of {', '.join(SPEC_KEYS)}")
        needed, optional = SPEC_KEYS[kind]
        if missing := sorted(needed - spec.keys()):
            raise AuxrunError(f"{where} ({kind}) needs {', '.join(missing)}: add +{where}.{missing[0]}=VALUE")
        if foreign := sorted(spec.keys() - needed - optional - COMMON_SPEC_KEYS):
            raise AuxrunError(f"{where}.{foreign[0]}: a {kind} task has no key {foreign[0]!r}, so nothing would "
                              f"read it; its keys: {', '.join(sorted(needed | optional | COMMON_SPEC_KEYS))}")


def check_task_names(plain: dict[str, Any]) -> None:
    """``weighting.weights.<task>`` names the target or one of the auxiliary set's tasks: a
    misspelt task would otherwise leave its weight at the default in silence."""
    weighting, aux = plain.get("weighting") or {}, plain.get("aux") or {}
    weights = weighting.get("weights") if isinstance(weighting, dict) else None
    if weights is not None and not isinstance(weights, dict):
        raise AuxrunError(f"weighting.weights={weights!r}: expected a mapping of task to weight, e.g. "
                          "+weighting.weights.helpful=0.5")
    if not weights:
        return
    tasks = ["target", *((aux.get("tasks") or {}) if isinstance(aux, dict) else {})]
    for name in weights:
        if name not in tasks:
            raise AuxrunError(f"weighting.weights.{name}: aux={aux.get('name')} has no task {name!r}, so nothing would "
                              f"read this weight; its tasks: {', '.join(tasks)}")


def check_folder(key: str, path: Any) -> None:
    """``key``'s folder exists or can be created, and can be written, else one error."""
    import os
    from pathlib import Path

    if path is None:
        return
    if not str(path).strip():
        raise AuxrunError(f"{key}='': an empty folder name; name the folder to write into")
    folder = Path(str(path)).expanduser()
    resolved = folder.resolve()
    if resolved == Path(resolved.anchor) or (key.startswith("hydra.") and resolved in (Path.cwd().resolve(),
                                                                                    Path.home().resolve())):
        raise AuxrunError(f"{key}={path}: auxrun would write its files straight into {resolved}, among what is "
                          f"already there; name a folder of its own (e.g. {key}=runs/NAME)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AuxrunError(f"{key}={path}: cannot create this folder ({exc.strerror}); choose a writable one") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise AuxrunError(f"{key}={path}: this folder is not writable; choose a writable one")


def check_job_folders(key: str, sweep_dir: Any) -> None:
    """The job folders a relaunched sweep in ``sweep_dir`` goes back to (``<number>_...``) are
    writable folders: Hydra sets a job's folder up before auxrun's boundary can catch anything,
    so one that cannot be written would abort the whole sweep."""
    import os
    import re
    from pathlib import Path

    folder = Path(str(sweep_dir)).expanduser()
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if not re.match(r"\d+_", entry.name):
            continue
        if not entry.is_dir() or not os.access(entry, os.W_OK | os.X_OK) or \
                ((entry / ".hydra").exists() and not os.access(entry / ".hydra", os.W_OK | os.X_OK)):
            raise AuxrunError(f"{key}={sweep_dir}: {entry.name} is not a writable folder, so the job whose folder it "
                              "is could not start and would stop the sweep; make it writable, move it away, or "
                              "choose another sweep folder")


def check_folders(cfg: DictConfig) -> None:
    """The folders a run writes below (``paths.outputs``, ``paths.cache``) are writable."""
    paths = cfg.get("paths") or {}
    for key in ("outputs", "cache"):
        check_folder(f"paths.{key}", paths.get(key))
