"""The hybrid model package. HybridModel: a LightFM-style hybrid factorization model in torch.

user vector  = id embedding (users seen in training) + sum of user token embeddings
event vector = id embedding (events seen in training) + sum of event token embeddings
score        = user . event + event bias (id bias + token biases) + place term
place term   = w . (f(user home, event) - center): f = same city, log1p(km), exp(-km / 10);
               the weights are learned with the rest, the center (the features' mean over random
               user/event pairs) is fixed at fit time, and an unknown feature (no home, no city,
               no coordinates) counts as the center: 0, neutral.

Trained on implicit feedback: each (user, event) pair carries the sum of its interaction type
weights; positive pairs are ranked above sampled negatives with a sampled-softmax (or BPR) loss,
negative pairs (reject, unregister) are pushed below them. Negatives are drawn among events that
had not started yet when the interaction happened ("alive"), the same choice a user faced.
The id embeddings are dropped at random during training so that the feature tokens carry the
signal cold events and new users depend on. Early stopping on a time split: the last
`validation_fraction` of positive interactions, ranked among the events upcoming at the split.

Serving is numpy only: `event_matrix` builds [n, d] vectors for a frame of events once (token
rows through a single embedding-bag) and keeps the events' places (unit vectors, city codes),
`score` is one matrix-vector product plus the place term (a dot product per event for the
distance: about 1.6 ms for 100k events). `explain` names the place term "geo:home".
A blob written before the place term loads with none (its scores are unchanged).

Modules, one role each: records (EpochReport, EventMatrix), data (training frames, pairs, the
time split), network (torch plumbing, token sums), sampling (negative samplers), trainer (one
run's parameters and loss step), validator (early-stopping NDCG), early_stopping, fitting,
hybrid (HybridModel and serving), place (the place term), fold_in, serialization.
"""
from beacon.model.data import (
    MIN_VALIDATION_POSITIVES,
    N_PLACE,
    PLACE_CENTER_PAIRS,
    _pairs,
    _prepare,
    _Prepared,
    _split_time,
)
from beacon.model.early_stopping import _best_epoch, _smoothed, _train_with_validation
from beacon.model.fitting import CONTRAST_EVENTS
from beacon.model.fold_in import _fold_in_steps
from beacon.model.hybrid import HybridModel
from beacon.model.network import _bag_sum, _resolve_device, _torch
from beacon.model.records import EpochReport, EventMatrix
from beacon.model.sampling import PUBLISHED_BUCKETS, PUBLISHED_ROUNDS
from beacon.model.serialization import FORMAT
from beacon.model.trainer import ALL_EVENTS_FACTOR, _Trainer
from beacon.model.validator import (
    STRONG_SHARE,
    VALIDATION_BLOCK,
    VALIDATION_MAX_USERS,
    VALIDATION_PLACE_CACHE_CELLS,
    VALIDATION_SAMPLE_SEED,
    _Validator,
    place_planes,
)

__all__ = ["EpochReport", "EventMatrix", "HybridModel", "FORMAT", "place_planes"]
