"""Creating, joining and finding Optuna studies; a study carries its definition and question with it."""

from __future__ import annotations

import warnings

import numpy as np
import optuna

from lrsearch.errors import ConfigError
from lrsearch.schema import METADATA
from lrsearch.search.pruning import create_pruner
from lrsearch.search.samplers import GroupSampler, create_sampler
from lrsearch.spec.space import Choice
from lrsearch.spec.studies import StudySpec

__all__ = ["join_study", "load_existing", "metadata", "metric_of", "sampler_seed"]


def sampler_seed(spec: StudySpec, worker: str) -> int:
    """Different for every worker: equal seeds would make workers suggest the same configurations."""
    return int(np.random.SeedSequence([spec.seed, *worker.encode()]).generate_state(1)[0])


def _sampler(spec: StudySpec, worker: str, grid: dict[str, list] | None) -> optuna.samplers.BaseSampler:
    """The study's sampler, in a ``GroupSampler`` where the search gives each trial its compared group (a
    grid sampler covers every group by itself, and must not be wrapped)."""
    sampler = create_sampler(spec.sampler, seed=sampler_seed(spec, worker), grid=grid)
    if isinstance(spec.space.find(spec.compare), Choice) and spec.sampler != "grid":
        return GroupSampler(sampler)
    return sampler


def join_study(spec: StudySpec, storage: optuna.storages.BaseStorage, *, worker: str) -> optuna.Study:
    """Create the study named after the file, or join it; refuse one made from a different definition."""
    grid = None
    if spec.sampler == "grid":
        grid = {
            name: [Choice.encode(v) for v in spec.space.find(name).values]  # type: ignore[union-attr]
            for name in spec.space.param_names()
        }
    existing = {s.study_name: s for s in storage.get_all_studies()}
    if spec.name in existing:
        stored = existing[spec.name].user_attrs.get(METADATA, {}).get("definition")
        if stored is not None and stored != spec.definition():
            raise ConfigError(
                f"study {spec.name!r} already exists in this storage with a different definition (trainer, epochs, "
                "space or compare); its trials would not be comparable: rename the study or use another --storage"
            )
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        sampler=_sampler(spec, worker, grid),
        pruner=create_pruner(spec.pruner, spec.pruner_config),
        direction="maximize" if spec.resolved_trainer.maximize else "minimize",
        load_if_exists=True,
    )
    if METADATA not in study.user_attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([f"val_{spec.resolved_trainer.metric}"])  # the dashboard's name for the objective
        study.set_user_attr(
            METADATA,
            {
                "question": spec.question,
                "trainer": spec.trainer,
                "compare": spec.compare,
                "repeats": spec.repeats,
                "max_repeats": spec.max_repeats or spec.repeats,
                "metric": spec.resolved_trainer.metric,
                "definition": spec.definition(),
            },
        )
    return study


def load_existing(name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """A study that must exist (report, export)."""
    names = sorted(s.study_name for s in storage.get_all_studies())
    if name not in names:
        raise ConfigError(f"no study named {name!r} in this storage (it has: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=name, storage=storage)


def metric_of(study: optuna.Study) -> str:
    """What the study's values measure (accuracy for a study made before problems named their metric)."""
    return str(metadata(study).get("metric", "accuracy"))


def metadata(study: optuna.Study) -> dict:
    """What the study was asked to answer; empty for a study lrsearch did not create."""
    return dict(study.user_attrs.get(METADATA, {}))
