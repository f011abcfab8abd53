"""Late-fusion reduce (paper §II-E, §III-F; docs/method.md §6).

For each target task, every member's stored test scores are fused without retraining:

- for each test patch (dataset, clip, image, patch_index), the softmax vectors of every member
  that scored it are summed and the argmax is the patch's vote. A member scores exactly its own
  test split: TUT's evaluation set is shared, so all members score it (the `diff` image only the
  quadruple members); an ESC clip is in one division's test fold, so only that division's
  members score it, and the AEC accuracy covers all test folds together;
- a recording's prediction is the majority vote of its patches over all its channel images
  (`raymtl.train.evaluate.vote`: ties go to the larger summed score);
- subsets come from the same scores: the paper's 8-member ensembles (the division models of one
  triple repeat plus those of one quadruple repeat, every pairing) and accuracy against ensemble
  size, with groups of (repeat, variant) models so that every test clip keeps its votes.

Member scores are accumulated per group, (G groups, N patches, P classes) float64, so a subset is
a sum of at most G arrays and the full scores are never held twice.

Outputs, written atomically: RUN/ensemble/summary.json and RUN/ensemble/predictions.parquet.
Standard deviations are population ones (ddof=0), as numpy's default.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raymtl import schema, storage
from raymtl.ensemble.plan import EnsemblePlan, read_plan
from raymtl.ensemble.table1 import table1
from raymtl.errors import InputFileError, UserError
from raymtl.run import layout, records
from raymtl.run.records import EnsembleSummary, MemberAccuracy, TaskSummary
from raymtl.tracking import check_mlflow, log_ensemble
from raymtl.train import trial as T
from raymtl.train.evaluate import RecordingVotes, vote
from raymtl.train.scoring import SCORES, TASK, scores_matrix

log = logging.getLogger(__name__)

SUMMARY_FILE, PREDICTIONS_FILE = layout.SUMMARY, layout.PREDICTIONS  # under RUN/ensemble/

# A test patch, and a recording, are identified by these columns of the scores table.
PATCH_KEY = (schema.DATASET, schema.CLIP, schema.IMAGE, schema.PATCH_INDEX)
RECORDING_KEY = (schema.DATASET, schema.CLIP)
_KEY_SCHEMA = pa.schema(
    [
        (schema.DATASET, pa.string()),
        (schema.CLIP, pa.string()),
        (schema.IMAGE, pa.string()),
        (schema.PATCH_INDEX, pa.int32()),
    ]
)
_ROW = "__row"  # helper columns for the patch-key join
_INDEX = "__patch"

# predictions.parquet: one row per (task, recording).
PREDICTION = "prediction"
CORRECT = "correct"
N_MEMBERS = "n_members"  # per recording: members that scored any of its patches; per task: members fused
VOTES = "votes"  # list<int32> (P,): patch votes per class (argmax of the fused patch scores)
SUMMED_SCORES = "summed_scores"  # list<float64> (P,): fused scores summed over the recording's patches
PREDICTIONS_SCHEMA = pa.schema(
    [
        (TASK, pa.string()),
        (schema.DATASET, pa.string()),
        (schema.CLIP, pa.string()),
        (schema.LABEL, pa.int32()),
        (PREDICTION, pa.int32()),
        (CORRECT, pa.bool_()),
        (N_MEMBERS, pa.int32()),
        (VOTES, pa.list_(pa.int32())),
        (SUMMED_SCORES, pa.list_(pa.float64())),
    ]
)
PREDICTION_COLUMNS = tuple(PREDICTIONS_SCHEMA.names)

# summary.json: raymtl.run.records.EnsembleSummary (one TaskSummary per task).
NOTE = "note"  # in eight_member, when it was skipped

STD_CONVENTION = "population (ddof=0)"
COMBINATION_CAP = 50  # subsets evaluated per ensemble size, at most (a seeded sample beyond it)
_COMBINATION_SEED = 0


@dataclass
class _TaskScores:
    """One task's member scores, aligned on the union of the test patches they cover."""

    task: str
    groups: list[tuple[int, str]]  # (repeat, variant), index = group number
    present: list[T.TrialSpec] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # trial -> reason
    keys: pa.Table | None = None  # the union of patch keys, sorted, one row per patch
    patch_rec: np.ndarray | None = None  # (N,) recording number of each patch
    rec_dataset: np.ndarray | None = None  # (R,)
    rec_clip: np.ndarray | None = None  # (R,)
    labels: np.ndarray | None = None  # (N,)
    group_sum: np.ndarray | None = None  # (G, N, P) summed member scores per group
    group_count: np.ndarray | None = None  # (G, N) members of the group that scored the patch
    rec_members: np.ndarray | None = None  # (R,) members that scored any patch of the recording
    member_accuracy: dict[str, float] = field(default_factory=dict)

    def group_of(self, spec: T.TrialSpec) -> int:
        return self.groups.index((spec.repeat, spec.variant))

    def present_in(self, groups: Sequence[int]) -> int:
        wanted = {self.groups[g] for g in groups}
        return sum((s.repeat, s.variant) in wanted for s in self.present)


