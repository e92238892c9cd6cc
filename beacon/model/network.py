"""Torch plumbing shared by training and serving: the lazy torch import, the device, and
token sums through one sparse product (training) or an embedding bag (serving)."""
from __future__ import annotations

import warnings

import numpy as np

from beacon.errors import BeaconError


def _torch():
    import torch

    return torch


def _resolve_device(name: str) -> str:
    torch = _torch()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise BeaconError("device 'cuda' asked for but no CUDA device is available")
    return name



class _TokenBag:
    """Token sums of a fixed set of rows as a sparse [rows, vocabulary + 1] count matrix:
    `sum(table)` is rows x table (the same sums as an embedding lookup of the padded token rows
    summed over tokens, pads left out), its gradient the transposed product. Both are one
    sparse-dense product, independent of how many times a step samples each row."""

    def __init__(self, tokens: np.ndarray, pad: int, device: str):
        torch = self.torch = _torch()
        rows, cols = np.nonzero(tokens != pad)
        index = torch.from_numpy(np.stack([rows, tokens[rows, cols]]).astype(np.int64))
        values = torch.ones(len(rows), dtype=torch.float32)
        shape = (len(tokens), pad + 1)
        with warnings.catch_warnings():  # "sparse CSR support is in beta", invariant checks
            warnings.simplefilter("ignore", UserWarning)
            counts = torch.sparse_coo_tensor(index, values, shape,
                                             check_invariants=False).coalesce()
            self.matrix = counts.to_sparse_csr().to(device)
            self.transposed = counts.t().coalesce().to_sparse_csr().to(device)

    def sum(self, table):
        return _sparse_product()(table, self.matrix, self.transposed)


_SPARSE_PRODUCT = None


def _sparse_product():
    """An autograd function: matrix @ table forward, transposed @ grad backward (torch's own
    sparse backward would build the transposed matrix each step)."""
    global _SPARSE_PRODUCT
    if _SPARSE_PRODUCT is None:
        torch = _torch()

        class SparseProduct(torch.autograd.Function):
            @staticmethod
            def forward(ctx, table, matrix, transposed):
                ctx.transposed = transposed
                return matrix @ table

            @staticmethod
            def backward(ctx, grad):
                return ctx.transposed @ grad.contiguous(), None, None

        _SPARSE_PRODUCT = SparseProduct.apply
    return _SPARSE_PRODUCT


def _bag_sum(tok: np.ndarray, table: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray,
                                                                             np.ndarray]:
    """Sum of token vectors per row of a padded index matrix (the pad row of table is zero)."""
    n, width = tok.shape
    if n * width * table.shape[1] <= 4_000_000:
        return table[tok].sum(axis=1), bias[tok].sum(axis=1)
    torch = _torch()
    t = torch.from_numpy(tok)
    pad = table.shape[0] - 1
    with torch.inference_mode():
        vec = torch.nn.functional.embedding_bag(t, torch.from_numpy(table), mode="sum",
                                                padding_idx=pad)
        b = torch.nn.functional.embedding_bag(t, torch.from_numpy(bias[:, None].copy()),
                                              mode="sum", padding_idx=pad)
    return vec.numpy().copy(), b[:, 0].numpy().copy()
