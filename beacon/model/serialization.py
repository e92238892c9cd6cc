"""A model as one npz blob: weights, id maps, vocabularies and config (no pickle)."""
from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import numpy as np

from beacon.config import ModelConfig
from beacon.errors import BeaconError
from beacon.features import PLACE_FEATURES, Vocabulary
from beacon.idmap import IdMap
from beacon.model.coattendance import CoAttendance
from beacon.model.content_part import NEIGHBOURS, ContentPart
from beacon.model.trend import TrendPart

if TYPE_CHECKING:
    from beacon.model.hybrid import HybridModel

FORMAT = "beacon-hybrid/1"
_WEIGHT_KEYS = ("user_id", "user_tok", "event_id", "event_id_bias", "event_tok", "event_tok_bias",
                "contrast_vectors", "contrast_bias")
# Added with the place term; a blob written before it lacks them and loads with no place term.
_OPTIONAL_KEYS = ("place_w", "place_center", "contrast_lat", "contrast_lon")


def model_to_bytes(model: HybridModel) -> bytes:
    """Weights, id maps, vocabularies and config in one npz blob (no pickle)."""
    model._require()
    meta = {
        "format": FORMAT,
        "config": model.config.to_dict(),
        "user_vocab": model.user_vocab.tokens,
        "event_vocab": model.event_vocab.tokens,
        "counts": model.counts,
        "loss_history": model.loss_history,
        "device": model.device,
        "validation": model.validation,
        "contrast_cities": model.contrast_cities,
    }
    co = model.coattendance
    if co is not None:
        meta["coattendance"] = {"weight": co.weight, "lambda": co.lam, "recency": co.recency}
    arrays = {k: model.weights[k] for k in (*_WEIGHT_KEYS, *_OPTIONAL_KEYS)
              if k in model.weights}
    if co is not None:
        # float16 halves the largest array of the blob; ranking does not need more precision
        arrays["co_event_ids"] = np.asarray(co.event_ids, dtype=np.int64)
        arrays["co_matrix"] = co.matrix.astype(np.float16)
    content = model.content
    if content is not None:
        meta["content"] = {"weight": content.weight, "terms": list(content.terms),
                           "trained": content.trained, "neighbours": content.neighbours,
                           "popularity_weight": content.popularity_weight}
        arrays["content_idf"] = np.asarray(content.idf, dtype=np.float32)
        arrays["content_event_ids"] = np.asarray(content.event_ids, dtype=np.int64)
        arrays["content_indptr"] = content.matrix.indptr.astype(np.int64)
        arrays["content_indices"] = content.matrix.indices.astype(np.int32)
        arrays["content_data"] = content.matrix.data.astype(np.float16)
        arrays["content_pool"] = np.asarray(content.pool, dtype=np.int64)
        arrays["content_thresholds"] = np.asarray(content.thresholds, dtype=np.float32)
        arrays["content_popularity"] = np.asarray(content.popularity, dtype=np.float32)
    trend = model.trend
    if trend is not None:
        meta["trend"] = {"as_of": trend.as_of, "half_life_days": trend.half_life_days,
                         "weight_known": trend.weight_known, "weight_new": trend.weight_new}
        arrays["trend_event_ids"] = np.asarray(trend.event_ids, dtype=np.int64)
        arrays["trend_counts"] = np.asarray(trend.counts, dtype=np.float32)
    arrays["user_ids"] = np.asarray(model.user_map.to_list(), dtype=np.int64)
    arrays["event_ids"] = np.asarray(model.event_map.to_list(), dtype=np.int64)
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def model_from_bytes(cls: type[HybridModel], blob: bytes) -> HybridModel:
    """Load a blob written by to_bytes. Never executes code from the blob; a damaged or
    foreign blob raises BeaconError."""
    if not blob:
        raise BeaconError("model blob is empty")
    try:
        with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except Exception as error:  # noqa: BLE001 - any parse failure is a corrupt blob
        raise BeaconError(f"model blob is corrupt or not a Beacon model: "
                          f"{type(error).__name__}: {error}") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BeaconError(f"model blob has an unknown format: "
                          f"{meta.get('format') if isinstance(meta, dict) else meta!r}")
    missing = [k for k in (*_WEIGHT_KEYS, "user_ids", "event_ids") if k not in arrays]
    if missing:
        raise BeaconError(f"model blob is missing {', '.join(missing)}")
    coattendance = _coattendance(arrays, meta)
    content = _content(arrays, meta)
    trend = _trend(arrays, meta)
    model = cls(
        config=ModelConfig.from_dict(meta["config"]),
        user_map=IdMap(arrays.pop("user_ids")),
        event_map=IdMap(arrays.pop("event_ids")),
        user_vocab=Vocabulary(meta["user_vocab"]),
        event_vocab=Vocabulary(meta["event_vocab"]),
        weights=arrays, counts=meta.get("counts"), loss_history=meta.get("loss_history"),
        device=meta.get("device", "cpu"), validation=meta.get("validation"),
        contrast_cities=meta.get("contrast_cities"),
    )
    _check_shapes(model)
    model.coattendance = coattendance
    model.content = content
    model.trend = trend
    return model