def reduce_run(
    run: str,
    *,
    allow_partial: bool = False,
    plan: EnsemblePlan | None = None,
    mlflow_uri: str | None = None,
) -> dict[str, Any]:
    """Fuse the stored member scores of RUN; write and return the summary (see module docstring),
    and log its final figures to TensorBoard (RUN/tb/ensemble) and, with a URI, to MLflow
    (raymtl.tracking).

    Raises `UserError` naming every missing member (no result.json, or no scores for the task)
    unless `allow_partial`, in which case the members present are fused and the rest listed.
    """
    plan = plan if plan is not None else read_plan(run)
    check_mlflow(mlflow_uri)
    fs, run_path = storage.resolve(run)
    t0 = time.perf_counter()

    scans = {task: _scan(run, plan, task) for task in plan.tasks}
    missing = [(task, s) for task, s in scans.items() if s.missing]
    if missing and not allow_partial:
        parts = [
            f"{len(s.missing)} of {len(s.missing) + len(s.present)} {task} members missing: "
            + ", ".join(f"{name} ({why})" for name, why in s.missing.items())
            for task, s in missing
        ]
        raise UserError(
            f"cannot fuse {run}: " + "; ".join(parts) + "; rerun `raymtl ensemble` or pass --allow-partial"
        )
    if not any(s.present for s in scans.values()):
        raise UserError(f"cannot fuse {run}: no ensemble member has finished ({plan.describe()})")

    tasks, predictions = {}, []
    for task, scan in scans.items():
        if scan.missing:
            log.warning(
                "%s: fusing without %d missing members: %s", task, len(scan.missing), ", ".join(scan.missing)
            )
        if not scan.present:
            tasks[task] = _empty_task_summary(scan)
            continue
        _accumulate(run, scan)
        summary, table = _summarise(scan, plan)
        scan.group_sum = scan.group_count = None  # the next task's sums need the memory
        tasks[task] = summary
        predictions.append(table)
        log.info(
            "%s: %d members, %d recordings, ensemble accuracy %.4f (members %.4f on average)",
            task,
            summary.n_members,
            summary.n_recordings,
            summary.ensemble_accuracy,
            summary.member_accuracy.mean,
        )

    summary = EnsembleSummary(
        plan=plan.to_dict(),
        allow_partial=allow_partial,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        std=STD_CONVENTION,
        combination_cap=COMBINATION_CAP,
        tasks=tasks,
    )
    buf = io.BytesIO()
    pq.write_table(pa.concat_tables(predictions), buf)
    storage.write_bytes(fs, layout.predictions(run_path), buf.getvalue())
    records.write_summary(fs, run_path, summary)
    log_ensemble(run, summary.to_dict(), mlflow_uri)
    log.info("reduce of %s done in %.1f s", run, time.perf_counter() - t0)
    return summary.to_dict()


