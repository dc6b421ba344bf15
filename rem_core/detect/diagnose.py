"""Where a detector's boxes of long vehicles go wrong: size, height, heading, fragments.

A detector can miss Large vehicles at 3D IoU 0.5 for reasons that call for different fixes:
it does not find them (recall at a loose overlap), it finds them but boxes them too short
(a length error the 3D IoU compounds with height and heading), or it covers one vehicle with
several car-sized boxes (fragments). ``box_errors`` measures each of these per ground-truth
box, from a loose bird's-eye-view match (BEV IoU >= 0.1 by default), so that a box too short
to pass 3D IoU 0.5 is still seen and measured.

Box convention: ``rem_core.geometry.boxes`` (vehicle frame, metres, heading in [-pi, pi)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rem_core.evaluation import LEVEL_1_MIN_POINTS, evaluate_detections
from rem_core.geometry import iou_3d_pairs, wrap_angle
from rem_core.schema import BOX_COLUMNS

__all__ = ["box_errors", "summarize_box_errors"]

_KEYS = ["segment_id", "frame_index"]


def box_errors(
    detections: pd.DataFrame,
    ground_truth: pd.DataFrame,
    *,
    match_iou: float = 0.1,
    min_points: int = LEVEL_1_MIN_POINTS,
    fragment_score: float = 0.3,
) -> pd.DataFrame:
    """The error of each ground-truth vehicle's best loose match, and its fragments.

    Matching is the evaluation's score-first greedy matching (``evaluate_detections``) at
    BEV IoU ``match_iou``: a loose threshold, so that boxes of the right place but the wrong
    size are matched and their errors measured.

    A *fragment* of a ground-truth box is a detection scoring at least ``fragment_score``,
    other than the box's match, whose centre lies inside the box's footprint: a second box
    on the same vehicle (the tracker would make it a second track).

    Args:
        detections: ``DETECTIONS`` columns (or the box columns, ``segment_id, frame_index,
            class, score``).
        ground_truth: ``BOXES`` columns; ``subtype`` and ``num_points`` are used if present.
        match_iou: BEV IoU of a match, in (0, 1].
        min_points: ground truth with fewer points is left out (Waymo LEVEL_1: 6).
        fragment_score: detections scoring below this are not counted as fragments.

    Returns:
        One row per evaluated vehicle box: ``segment_id, frame_index, subtype, subset,
        num_points, length`` (true, m), ``matched`` (bool), ``length_ratio, width_ratio,
        height_ratio`` (predicted / true), ``z_error`` (predicted - true centre z, m),
        ``heading_error_deg`` (of the box axis, in [0, 90]: a box turned by a half turn
        is the same box), ``iou_bev`` and ``iou_3d`` of the match, ``fragments`` (int).
        Error columns are NaN for an unmatched box.
    """
    vehicles = ground_truth[ground_truth["class"] == "vehicle"]
    ev = evaluate_detections(
        detections, vehicles, iou_threshold=match_iou, iou="bev", min_points=min_points
    )
    gt = vehicles.iloc[ev.gt["gt_index"].to_numpy()]
    gt_boxes = gt[BOX_COLUMNS].to_numpy(np.float64)
    pred_index = ev.gt["pred_index"].to_numpy()
    matched = pred_index >= 0
    pred_boxes = np.full_like(gt_boxes, np.nan)
    pred_boxes[matched] = detections[BOX_COLUMNS].to_numpy(np.float64)[pred_index[matched]]

    out = pd.DataFrame(
        {
            "segment_id": gt["segment_id"].to_numpy(),
            "frame_index": gt["frame_index"].to_numpy(),
            "subtype": gt["subtype"].to_numpy() if "subtype" in gt else "",
            "subset": ev.gt["subset"].to_numpy(),
            "num_points": gt["num_points"].to_numpy() if "num_points" in gt else -1,
            "length": gt_boxes[:, 3],
            "matched": matched,
        }
    )
    for k, name in ((3, "length_ratio"), (4, "width_ratio"), (5, "height_ratio")):
        out[name] = pred_boxes[:, k] / gt_boxes[:, k]
    out["z_error"] = pred_boxes[:, 2] - gt_boxes[:, 2]
    axis = np.abs(wrap_angle(2 * (pred_boxes[:, 6] - gt_boxes[:, 6]))) / 2  # mod a half turn
    out["heading_error_deg"] = np.degrees(axis)
    out["iou_bev"] = ev.gt["iou"].to_numpy()
    iou3 = np.full(len(out), np.nan)
    if matched.any():
        iou3[matched] = iou_3d_pairs(pred_boxes[matched], gt_boxes[matched])
    out["iou_3d"] = iou3
    out["fragments"] = _fragments(detections, gt, pred_index, fragment_score)
    return out


def _fragments(
    detections: pd.DataFrame, gt: pd.DataFrame, pred_index: np.ndarray, min_score: float
) -> np.ndarray:
    """Detections other than each box's match whose centre lies in the box's footprint."""
    det = detections.reset_index(drop=True)
    strong = det.index[det["score"].to_numpy() >= min_score].to_numpy()
    counts = np.zeros(len(gt), np.int64)
    if not len(strong) or not len(gt):
        return counts
    det_groups = det.iloc[strong].groupby(_KEYS, sort=False).indices
    gt_groups = gt.reset_index(drop=True).groupby(_KEYS, sort=False).indices
    det_boxes = det[BOX_COLUMNS].to_numpy(np.float64)
    gt_boxes = gt[BOX_COLUMNS].to_numpy(np.float64)
    for key, g_rows in gt_groups.items():
        d_rows = det_groups.get(key)
        if d_rows is None:
            continue
        d_rows = strong[d_rows]
        g = gt_boxes[g_rows]
        d = det_boxes[d_rows, :2][None] - g[:, None, :2]  # (G, D, 2) in the frame of the GT
        cos, sin = np.cos(g[:, 6])[:, None], np.sin(g[:, 6])[:, None]
        inside = (np.abs(cos * d[..., 0] + sin * d[..., 1]) <= g[:, 3, None] / 2) & (
            np.abs(-sin * d[..., 0] + cos * d[..., 1]) <= g[:, 4, None] / 2
        )
        inside &= d_rows[None, :] != pred_index[g_rows][:, None]
        counts[g_rows] = inside.sum(1)
    return counts


def summarize_box_errors(errors: pd.DataFrame, subset: str = "large") -> dict[str, object]:
    """Medians of a subset's errors, overall and by subtype.

    Args:
        errors: ``box_errors``'s table.
        subset: ``"large"``, ``"regular"`` or ``"all"``.

    Returns:
        A JSON-ready dict: ``n_boxes``, ``found`` (share matched), the medians of
        ``length_ratio, width_ratio, height_ratio, z_error, heading_error_deg, iou_3d`` over
        matched boxes, ``fragments_per_box`` (mean over all boxes of the subset), and
        ``by_subtype``: the same per subtype, with ``n_boxes``.
    """
    rows = errors if subset == "all" else errors[errors["subset"] == subset]

    def stats(t: pd.DataFrame) -> dict[str, float]:
        hit = t[t["matched"]]
        out: dict[str, float] = {"n_boxes": len(t), "found": _r(t["matched"].mean())}
        for col in (
            "length_ratio",
            "width_ratio",
            "height_ratio",
            "z_error",
            "heading_error_deg",
            "iou_3d",
        ):
            out[col] = _r(hit[col].median()) if len(hit) else float("nan")
        out["fragments_per_box"] = _r(t["fragments"].mean()) if len(t) else float("nan")
        return out

    summary: dict[str, object] = stats(rows)
    summary["by_subtype"] = {
        str(name): stats(t) for name, t in rows.groupby("subtype", sort=True) if len(t)
    }
    return summary


def _r(value: float) -> float:
    return round(float(value), 4) if np.isfinite(value) else float("nan")