def _trend(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> TrendPart | None:
    """The stored trend component, or None (a blob without one scores as before)."""
    trend_meta = meta.get("trend")
    ids, counts = arrays.pop("trend_event_ids", None), arrays.pop("trend_counts", None)
    if not trend_meta or ids is None or counts is None:
        return None
    if ids.shape != counts.shape or ids.ndim != 1:
        raise BeaconError(f"model blob is inconsistent: trend_event_ids has shape {ids.shape}, "
                          f"trend_counts {counts.shape}")
    return TrendPart(ids.astype(np.int64), counts.astype(np.float32), int(trend_meta["as_of"]),
                     float(trend_meta["half_life_days"]), float(trend_meta["weight_known"]),
                     float(trend_meta["weight_new"]))


_CONTENT_KEYS = ("content_idf", "content_event_ids", "content_indptr", "content_indices",
                 "content_data", "content_pool", "content_thresholds")


def _content(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> ContentPart | None:
    """The stored content component, or None (a blob without one scores as before)."""
    import scipy.sparse as sp

    found = {key: arrays.pop(key, None) for key in _CONTENT_KEYS}
    popularity = arrays.pop("content_popularity", None)  # absent from older blobs
    content_meta = meta.get("content")
    if not content_meta or any(value is None for value in found.values()):
        return None
    terms = [str(t) for t in content_meta.get("terms") or []]
    n_events, width = len(found["content_event_ids"]), len(terms)
    pointers = found["content_indptr"]
    if len(found["content_idf"]) != width or len(pointers) != n_events + 1 or \
            pointers[-1] != len(found["content_data"]) or \
            len(found["content_indices"]) != len(found["content_data"]) or \
            (len(found["content_indices"]) and found["content_indices"].max() >= width) or \
            len(found["content_thresholds"]) != n_events or \
            (len(found["content_pool"]) and found["content_pool"].max() >= n_events) or \
            (popularity is not None and len(popularity) not in (0, width)):
        raise BeaconError("model blob is inconsistent: the content component's arrays do not "
                          "match its vocabulary and events")
    matrix = sp.csr_matrix((found["content_data"].astype(np.float32), found["content_indices"],
                            pointers), shape=(n_events, width))
    return ContentPart(terms, found["content_idf"].astype(np.float32),
                       found["content_event_ids"].astype(np.int64), matrix,
                       float(content_meta["weight"]), found["content_pool"].astype(np.int64),
                       int(content_meta.get("trained", 0)),
                       found["content_thresholds"].astype(np.float32),
                       int(content_meta.get("neighbours", NEIGHBOURS)),
                       np.zeros(0, np.float32) if popularity is None
                       else popularity.astype(np.float32),
                       float(content_meta.get("popularity_weight", 0.0)))


def _coattendance(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> CoAttendance | None:
    """The stored co-attendance component, or None (a blob without one scores as before)."""
    co_meta = meta.get("coattendance")
    ids, matrix = arrays.pop("co_event_ids", None), arrays.pop("co_matrix", None)
    if not co_meta or ids is None or matrix is None:
        return None
    if matrix.shape != (len(ids), len(ids)):
        raise BeaconError(f"model blob is inconsistent: co_matrix has shape {matrix.shape}, "
                          f"expected {(len(ids), len(ids))}")
    return CoAttendance(ids.astype(np.int64), matrix.astype(np.float32),
                        float(co_meta["weight"]), float(co_meta["lambda"]),
                        float(co_meta.get("recency", 0.0)))


def _check_shapes(model: HybridModel) -> None:
    w = model.weights
    d = w["event_tok"].shape[1] if w["event_tok"].ndim == 2 else -1
    expected = {
        "user_id": (len(model.user_map), d), "user_tok": (len(model.user_vocab), d),
        "event_id": (len(model.event_map), d), "event_id_bias": (len(model.event_map),),
        "event_tok": (len(model.event_vocab), d), "event_tok_bias": (len(model.event_vocab),),
    }
    n_place = len(PLACE_FEATURES)
    for key, shape in (("place_w", (n_place,)), ("place_center", (n_place,))):
        if key in w:
            expected[key] = shape
    n_contrast = len(w["contrast_bias"])
    for key in ("contrast_lat", "contrast_lon"):
        if key in w:
            if tuple(w[key].shape) != (n_contrast,):
                raise BeaconError(f"model blob is inconsistent: {key} has shape "
                                  f"{tuple(w[key].shape)}, expected {(n_contrast,)}")
            w[key] = w[key].astype(np.float64)
    for key, shape in expected.items():
        if tuple(w[key].shape) != shape:
            raise BeaconError(f"model blob is inconsistent: {key} has shape "
                              f"{tuple(w[key].shape)}, expected {shape}")
        if w[key].dtype != np.float32:
            w[key] = w[key].astype(np.float32)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot encode {type(value).__name__}")