# ---------------------------------------------------------------- loading


def _read_scores(fs, path: str, task: str, columns: Sequence[str]) -> pa.Table:
    try:
        return pq.read_table(path, filesystem=fs, columns=list(columns), filters=[(TASK, "==", task)])
    except (pa.ArrowInvalid, OSError) as e:
        raise InputFileError(path, f"unreadable scores table ({e})") from None


def _scan(run: str, plan: EnsemblePlan, task: str) -> _TaskScores:
    """First pass: which members are there, and the union of the test patches they scored."""
    fs, run_path = storage.resolve(run)
    scan = _TaskScores(task=task, groups=plan.groups())
    keys = None
    for spec in plan.members(task):
        if not storage.is_file(fs, layout.result(run_path, spec.name)):
            scan.missing[spec.name] = "not finished"
            continue
        path = layout.scores(run_path, spec.name)
        if not storage.is_file(fs, path):
            scan.missing[spec.name] = f"no {layout.SCORES}"
            continue
        member_keys = _read_scores(fs, path, task, PATCH_KEY)
        if member_keys.num_rows == 0:
            scan.missing[spec.name] = f"no {task} scores"
            continue
        member_keys = member_keys.select(list(PATCH_KEY)).cast(_KEY_SCHEMA)
        scan.present.append(spec)
        both = member_keys if keys is None else pa.concat_tables([keys, member_keys])
        keys = both.group_by(list(PATCH_KEY), use_threads=False).aggregate([])
    if keys is None:
        return scan
    keys = keys.sort_by([(k, "ascending") for k in PATCH_KEY])
    scan.keys = keys.append_column(_INDEX, pa.array(np.arange(keys.num_rows, dtype=np.int64)))
    # Keys are sorted, so a recording's patches are consecutive rows.
    ds = keys.column(schema.DATASET).to_numpy(zero_copy_only=False)
    clip = keys.column(schema.CLIP).to_numpy(zero_copy_only=False)
    first = np.ones(len(ds), dtype=bool)
    first[1:] = (ds[1:] != ds[:-1]) | (clip[1:] != clip[:-1])
    scan.patch_rec = np.cumsum(first) - 1
    scan.rec_dataset, scan.rec_clip = ds[first], clip[first]
    return scan


def _accumulate(run: str, scan: _TaskScores) -> None:
    """Second pass: add every member's scores into its group's sums, aligned on the patch keys."""
    fs, run_path = storage.resolve(run)
    n_patches, n_groups = scan.keys.num_rows, len(scan.groups)
    scan.labels = np.full(n_patches, -1, dtype=np.int64)
    scan.group_count = np.zeros((n_groups, n_patches), dtype=np.int32)
    scan.rec_members = np.zeros(len(scan.rec_clip), dtype=np.int32)
    index_keys = scan.keys.select([*PATCH_KEY, _INDEX])
    for i, spec in enumerate(scan.present, 1):
        path = layout.scores(run_path, spec.name)
        table = _read_scores(fs, path, scan.task, [*PATCH_KEY, schema.LABEL, SCORES])
        n = table.num_rows
        member_keys = table.select(list(PATCH_KEY)).cast(_KEY_SCHEMA)
        member_keys = member_keys.append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
        joined = member_keys.join(index_keys, keys=list(PATCH_KEY), join_type="inner", use_threads=False)
        if joined.num_rows != n:
            raise InputFileError(
                path, f"{n - joined.num_rows} {scan.task} rows with null or changed patch keys"
            )
        idx = np.empty(n, dtype=np.int64)
        idx[joined.column(_ROW).to_numpy()] = joined.column(_INDEX).to_numpy()
        if np.bincount(idx, minlength=n_patches).max() > 1:
            raise InputFileError(path, f"a {scan.task} test patch is scored more than once")
        scores = scores_matrix(table)  # (n, P)
        labels = table.column(schema.LABEL).to_numpy(zero_copy_only=False).astype(np.int64)
        if scan.group_sum is None:
            scan.group_sum = np.zeros((n_groups, n_patches, scores.shape[1]), dtype=np.float64)
        elif scores.shape[1] != scan.group_sum.shape[2]:
            raise InputFileError(
                path,
                f"{scores.shape[1]} {scan.task} classes where other members have {scan.group_sum.shape[2]}",
            )
        known = scan.labels[idx]
        clash = (known >= 0) & (known != labels)
        if clash.any():
            j = int(np.argmax(clash))
            raise InputFileError(
                path, f"label {labels[j]} of a patch of {table.column(schema.CLIP)[j]} differs"
            )
        scan.labels[idx] = labels

        g = scan.group_of(spec)
        scan.group_sum[g, idx] += scores  # idx is unique within a member
        scan.group_count[g, idx] += 1
        scan.rec_members[np.unique(scan.patch_rec[idx])] += 1
        scan.member_accuracy[spec.name] = vote(scan.patch_rec[idx], scores, labels).accuracy
        log.debug("%s: %s added (%d/%d, %d patches)", scan.task, spec.name, i, len(scan.present), n)


