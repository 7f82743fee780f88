//! A preallocated key/value cache, written in place, that can be rolled back.

use burn::tensor::{Device, Tensor};

/// Keys and values of every layer, `[kv_heads, capacity, head_dim]` each. Rows `0..len` are live.
///
/// Writes go through `slice_assign` on a uniquely owned tensor, which burn's CPU backend performs
/// in place; [`KvCache::truncate`] only moves `len` (stale rows past it are overwritten by the next
/// append and masked out until then).
pub struct KvCache {
    keys: Vec<Option<Tensor<3>>>,
    values: Vec<Option<Tensor<3>>>,
    len: usize,
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
}

impl KvCache {
    pub fn new(layers: usize, kv_heads: usize, head_dim: usize, capacity: usize, device: &Device) -> Self {
        let mk = || Some(Tensor::<3>::zeros([kv_heads, capacity, head_dim], device));
        Self {
            keys: (0..layers).map(|_| mk()).collect(),
            values: (0..layers).map(|_| mk()).collect(),
            len: 0,
            capacity,
            kv_heads,
            head_dim,
        }
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Write `k`, `v` (`[kv_heads, n, head_dim]`) of `layer` at positions `len .. len + n` and return
    /// views of all live rows `0 .. len + n`. [`KvCache::advance`] commits the new length once
    /// every layer has been written.
    pub fn write(&mut self, layer: usize, k: Tensor<3>, v: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
        let n = k.dims()[1];
        let (h, d, start) = (self.kv_heads, self.head_dim, self.len);
        let end = start + n;
        let kc = self.keys[layer].take().expect("key cache present").slice_assign([0..h, start..end, 0..d], k);
        let vc = self.values[layer].take().expect("value cache present").slice_assign([0..h, start..end, 0..d], v);
        let live = (kc.clone().slice([0..h, 0..end, 0..d]), vc.clone().slice([0..h, 0..end, 0..d]));
        self.keys[layer] = Some(kc);
        self.values[layer] = Some(vc);
        live
    }

    /// Commit `n` newly written positions.
    pub fn advance(&mut self, n: usize) {
        self.len += n;
    }

    /// Drop every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}