# ---------------------------------------------------------------- fusion and subsets


def _fused_votes(scan: _TaskScores, groups: Sequence[int]) -> RecordingVotes | None:
    """Votes of the ensemble of `groups`: patch scores summed over their members, then voted.

    Only patches that at least one of the members scored take part (a triple-only subset does not
    vote on `diff` patches).
    """
    fused = scan.group_sum[groups[0]].copy()  # (N, P)
    count = scan.group_count[groups[0]].copy()  # (N,)
    for g in groups[1:]:
        fused += scan.group_sum[g]
        count += scan.group_count[g]
    scored = count > 0
    if not scored.any():
        return None
    return vote(scan.patch_rec[scored], fused[scored], scan.labels[scored])


def _accuracy(scan: _TaskScores, groups: Sequence[int]) -> float | None:
    votes = _fused_votes(scan, groups)
    return votes.accuracy if votes is not None else None


def _combinations(n: int, k: int, cap: int) -> list[tuple[int, ...]]:
    """All k-subsets of range(n) in lexicographic order, or a seeded sample of `cap` of them."""
    if math.comb(n, k) <= cap:
        return list(itertools.combinations(range(n), k))
    rng = np.random.default_rng(_COMBINATION_SEED)
    chosen: set[tuple[int, ...]] = set()
    while len(chosen) < cap:
        chosen.add(tuple(sorted(int(i) for i in rng.choice(n, size=k, replace=False))))
    return sorted(chosen)


def _stats(values: Sequence[float | None]) -> dict[str, float | int | None]:
    vals = np.array([v for v in values if v is not None], dtype=np.float64)
    if not len(vals):
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(vals.mean()), "std": float(vals.std(ddof=0)), "n": int(len(vals))}


def _table1(scan: _TaskScores, plan: EnsemblePlan) -> dict[str, Any]:
    """Paper Table I for the members (raymtl.ensemble.table1), per variant and "all"."""
    accuracies = [(s.repeat, s.variant, scan.member_accuracy[s.name]) for s in scan.present]
    return {
        name: {
            "mean": cell.mean,
            "std": cell.std,
            "n_repeats": cell.n_repeats,
            "per_repeat": {str(r): acc for r, acc in cell.per_repeat.items()},
        }
        for name, cell in table1(accuracies, plan.variants).items()
    }


def _eight_member(scan: _TaskScores, plan: EnsemblePlan) -> dict[str, Any]:
    """Paper §III-F: the division models of one triple repeat plus those of one quadruple repeat."""
    if not {"triple", "quadruple"} <= set(plan.variants):
        return {
            "combinations": [],
            "mean": None,
            NOTE: f"skipped: needs triple and quadruple models, the plan has only {', '.join(plan.variants)}",
        }
    combos = []
    for rt in plan.repeats:
        for rq in plan.repeats:
            groups = [scan.groups.index((rt, "triple")), scan.groups.index((rq, "quadruple"))]
            combos.append(
                {
                    "triple_repeat": rt,
                    "quadruple_repeat": rq,
                    "members": scan.present_in(groups),
                    "accuracy": _accuracy(scan, groups),
                }
            )
    return {"combinations": combos, "mean": _stats([c["accuracy"] for c in combos])["mean"]}


def _by_size(scan: _TaskScores, plan: EnsemblePlan) -> list[dict[str, Any]]:
    """Accuracy against ensemble size; each (repeat, variant) group brings one model per division."""
    n_groups, rows = len(scan.groups), []
    for k in range(1, n_groups + 1):
        combos = _combinations(n_groups, k, COMBINATION_CAP)
        accs = [a for a in (_accuracy(scan, c) for c in combos) if a is not None]
        rows.append(
            {
                "groups": k,
                "members": k * len(plan.divisions),
                "combinations": len(combos),
                "total_combinations": math.comb(n_groups, k),
                "mean": float(np.mean(accs)) if accs else None,
                "min": float(np.min(accs)) if accs else None,
                "max": float(np.max(accs)) if accs else None,
            }
        )
    return rows


def _summarise(scan: _TaskScores, plan: EnsemblePlan) -> tuple[TaskSummary, pa.Table]:
    all_groups = list(range(len(scan.groups)))
    votes = _fused_votes(scan, all_groups)
    assert votes is not None  # at least one member is present
    member = _stats(list(scan.member_accuracy.values()))
    summary = TaskSummary(
        n_planned=len(scan.present) + len(scan.missing),
        n_members=len(scan.present),
        members=tuple(s.name for s in scan.present),
        missing=tuple(scan.missing),
        missing_reasons=dict(scan.missing),
        ensemble_accuracy=votes.accuracy,
        n_recordings=int(len(votes.clips)),
        n_patches=int(scan.keys.num_rows),
        n_classes=int(scan.group_sum.shape[2]),
        member_accuracy=MemberAccuracy(
            member["mean"], member["std"], member["n"], dict(scan.member_accuracy)
        ),
        table1=_table1(scan, plan),
        eight_member=_eight_member(scan, plan),
        by_size=tuple(_by_size(scan, plan)),
    )
    return summary, _predictions_table(scan, votes)


def _empty_task_summary(scan: _TaskScores) -> TaskSummary:
    return TaskSummary(
        n_planned=len(scan.missing),
        n_members=0,
        members=(),
        missing=tuple(scan.missing),
        missing_reasons=dict(scan.missing),
        ensemble_accuracy=None,
        n_recordings=0,
        n_patches=0,
        n_classes=None,
        member_accuracy=MemberAccuracy(None, None, 0, {}),
        table1={},
        eight_member={"combinations": [], "mean": None},
        by_size=(),
        note=f"no {scan.task} member has finished; nothing fused",
    )


def _list_column(values: np.ndarray, value_type: pa.DataType) -> pa.Array:
    n, width = values.shape
    offsets = pa.array(np.arange(0, n * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), value_type))


def _predictions_table(scan: _TaskScores, votes: RecordingVotes) -> pa.Table:
    rec = votes.clips  # recording numbers
    return pa.table(
        {
            TASK: pa.array([scan.task] * len(rec), pa.string()),
            schema.DATASET: pa.array(scan.rec_dataset[rec], pa.string()),
            schema.CLIP: pa.array(scan.rec_clip[rec], pa.string()),
            schema.LABEL: pa.array(votes.labels, pa.int32()),
            PREDICTION: pa.array(votes.predictions, pa.int32()),
            CORRECT: pa.array(votes.predictions == votes.labels, pa.bool_()),
            N_MEMBERS: pa.array(scan.rec_members[rec], pa.int32()),
            VOTES: _list_column(votes.votes, pa.int32()),
            SUMMED_SCORES: _list_column(votes.summed_scores, pa.float64()),
        },
        schema=PREDICTIONS_SCHEMA,
    )
